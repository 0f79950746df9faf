"""Run-time and throughput benchmarks (paper Table II)."""
