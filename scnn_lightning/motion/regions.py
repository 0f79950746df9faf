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
from torch import nn

from scnn_lightning.models.vgg import VGG16Backbone
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
    """(n, 4) float boxes y0, x0, y1, x1 (exclusive) in pixels, enlarged about their centres and clipped."""
    h, w = labels.shape
    ys, xs = np.mgrid[0:h, 0:w]
    flat = labels.ravel()
    y0 = np.full(n, h, np.int64)
    x0 = np.full(n, w, np.int64)
    y1 = np.zeros(n, np.int64)
    x1 = np.zeros(n, np.int64)
    np.minimum.at(y0, flat, ys.ravel())
    np.minimum.at(x0, flat, xs.ravel())
    np.maximum.at(y1, flat, ys.ravel() + 1)
    np.maximum.at(x1, flat, xs.ravel() + 1)
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    hh, hw = (y1 - y0) * box_scale / 2, (x1 - x0) * box_scale / 2
    return np.stack([np.clip(cy - hh, 0, h), np.clip(cx - hw, 0, w), np.clip(cy + hh, 0, h),
                     np.clip(cx + hw, 0, w)], 1)


def _box_means(grid: np.ndarray, boxes: np.ndarray, scale_y: float, scale_x: float) -> np.ndarray:
    """Mean of `grid` (C, gh, gw) over each box given in pixels (mapped to grid cells by the scales)."""
    c, gh, gw = grid.shape
    integral = np.zeros((c, gh + 1, gw + 1), np.float64)
    integral[:, 1:, 1:] = grid.cumsum(1).cumsum(2)
    y0 = np.clip(np.floor(boxes[:, 0] * scale_y).astype(np.int64), 0, gh - 1)
    x0 = np.clip(np.floor(boxes[:, 1] * scale_x).astype(np.int64), 0, gw - 1)
    y1 = np.clip(np.ceil(boxes[:, 2] * scale_y).astype(np.int64), y0 + 1, gh)
    x1 = np.clip(np.ceil(boxes[:, 3] * scale_x).astype(np.int64), x0 + 1, gw)
    sums = integral[:, y1, x1] - integral[:, y0, x1] - integral[:, y1, x0] + integral[:, y0, x0]
    return (sums / ((y1 - y0) * (x1 - x0))).T  # (n, C)


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

    def describe(self, image: np.ndarray, flow: np.ndarray) -> FrameRegions:
        """Segment the flow at every level and describe each superpixel (full-resolution inputs)."""
        size = working_size(*image.shape[:2], self.long_side)
        small_img = cv2.resize(image, size[::-1], interpolation=cv2.INTER_AREA)
        small_flow = resize_flow(flow, size)
        motion = magnitude_prior(small_flow, min_motion=self.min_motion * size[1] / image.shape[1])
        fmap = self.feature_map(small_img)
        labels = segment_flow(small_flow, self.levels)
        return FrameRegions(labels, [self._level_features(fmap, motion, lab) for lab in labels])

    def _level_features(self, fmap: np.ndarray, motion: np.ndarray, labels: np.ndarray) -> np.ndarray:
        h, w = labels.shape
        c, gh, gw = fmap.shape
        n = int(labels.max()) + 1
        # Each pixel falls in one feature cell; a region's deep feature is the mean over its pixels' cells.
        cell = ((np.arange(h) * gh // h)[:, None] * gw + (np.arange(w) * gw // w)[None, :]).ravel()
        hist = np.bincount(labels.ravel() * (gh * gw) + cell, minlength=n * gh * gw).reshape(n, gh * gw)
        region = hist @ fmap.reshape(c, -1).T / hist.sum(1, keepdims=True)
        boxes = _enlarged_boxes(labels, n, self.box_scale)
        box = _box_means(fmap, boxes, gh / h, gw / w)
        frame = np.broadcast_to(fmap.mean((1, 2)), (n, c))
        m_region = _area_pool(motion, labels, n)
        m_box = _box_means(motion[None], boxes, 1.0, 1.0)[:, 0]
        ys, xs = np.mgrid[0:h, 0:w]
        area = np.bincount(labels.ravel(), minlength=n) / (h * w)
        stats = np.stack([m_region, m_box, m_region - m_box, np.full(n, motion.mean()), area,
                          _area_pool(xs / w, labels, n), _area_pool(ys / h, labels, n)], 1)
        return np.concatenate([region, box, frame, stats], 1).astype(np.float32)


def region_labels(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """1 where more than half of a region's pixels are foreground in `mask` (same size), else 0."""
    n = int(labels.max()) + 1
    return (_area_pool(mask.astype(np.float64), labels, n) > 0.5).astype(np.float32)
