"""The test phase's per-frame work: the saved map (frame size, CRF when on, 8-bit) and its score row.

The dense CRF at frame size is most of a test phase (about 0.25 s a 427×240 frame on one core) and
pydensecrf holds the GIL, so `FrameScorer` can make the maps in worker processes. Scoring stays in the
test process: its float64 sums depend on torch's thread count, and the scores must not depend on `workers`.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

from scnn_lightning.crf import CRFParams, frame_size_map
from scnn_lightning.metrics.functional import saved_map_scores


class FrameScorer:
    """Each network-size map of a batch as saved (`crf.frame_size_map`) and its score row against the mask;
    the maps are made here (`workers=0`) or in `workers` spawned processes, with the same result."""

    def __init__(self, params: CRFParams | None, workers: int = 0):
        if workers < 0:
            raise ValueError(f"test_workers must be 0 (in the test process) or more, got {workers}")
        self.params = params
        self.pool = None
        if workers:
            # spawn, not fork: the test process holds torch's thread pools, which a forked child cannot use safely
            self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
            for _ in range(workers):  # start every worker now (each imports the package: seconds), not at batch 1
                self.pool.submit(int)

    def __call__(self, maps: np.ndarray, frames: list, masks: list) -> list[tuple[np.ndarray, torch.Tensor]]:
        if self.pool is None:
            saved = (frame_size_map(m, f, self.params) for m, f in zip(maps, frames))
        else:  # frame i is scored here while the workers refine the frames after it
            saved = (job.result() for job in [self.pool.submit(frame_size_map, m, f, self.params)
                                              for m, f in zip(maps, frames)])
        return [(s, saved_map_scores(s, mask)) for s, mask in zip(saved, masks)]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None
