"""One child process run for its own peak memory: what the benchmarks that compare peaks (predict_memory,
refresh_scale) start their measured work with."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class MeasuredRun:
    stdout: str
    peak_rss_mib: float
    wall_s: float


def run_measured(command: list[str], env: dict[str, str], what: str) -> MeasuredRun:
    """Run `command` from the repository root and wait for it with `os.wait4`, which gives this child's own peak
    RSS. Its output goes to files, not pipes: a child writing more than a pipe holds would block for ever while
    we wait. A failed run raises RuntimeError naming `what`, with the end of its stderr."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: tells Popen not to wait again
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{what} failed ({proc.returncode}): {err.read().decode(errors='replace')[-3000:]}")
        return MeasuredRun(out.read().decode(), usage.ru_maxrss / 1024, wall)  # Linux reports KiB
