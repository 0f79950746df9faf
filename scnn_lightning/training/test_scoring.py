"""The test phase's per-frame work: the saved map (frame size, CRF when on, 8-bit) and its score row.

The dense CRF at frame size is most of a test phase (about 0.25 s a 427×240 frame on one core) and
pydensecrf holds the GIL, so `FrameScorer` shares frames among worker processes when asked; each frame
goes through the same two functions either way, so the maps and scores do not depend on `workers`.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat

import numpy as np
import torch

from scnn_lightning.crf import CRFParams, frame_size_map
from scnn_lightning.metrics.functional import saved_map_scores


def score_frame(saliency: np.ndarray, frame: np.ndarray, mask: np.ndarray,
                params: CRFParams | None) -> tuple[np.ndarray, torch.Tensor]:
    """(the 8-bit map saved for `frame`, its score row against `mask`), as `evaluate` scores the PNG."""
    saved = frame_size_map(saliency, frame, params)
    return saved, saved_map_scores(saved, mask)


def _single_thread() -> None:
    torch.set_num_threads(1)  # the pool's processes share the cores; torch's own threads would oversubscribe


class FrameScorer:
    """`score_frame` over a batch, in this process (`workers=0`) or in `workers` spawned processes."""

    def __init__(self, params: CRFParams | None, workers: int = 0):
        if workers < 0:
            raise ValueError(f"test_workers must be 0 (in the test process) or more, got {workers}")
        self.params = params
        # spawn, not fork: the test process holds torch's thread pools, which a forked child cannot use safely
        self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_single_thread) if workers else None

    def __call__(self, maps: np.ndarray, frames: list, masks: list) -> list[tuple[np.ndarray, torch.Tensor]]:
        if self.pool is None:
            return [score_frame(m, f, g, self.params) for m, f, g in zip(maps, frames, masks)]
        return list(self.pool.map(score_frame, maps, frames, masks, repeat(self.params)))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None
