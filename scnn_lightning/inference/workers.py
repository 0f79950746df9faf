"""Per-frame work in worker processes, so the network is not left waiting for the CPU-bound motion inputs.

Flow and the temporal prior (DIS flow, Felzenszwalb segmentations, a truncated VGG pass) are CPU work and
several times the network's time per frame: `FramePool` runs them for the next frames in `workers`
processes, each with one torch and one OpenCV thread (several threads per process on a busy CPU spend
their time waiting on each other), while the main thread runs the network on earlier frames. Every frame
is computed by the same function with the same inputs whatever the number of workers; `workers=0` runs
it in the calling thread.

Workers are started with `spawn` (a fresh interpreter; a forked child inherits OpenCV's and OpenMP's thread
pools half-alive and can hang in them), all at once when the pool is made, so their start-up (imports, the
classifier) overlaps the pipeline's own. `close` (also on error or interrupt, through `with`) cancels what
has not started and waits for the workers to exit.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Callable

import cv2
import torch

_state: Any = None  # the worker process's copy of the pool's `state`


def default_workers() -> int:
    """One worker per CPU core beyond two (those are left to the network and the reading thread), at most 8.

    None on two cores or fewer: there the reading thread already computes the motion inputs while the
    network runs (it releases the GIL), and a worker process would only add its start-up (seconds)."""
    return min(8, max(0, (os.cpu_count() or 1) - 2))


def _start_worker(state: Any) -> None:
    global _state
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    _state = state


def _run(fn: Callable, *args) -> Any:
    return fn(_state, *args)


class FramePool:
    """`submit(*args)` → a future of `fn(state, *args)`, run in one of `workers` processes (0: right away)."""

    def __init__(self, fn: Callable, state: Any, workers: int):
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.fn, self.state, self.workers = fn, state, workers
        self._pool: ProcessPoolExecutor | None = None
        if workers:
            self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_start_worker, initargs=(state,))
            for _ in range(workers):  # each submit to a pool without an idle worker starts one
                self._pool.submit(int)

    def submit(self, *args) -> Future:
        if self._pool is not None:
            return self._pool.submit(_run, self.fn, *args)
        done: Future = Future()
        done.set_result(self.fn(self.state, *args))
        return done

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> "FramePool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
