"""Features of each flow superpixel: D(r) in the paper's Eq. 6 (§III-B, Fig. 3).

Following MDF [32], a region is described by deep features pooled over three contexts: the region
itself, its neighbourhood (the bounding box enlarged `box_scale` times about its centre) and the whole
frame. The deep features come from the first `depth` blocks of a frozen VGG16 (the stage-1 FCN's
backbone), run once per frame at the working resolution, so the cost is one truncated forward pass
rather than one pass per region as in MDF. We add the region's motion statistics, because the
classifier has to tell *moving* objects from static ones: mean camera-compensated flow magnitude in
the region, in its neighbourhood, their contrast, the frame mean, and the region's area and centroid.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from scipy.ndimage import find_objects
from scipy.sparse import csr_matrix
from torch import nn

from scnn_lightning.models.vgg import VGG16Backbone
from scnn_lightning.motion.clock import NO_CLOCK, StepClock
from scnn_lightning.motion.magnitude import magnitude_prior
from scnn_lightning.motion.superpixels import (LEVELS, WORK_LONG_SIDE, SegmentationLevel, resize_flow,
                                               segment_flow, working_size)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FLOW_STATS = ("motion_region", "motion_box", "motion_contrast", "motion_frame", "area", "cx", "cy")
DEFAULT_DEPTH = 4  # conv1–conv4 of VGG16 (stride 8, 512 channels at full width)


def truncate_backbone(backbone: VGG16Backbone, depth: int) -> nn.Sequential:
    """The layers of `backbone` up to the end of block `depth` (1-based), as a frozen module."""
    if not 1 <= depth <= len(backbone.block_ends):
        raise ValueError(f"depth must be in 1..{len(backbone.block_ends)}, got {depth}")
    trunk = nn.Sequential(*list(backbone.features)[:backbone.block_ends[depth - 1] + 1])
    trunk.eval().requires_grad_(False)
    return trunk


@dataclass
class FrameRegions:
    """Everything the classifier needs about one frame, at the working resolution."""

    labels: list[np.ndarray]  # per level, (h, w) int64 in 0..n_j−1
    features: list[np.ndarray]  # per level, (n_j, feature_dim) float32


def _area_pool(values: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """Mean of `values` (h, w) over each label."""
    count = np.bincount(labels.ravel(), minlength=n)
    return np.bincount(labels.ravel(), values.ravel(), minlength=n) / np.maximum(count, 1)


def _enlarged_boxes(labels: np.ndarray, n: int, box_scale: float) -> np.ndarray:
    """(n, 4) float boxes y0, x0, y1, x1 (exclusive) in pixels, enlarged about their centres and clipped.

    A label missing from the map has the empty box (h, w, 0, 0) before enlarging."""
    h, w = labels.shape
    bounds = np.array([(s[0].start, s[1].start, s[0].stop, s[1].stop) if s else (h, w, 0, 0)
                       for s in find_objects(labels + 1, max_label=n)], np.int64).reshape(n, 4)
    y0, x0, y1, x1 = bounds.T
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    hh, hw = (y1 - y0) * box_scale / 2, (x1 - x0) * box_scale / 2
    return np.stack([np.clip(cy - hh, 0, h), np.clip(cx - hw, 0, w), np.clip(cy + hh, 0, h),
                     np.clip(cx + hw, 0, w)], 1)


def _integral(grid: np.ndarray) -> np.ndarray:
    """(C, gh + 1, gw + 1) summed-area table of a (C, gh, gw) grid, zero first row and column."""
    c, gh, gw = grid.shape
    integral = np.zeros((c, gh + 1, gw + 1), np.float64)
    integral[:, 1:, 1:] = grid.cumsum(1).cumsum(2)
    return integral


def _box_means(integral: np.ndarray, boxes: np.ndarray, scale_y: float, scale_x: float) -> np.ndarray:
    """Mean of a grid over each box given in pixels (mapped to grid cells by the scales), from its
    summed-area table `integral` (see `_integral`); (n, C)."""
    gh, gw = integral.shape[1] - 1, integral.shape[2] - 1
    y0 = np.clip(np.floor(boxes[:, 0] * scale_y).astype(np.int64), 0, gh - 1)
    x0 = np.clip(np.floor(boxes[:, 1] * scale_x).astype(np.int64), 0, gw - 1)
    y1 = np.clip(np.ceil(boxes[:, 2] * scale_y).astype(np.int64), y0 + 1, gh)
    x1 = np.clip(np.ceil(boxes[:, 3] * scale_x).astype(np.int64), x0 + 1, gw)
    sums = integral[:, y1, x1] - integral[:, y0, x1] - integral[:, y1, x0] + integral[:, y0, x0]
    return (sums / ((y1 - y0) * (x1 - x0))).T


class FrameGrids:
    """What the pooling of every level shares, computed once per frame: the deep feature map as a
    (cells, C) matrix and as a summed-area table, the motion map likewise, the feature cell of each
    pixel and the normalised pixel coordinates."""

    def __init__(self, fmap: np.ndarray, motion: np.ndarray):
        c, gh, gw = fmap.shape
        h, w = motion.shape
        self.size, self.cells = (h, w), gh * gw
        self.scale = (gh / h, gw / w)
        self.cell = ((np.arange(h) * gh // h)[:, None] * gw + (np.arange(w) * gw // w)[None, :]).ravel()
        self.features = fmap.reshape(c, -1).T.astype(np.float64)  # (cells, C)
        self.feature_integral = _integral(fmap)
        self.frame_mean = fmap.mean((1, 2))
        self.motion = motion
        self.motion_integral = _integral(motion[None])
        ys, xs = np.mgrid[0:h, 0:w]
        self.x, self.y = xs / w, ys / h


class RegionFeatureExtractor:
    """Computes `FrameRegions` for a frame and its flow with a frozen, truncated VGG16."""

    def __init__(self, trunk: nn.Sequential, *, depth: int = DEFAULT_DEPTH, long_side: int = WORK_LONG_SIDE,
                 box_scale: float = 2.0, levels: tuple[SegmentationLevel, ...] = LEVELS,
                 min_motion: float = 1.0):
        self.trunk = trunk.eval().requires_grad_(False)
        self.depth = depth
        self.long_side = long_side
        self.box_scale = box_scale
        self.levels = tuple(levels)
        self.min_motion = min_motion  # px at full resolution, see magnitude.py
        self._mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    @classmethod
    def from_backbone(cls, backbone: VGG16Backbone, *, depth: int = DEFAULT_DEPTH, **kw) -> "RegionFeatureExtractor":
        return cls(truncate_backbone(backbone, depth), depth=depth, **kw)

    @property
    def params(self) -> dict:
        return {"depth": self.depth, "long_side": self.long_side, "box_scale": self.box_scale,
                "levels": [[lv.scale, lv.sigma, lv.min_size] for lv in self.levels], "min_motion": self.min_motion}

    @torch.no_grad()
    def feature_map(self, image: np.ndarray) -> np.ndarray:
        """(C, h', w') deep features of an RGB uint8 image already at the working resolution."""
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
        return self.trunk((x - self._mean) / self._std)[0].numpy()

    def describe(self, image: np.ndarray, flow: np.ndarray, clock: StepClock = NO_CLOCK) -> FrameRegions:
        """Segment the flow at every level and describe each superpixel (full-resolution inputs); `clock`
        gets a lap per step (benchmarks.prior_profile)."""
        size = working_size(*image.shape[:2], self.long_side)
        small_img = cv2.resize(image, size[::-1], interpolation=cv2.INTER_AREA)
        small_flow = resize_flow(flow, size)
        clock.lap("resize")
        motion = magnitude_prior(small_flow, min_motion=self.min_motion * size[1] / image.shape[1])
        clock.lap("camera_motion")
        fmap = self.feature_map(small_img)
        clock.lap("backbone")
        labels = segment_flow(small_flow, self.levels, clock=clock)
        grids = FrameGrids(fmap, motion)
        features = [self.level_features(grids, lab) for lab in labels]
        clock.lap("region_pooling")
        return FrameRegions(labels, features)

    def level_features(self, grids: FrameGrids, labels: np.ndarray) -> np.ndarray:
        """(n, 3C + 7) features of the n regions of one level: deep features pooled over the region, its
        enlarged box and the frame, then the motion statistics of `FLOW_STATS`."""
        h, w = grids.size
        n = int(labels.max()) + 1
        flat = labels.ravel()
        count = np.bincount(flat, minlength=n)
        # Each pixel falls in one feature cell; a region's deep feature is the mean over its pixels' cells.
        # The (region, cell) histogram is sparse: each region covers a few cells.
        hist = csr_matrix((np.ones(flat.size), (flat, grids.cell)), shape=(n, grids.cells))
        region = (hist @ grids.features) / count[:, None]
        boxes = _enlarged_boxes(labels, n, self.box_scale)
        box = _box_means(grids.feature_integral, boxes, *grids.scale)
        frame = np.broadcast_to(grids.frame_mean, (n, len(grids.frame_mean)))
        m_region = _area_pool(grids.motion, labels, n)
        m_box = _box_means(grids.motion_integral, boxes, 1.0, 1.0)[:, 0]
        stats = np.stack([m_region, m_box, m_region - m_box, np.full(n, grids.motion.mean()), count / (h * w),
                          _area_pool(grids.x, labels, n), _area_pool(grids.y, labels, n)], 1)
        return np.concatenate([region, box, frame, stats], 1).astype(np.float32)


def region_labels(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """1 where more than half of a region's pixels are foreground in `mask` (same size), else 0."""
    n = int(labels.max()) + 1
    return (_area_pool(mask.astype(np.float64), labels, n) > 0.5).astype(np.float32)
