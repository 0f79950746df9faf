"""Multi-scale superpixels of the optical-flow map (paper §III-B, Fig. 3: M graph-based segmentations).

We segment the Middlebury colour image of the flow, as in the paper's Fig. 3: hue (direction) and
saturation (speed relative to the frame's fastest pixel) are both visible to the segmenter, and the
colour normalisation makes the same parameters work for slow and fast clips.

Working resolution: long side 256 px (854×480 → 256×144). Felzenszwalb costs ~0.7 s per level at
854×480 but ~20 ms at this size, and flow boundaries are smooth anyway; Pt is up-sampled afterwards.

The segmentation is scikit-image's `felzenszwalb`, label for label. With the compiled merge (`_felzenszwalb.c`,
built at install) the levels that share a smoothing share their edge costs and their sort, and only the merge
passes run per level; without it each level calls scikit-image (docs/speed.md has the figures).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import felzenszwalb

from scnn_lightning.motion.clock import NO_CLOCK, StepClock
from scnn_lightning.motion.flow import flow_to_color

try:  # compiled at install by setup.py; absent, scikit-image's own call gives the same labels
    from scnn_lightning.motion._felzenszwalb import merge_sorted_edges
except ImportError:  # pragma: no cover - depends on the install
    merge_sorted_edges = None

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
    compiled = merge_sorted_edges is not None and min(colour.shape[:2]) >= 2
    sorted_by_sigma: dict[float, tuple[np.ndarray, np.ndarray]] = {}
    labels = []
    for j, lv in enumerate(levels, 1):
        if not compiled:
            labels.append(felzenszwalb(colour, scale=lv.scale, sigma=lv.sigma, min_size=lv.min_size,
                                       channel_axis=-1).astype(np.int64))
        else:
            if lv.sigma not in sorted_by_sigma:
                sorted_by_sigma[lv.sigma] = sorted_edge_costs(colour, lv.sigma)
            labels.append(merge_level(*sorted_by_sigma[lv.sigma], colour.shape[:2], lv))
        clock.lap(f"segment_level{j}")
    return labels


def sorted_edge_costs(image: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """(order, costs): the colour distance across each 8-connected edge of the smoothed image, in blocks right,
    down, down-right, up-right, and the order that sorts them. The values equal scikit-image's bit for bit
    (each channel smoothed alone, as its zero sigma across channels does; squares summed in channel order) and
    the order comes from the same `np.argsort`, whose order among equal costs decides some merges."""
    planes = [ndi.gaussian_filter(np.ascontiguousarray(image[..., k]), sigma, mode="reflect", truncate=4.0)
              for k in range(image.shape[2])]
    h, w = planes[0].shape
    blocks = [(np.s_[:, 1:], np.s_[:, :-1]), (np.s_[1:], np.s_[:-1]), (np.s_[1:, 1:], np.s_[:-1, :-1]),
              (np.s_[1:, :-1], np.s_[:-1, 1:])]
    costs = np.empty(2 * h * w - h - w + 2 * (h - 1) * (w - 1))
    start = 0
    for to, frm in blocks:
        squared = sum((p[to] - p[frm]) ** 2 for p in planes)
        np.sqrt(squared, out=costs[start:start + squared.size].reshape(squared.shape))
        start += squared.size
    return np.argsort(costs), costs


def merge_level(order: np.ndarray, costs: np.ndarray, size: tuple[int, int], level: SegmentationLevel) -> np.ndarray:
    """The (h, w) labels of one level from the sorted edges (scikit-image's k is in units of 1/255)."""
    h, w = size
    labels = np.empty(h * w, dtype=np.int64)
    merge_sorted_edges(order.astype(np.int64, copy=False), costs, labels, h, w, float(level.scale) / 255.0,
                       level.min_size)
    return labels.reshape(h, w)
