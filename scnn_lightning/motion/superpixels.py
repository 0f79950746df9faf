"""Multi-scale superpixels of the optical-flow map (paper §III-B, Fig. 3: M graph-based segmentations).

We segment the Middlebury colour image of the flow, as in the paper's Fig. 3: hue (direction) and
saturation (speed relative to the frame's fastest pixel) are both visible to the segmenter, and the
colour normalisation makes the same parameters work for slow and fast clips.

Working resolution: long side 256 px (854×480 → 256×144). Felzenszwalb costs ~0.7 s per level at
854×480 but ~20 ms at this size, and flow boundaries are smooth anyway; Pt is up-sampled afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from skimage.segmentation import felzenszwalb

from scnn_lightning.motion.clock import NO_CLOCK, StepClock
from scnn_lightning.motion.flow import flow_to_color

WORK_LONG_SIDE = 256


@dataclass(frozen=True)
class SegmentationLevel:
    """Felzenszwalb parameters of one level (`scale` is the paper's k; sizes at the working resolution)."""

    scale: float
    sigma: float
    min_size: int


# M = 3 levels from fine to coarse (the paper's setting, "a balance between accuracy and time").
LEVELS: tuple[SegmentationLevel, ...] = (SegmentationLevel(40, 0.6, 25), SegmentationLevel(120, 0.8, 60),
                                         SegmentationLevel(300, 0.8, 120))


def working_size(height: int, width: int, long_side: int = WORK_LONG_SIDE) -> tuple[int, int]:
    """(h, w) with the long side at most `long_side`, aspect ratio kept; never up-sampled."""
    f = min(1.0, long_side / max(height, width))
    return max(1, round(height * f)), max(1, round(width * f))


def resize_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize (H, W, 2) flow to `size` = (h, w), scaling the vectors so they stay in pixels of the new grid."""
    h, w = size
    small = cv2.resize(flow, (w, h), interpolation=cv2.INTER_AREA)
    small[..., 0] *= w / flow.shape[1]
    small[..., 1] *= h / flow.shape[0]
    return small.astype(np.float32)


def segment_flow(flow: np.ndarray, levels: tuple[SegmentationLevel, ...] = LEVELS, *,
                 clock: StepClock = NO_CLOCK) -> list[np.ndarray]:
    """One (h, w) int64 label map per level, labels 0..n−1, segmenting the flow colour image."""
    colour = flow_to_color(flow).astype(np.float64) / 255.0
    clock.lap("flow_colour")
    labels = []
    for j, lv in enumerate(levels, 1):
        labels.append(felzenszwalb(colour, scale=lv.scale, sigma=lv.sigma, min_size=lv.min_size, channel_axis=-1)
                      .astype(np.int64))
        clock.lap(f"segment_level{j}")
    return labels
