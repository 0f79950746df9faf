"""The flow superpixels (motion/superpixels.py) equal scikit-image's `felzenszwalb` label for label, through the
compiled merge with its shared sorts and through the fallback, on generated flows (with many equal edge costs, so
the order among ties matters) and, when present, on real DAVIS flows."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
from skimage.segmentation import felzenszwalb

from scnn_lightning.motion import superpixels
from scnn_lightning.motion.flow import compute_flow, flow_to_color
from scnn_lightning.motion.superpixels import LEVELS, SegmentationLevel, resize_flow, segment_flow, working_size
from tests.conftest import SHARED

DAVIS_FRAMES = SHARED / "data" / "davis-2016-half" / "JPEGImages" / "480p"


def reference(flow: np.ndarray, levels=LEVELS) -> list[np.ndarray]:
    colour = flow_to_color(flow).astype(np.float64) / 255.0
    return [felzenszwalb(colour, scale=lv.scale, sigma=lv.sigma, min_size=lv.min_size, channel_axis=-1)
            for lv in levels]


def generated_flow(seed: int, h: int = 61, w: int = 97) -> np.ndarray:
    """A still background, two moving blocks (constant flow: runs of equal costs) and smooth noise."""
    rng = np.random.default_rng(seed)
    flow = np.zeros((h, w, 2), np.float32)
    flow[10:35, 15:50] = (3.0, -1.0)
    flow[30:55, 60:90] = (-2.0, 2.5)
    noise = cv2.GaussianBlur(rng.normal(0, 0.6, (h, w, 2)).astype(np.float32), (0, 0), 2.0)
    flow[:, : w // 2] += noise[:, : w // 2]  # one half exactly flat outside the blocks
    return flow


def assert_same_labels(flow: np.ndarray, levels=LEVELS) -> None:
    for got, want in zip(segment_flow(flow, levels), reference(flow, levels), strict=True):
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, want)


def test_the_compiled_merge_is_built_where_a_compiler_is():
    if shutil.which("cc") or shutil.which("gcc"):
        assert superpixels.merge_sorted_edges is not None, "pip install -e . should have built _felzenszwalb.c"


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_labels_equal_scikit_image_on_generated_flows(seed):
    assert_same_labels(generated_flow(seed))


def test_levels_that_share_a_sigma_and_odd_sizes():
    levels = (SegmentationLevel(10, 0.5, 5), SegmentationLevel(80, 0.5, 30), SegmentationLevel(200, 1.2, 50))
    for h, w in [(2, 2), (2, 41), (37, 2), (23, 19)]:
        assert_same_labels(generated_flow(h * w, max(h, 2), max(w, 2))[:h, :w], levels)


def test_one_pixel_wide_flow_falls_back_to_scikit_image():
    assert_same_labels(generated_flow(5)[:1, :30])
    assert_same_labels(generated_flow(6)[:30, :1])


def test_the_fallback_gives_the_same_labels(monkeypatch):
    flow = generated_flow(7)
    compiled = segment_flow(flow)
    monkeypatch.setattr(superpixels, "merge_sorted_edges", None)
    for a, b in zip(segment_flow(flow), compiled, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(superpixels.merge_sorted_edges is None, reason="the compiled merge is not built")
def test_the_merge_refuses_buffers_of_the_wrong_size():
    order, costs = superpixels.sorted_edge_costs(np.zeros((5, 6, 3)), 0.8)
    with pytest.raises(ValueError, match="buffer sizes"):
        superpixels.merge_sorted_edges(order, costs, np.empty(29, np.int64), 5, 6, 1.0, 3)


@pytest.mark.skipif(not DAVIS_FRAMES.is_dir(), reason="../shared/data is not present")
@pytest.mark.parametrize("sequence", ["bear", "dance-jump", "kite-surf"])
def test_labels_equal_scikit_image_on_real_davis_flows(sequence):
    frames = sorted((DAVIS_FRAMES / sequence).glob("*.jpg"))[:12:4]
    images = [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in frames]
    for a, b in zip(images, images[1:]):
        flow = compute_flow(a, b)
        assert_same_labels(resize_flow(flow, working_size(*flow.shape[:2])))
