"""The vectorised region pooling of the temporal prior (motion/regions.py) against a per-region loop that
follows its definition literally, on generated maps and, when present, on real DAVIS frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from scnn_lightning.models.vgg import VGG16Backbone
from scnn_lightning.motion.classifier import RegionClassifier
from scnn_lightning.motion.clock import StepClock
from scnn_lightning.motion.regions import FrameGrids, RegionFeatureExtractor
from scnn_lightning.motion.superpixels import segment_flow
from scnn_lightning.motion.temporal_prior import PRIOR_STEPS, superpixel_prior
from tests.conftest import SHARED

DAVIS = SHARED / "data" / "davis-2016-half"


def looped_features(fmap: np.ndarray, motion: np.ndarray, labels: np.ndarray, box_scale: float) -> np.ndarray:
    """D(r) of every region, one region at a time, from the definition in regions.py."""
    c, gh, gw = fmap.shape
    h, w = labels.shape
    rows = []
    for r in range(int(labels.max()) + 1):
        ys, xs = np.nonzero(labels == r)
        region = fmap[:, ys * gh // h, xs * gw // w].mean(1)  # mean over the region's pixels of their cells
        y0, x0, y1, x1 = ys.min(), xs.min(), ys.max() + 1, xs.max() + 1
        cy, cx, hh, hw = (y0 + y1) / 2, (x0 + x1) / 2, (y1 - y0) * box_scale / 2, (x1 - x0) * box_scale / 2
        by0, bx0, by1, bx1 = max(cy - hh, 0), max(cx - hw, 0), min(cy + hh, h), min(cx + hw, w)

        def box_mean(grid: np.ndarray, sy: float, sx: float) -> np.ndarray:
            gy0 = min(max(int(np.floor(by0 * sy)), 0), grid.shape[1] - 1)
            gx0 = min(max(int(np.floor(bx0 * sx)), 0), grid.shape[2] - 1)
            gy1 = min(max(int(np.ceil(by1 * sy)), gy0 + 1), grid.shape[1])
            gx1 = min(max(int(np.ceil(bx1 * sx)), gx0 + 1), grid.shape[2])
            return grid[:, gy0:gy1, gx0:gx1].astype(np.float64).mean((1, 2))

        m_region = motion[ys, xs].astype(np.float64).mean()
        m_box = box_mean(motion[None], 1.0, 1.0)[0]
        stats = [m_region, m_box, m_region - m_box, motion.mean(), len(ys) / (h * w), xs.mean() / w, ys.mean() / h]
        rows.append(np.concatenate([region, box_mean(fmap, gh / h, gw / w), fmap.mean((1, 2)), stats]))
    return np.array(rows, np.float32)


def assert_same_features(extractor: RegionFeatureExtractor, fmap: np.ndarray, motion: np.ndarray,
                         labels: list[np.ndarray]) -> None:
    grids = FrameGrids(fmap, motion)
    for lab in labels:
        expected = looped_features(fmap, motion, lab, extractor.box_scale)
        # atol: box means come from summed-area tables accumulated in float32 (as in the classifier's training)
        np.testing.assert_allclose(extractor.level_features(grids, lab), expected, rtol=1e-5, atol=5e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pooling_equals_the_per_region_loop_on_generated_maps(seed):
    rng = np.random.default_rng(seed)
    h, w, gh, gw, c = 45, 71, 6, 9, 5  # feature cells that do not divide the frame evenly
    extractor = RegionFeatureExtractor.from_backbone(VGG16Backbone(width=0.0625), depth=1)
    fmap = rng.normal(size=(c, gh, gw)).astype(np.float32)
    motion = rng.random((h, w), dtype=np.float32)
    flow = np.zeros((h, w, 2), np.float32)
    flow[10:30, 20:50] = rng.normal(3, 0.5, 2)  # a moving block
    flow += rng.normal(0, 0.3, flow.shape).astype(np.float32)
    random_blocks = np.kron(rng.integers(0, 7, (5, 8)), np.ones((9, 9), np.int64))[:h, :w]
    _, dense = np.unique(random_blocks, return_inverse=True)  # labels 0..n−1, regions split in pieces
    assert_same_features(extractor, fmap, motion, segment_flow(flow) + [dense.reshape(h, w)])


def test_one_mlp_pass_scores_each_level_as_separate_passes():
    torch.manual_seed(0)
    clf = RegionClassifier.untrained(VGG16Backbone(width=0.0625), depth=2)
    img = np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8)
    flow = np.zeros((48, 64, 2), np.float32)
    flow[10:30, 20:40] = (4, 1)
    regions = clf.extractor.describe(img, flow)
    for joint, level in zip(clf.score_levels(regions), regions.features):
        np.testing.assert_allclose(joint, clf.predict(level), atol=1e-6)


def test_the_clock_gets_one_lap_per_step_and_does_not_change_pt():
    torch.manual_seed(0)
    clf = RegionClassifier.untrained(VGG16Backbone(width=0.0625), depth=2)
    img = np.random.default_rng(1).integers(0, 256, (48, 64, 3), np.uint8)
    flow = np.random.default_rng(2).normal(0, 2, (48, 64, 2)).astype(np.float32)
    clock = StepClock()
    timed = superpixel_prior(img, flow, clf, clock=clock)
    assert tuple(clock.seconds) == PRIOR_STEPS and all(s >= 0 for s in clock.seconds.values())
    np.testing.assert_array_equal(timed, superpixel_prior(img, flow, clf))


@pytest.mark.skipif(not DAVIS.is_dir(), reason="real DAVIS frames not present")
def test_pooling_equals_the_per_region_loop_on_real_frames():
    from scnn_lightning.data.io import read_frame
    from scnn_lightning.data.readers import load_index
    from scnn_lightning.motion.flow import compute_flow
    from scnn_lightning.motion.magnitude import magnitude_prior
    from scnn_lightning.motion.superpixels import resize_flow, working_size
    from scnn_lightning.weights import default_checkpoint

    clf = RegionClassifier.load(default_checkpoint().parent / "temporal" / "region_classifier.pt")
    ex = clf.extractor
    seq = next(s for s in load_index("davis", DAVIS, "val").sequences if s.name == "bmx-trees")
    image, partner = read_frame(seq.frames[10]), read_frame(seq.frames[11])
    size = working_size(*image.shape[:2], ex.long_side)
    small_flow = resize_flow(compute_flow(image, partner), size)
    fmap = ex.feature_map(cv2.resize(image, size[::-1], interpolation=cv2.INTER_AREA))
    motion = magnitude_prior(small_flow, min_motion=ex.min_motion * size[1] / image.shape[1])
    assert_same_features(ex, fmap, motion, segment_flow(small_flow, ex.levels))
