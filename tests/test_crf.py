"""Dense CRF refinement (paper Eq. 9-10) sharpens a blurred map along the image's colour edges."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

pytest.importorskip("pydensecrf.densecrf")

from scnn_lightning.crf import CRFParams, refine  # noqa: E402


def synthetic_scene(h: int = 96, w: int = 128):
    """A red ellipse on a blue background (with sensor noise), its mask, and a heavily blurred mask."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:h, :w]
    mask = (yy - h / 2) ** 2 / (h / 4) ** 2 + (xx - w / 2) ** 2 / (w / 3.5) ** 2 < 1
    colours = np.where(mask[..., None], [200, 40, 40], [40, 90, 200]) + rng.normal(0, 8, (h, w, 3))
    image = np.clip(colours, 0, 255).astype(np.uint8)
    blurred = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigmaX=8)
    return image, mask, blurred


def test_crf_cuts_the_mae_of_a_blurred_map_at_least_in_half():
    image, mask, blurred = synthetic_scene()
    refined = refine(image, blurred, CRFParams())
    before, after = np.abs(blurred - mask).mean(), np.abs(refined - mask).mean()
    assert refined.dtype == np.float32 and refined.shape == mask.shape
    assert 0 <= refined.min() and refined.max() <= 1
    assert after < 0.5 * before, (before, after)


def test_without_pairwise_terms_the_crf_returns_the_input_saliency():
    image, _, blurred = synthetic_scene(40, 50)
    # With both kernel weights 0, mean field keeps the unary marginal: softmax(log s, log 1-s) = s.
    refined = refine(image, blurred, CRFParams(w1=0, w2=0, iterations=1))
    assert np.abs(refined - np.clip(blurred, 1e-6, 1 - 1e-6)).max() < 1e-4


@pytest.mark.parametrize(
    "image, saliency, message",
    [
        (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9), np.float32), "does not match"),
        (np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.float32), "RGB uint8"),
        (np.zeros((8, 8, 3), np.uint8), np.full((8, 8), np.nan, np.float32), "finite"),
        (np.zeros((8, 8, 3), np.uint8), np.full((8, 8), 2.0, np.float32), r"\[0, 1\]"),
    ],
)
def test_bad_inputs_raise(image, saliency, message):
    with pytest.raises(ValueError, match=message):
        refine(image, saliency)


def test_params_are_validated():
    with pytest.raises(ValueError, match="theta_beta"):
        CRFParams(theta_beta=0)
    with pytest.raises(ValueError, match="iterations"):
        CRFParams(iterations=0)
