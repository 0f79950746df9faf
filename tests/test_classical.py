"""Classical saliency models (fusion sources of Eq. 7): contract, behaviour on a known scene, speed."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from scnn_lightning.data.io import read_image, read_mask
from scnn_lightning.data.records import FrameRef
from scnn_lightning.weak.classical import CLASSICAL_MODELS, center_prior

MODELS = sorted(CLASSICAL_MODELS)
DAVIS = Path(__file__).parents[1].parent / "shared" / "data" / "davsod-format" / "DAVIS"


def _scene(h=120, w=160, seed=0):
    """A red disc off-centre on a greenish, mildly textured background touching every border."""
    rng = np.random.default_rng(seed)
    image = np.empty((h, w, 3), np.float32)
    image[:] = (70, 120, 60)
    image += rng.normal(0, 6, (h, w, 3))
    image[..., 1] += np.linspace(-15, 15, w)[None]  # a gentle gradient, as in real backgrounds
    ys, xs = np.mgrid[0:h, 0:w]
    disc = (ys - 0.45 * h) ** 2 + (xs - 0.6 * w) ** 2 < (0.2 * h) ** 2
    image[disc] = (200, 40, 40) + rng.normal(0, 6, (disc.sum(), 3))
    return np.clip(image, 0, 255).astype(np.uint8), disc


def test_registry_names():
    assert set(MODELS) == {"ft", "mbd", "rbd"}


@pytest.mark.parametrize("name", MODELS)
def test_contract_and_determinism(name):
    image, _ = _scene(97, 131)  # odd sizes: resizing back must hit the exact frame size
    saliency = CLASSICAL_MODELS[name](image)
    assert saliency.shape == (97, 131) and saliency.dtype == np.float32
    assert np.isfinite(saliency).all() and saliency.min() >= 0 and saliency.max() <= 1
    assert saliency.max() > 0.5  # normalised, not a washed-out map
    np.testing.assert_array_equal(saliency, CLASSICAL_MODELS[name](image.copy()))


@pytest.mark.parametrize("name", MODELS)
def test_object_stands_out(name):
    image, disc = _scene()
    saliency = CLASSICAL_MODELS[name](image)
    assert saliency[disc].mean() > saliency[~disc].mean() + 0.3, (saliency[disc].mean(), saliency[~disc].mean())


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("value", [0, 128, 255])
def test_flat_image_gives_zeros(name, value):
    saliency = CLASSICAL_MODELS[name](np.full((40, 60, 3), value, np.uint8))
    assert saliency.dtype == np.float32 and saliency.shape == (40, 60)
    assert not saliency.any()


@pytest.mark.parametrize("name", MODELS)
def test_tiny_image(name):
    saliency = CLASSICAL_MODELS[name](_scene(6, 9)[0])
    assert saliency.shape == (6, 9) and np.isfinite(saliency).all()


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(
    "bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32), np.zeros((10, 10, 4), np.uint8)]
)
def test_rejects_non_rgb_uint8(name, bad):
    with pytest.raises(ValueError, match=r"RGB uint8"):
        CLASSICAL_MODELS[name](bad)


@pytest.mark.parametrize("name", MODELS)
def test_full_frame_is_fast(name):
    """480x854 frames must stay cheap (reduced working resolution); the bound is loose for shared CPUs."""
    image = np.ascontiguousarray(np.tile(_scene(120, 214)[0], (4, 4, 1))[:480, :854])
    best = min(_timed(CLASSICAL_MODELS[name], image) for _ in range(2))
    assert best < 0.6, f"{name}: {best:.3f} s per frame"


def _timed(fn, image):
    start = time.perf_counter()
    fn(image)
    return time.perf_counter() - start


# Mean ROC-AUC each model must reach on the real frames below (measured: ft .62, mbd .85, rbd .83).
# Frequency tuning is known to be weak on cluttered video, so its bar is only "better than chance".
REAL_FRAMES = [("blackswan", 0), ("blackswan", 20), ("bmx-trees", 10), ("bmx-trees", 40)]
MIN_AUC = {"ft": 0.55, "mbd": 0.75, "rbd": 0.75}


@pytest.mark.skipif(not DAVIS.is_dir(), reason="shared DAVIS sample not present")
@pytest.mark.parametrize("name", MODELS)
def test_real_frames_rank_object_above_background(name):
    aucs = []
    for seq, index in REAL_FRAMES:
        stem = f"{seq}_{index:05d}"
        gt = DAVIS / seq / "ground-truth" / f"{stem}.png"
        ref = FrameRef(seq, stem, DAVIS / seq / "Imgs" / f"{stem}.jpg", (gt,))
        image, mask = read_image(ref.image), read_mask(ref).astype(bool)
        saliency = CLASSICAL_MODELS[name](image)
        assert saliency.shape == mask.shape
        aucs.append(_auc(saliency, mask))
    assert np.mean(aucs) > MIN_AUC[name], aucs


def _auc(scores, mask):
    """Probability that a random object pixel scores above a random background pixel."""
    ranks = np.argsort(np.argsort(scores.ravel(), kind="stable"), kind="stable") + 1
    pos = mask.ravel()
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return (ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def test_center_prior():
    prior = center_prior(41, 61)
    assert prior.shape == (41, 61) and prior.dtype == np.float32
    assert prior.max() <= 1 and np.unravel_index(prior.argmax(), prior.shape) == (20, 30)
    np.testing.assert_allclose(prior, prior[::-1, ::-1], atol=1e-6)
    assert prior[0, 0] < 0.05
    with pytest.raises(ValueError, match="sigma"):
        center_prior(0, 5)
