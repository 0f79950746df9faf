"""Eq. 3: class-balanced cross-entropy with per-image α, no NaN on one-class masks, unlabelled frames ignored."""

import torch
import torch.nn.functional as F

from scnn_lightning.models.losses import balanced_bce


def test_alpha_weights_foreground_by_background_fraction():
    logits = torch.randn(1, 1, 4, 4)
    target = torch.zeros(1, 1, 4, 4)
    target[..., :1, :] = 1  # 4 of 16 pixels foreground -> alpha = 0.75
    per_pixel = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    expected = (0.75 * target * per_pixel + 0.25 * (1 - target) * per_pixel).mean()
    assert torch.allclose(balanced_bce(logits, target, torch.tensor([True])), expected)


def test_one_class_masks_are_finite_and_penalise_mistakes():
    logits = torch.full((2, 1, 8, 8), 3.0, requires_grad=True)  # confidently "salient"
    target = torch.stack([torch.zeros(1, 8, 8), torch.ones(1, 8, 8)])
    loss = balanced_bce(logits, target, torch.tensor([True, True]))
    assert torch.isfinite(loss)
    only_bg = balanced_bce(logits[:1], target[:1], torch.tensor([True]))
    assert only_bg > 1.0  # an all-background frame still punishes false positives
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_unlabelled_frames_contribute_nothing():
    logits = torch.randn(3, 1, 8, 8, requires_grad=True)
    target = (torch.rand(3, 1, 8, 8) > 0.5).float()
    valid = torch.tensor([True, False, True])
    loss = balanced_bce(logits, target, valid)
    loss.backward()
    assert logits.grad[1].abs().sum() == 0
    garbage = target.clone()
    garbage[1] = 1 - garbage[1]
    assert torch.allclose(balanced_bce(logits, garbage, valid), loss)
    none = balanced_bce(logits, target, torch.zeros(3, dtype=torch.bool))
    assert none.item() == 0.0 and none.requires_grad


# -- weak labels in the loss (`WeakLoss`): a 1x4 image computed by hand -----------------------------------------
import math  # noqa: E402

import pytest  # noqa: E402

from scnn_lightning.data.datamodule import LABEL_MANUAL, LABEL_WEAK  # noqa: E402
from scnn_lightning.models.losses import WeakLoss  # noqa: E402

# One weak frame of four pixels: its confidences (>= 0.5 foreground) and logits 0 (σ = 0.5, so every pixel's
# cross-entropy against a target t is log 2 whatever t).
CONFIDENCE = torch.tensor([0.9, 0.55, 0.3, 0.0]).view(1, 1, 1, 4)
ZERO_LOGITS = torch.zeros(1, 1, 1, 4)
LOG2 = math.log(2.0)


def weak_loss(options: WeakLoss, logits=ZERO_LOGITS, kind=LABEL_WEAK) -> float:
    target, pixel_weight, image_weight = options.terms(CONFIDENCE, torch.tensor([kind]))
    return float(balanced_bce(logits, target, torch.tensor([True]), pixel_weight=pixel_weight,
                              image_weight=image_weight))


def test_binary_weak_target_is_the_thresholded_label():
    # label 1 1 0 0: α = 0.5, each pixel weight 0.5 → loss = 0.5·log 2
    assert weak_loss(WeakLoss()) == pytest.approx(0.5 * LOG2)
    target, pixel_weight, image_weight = WeakLoss().terms(CONFIDENCE, torch.tensor([LABEL_WEAK]))
    assert target.flatten().tolist() == [1.0, 1.0, 0.0, 0.0] and pixel_weight is None and image_weight is None


def test_soft_weak_target_uses_the_confidence():
    # foreground 1.75/4 = 0.4375 → α = 0.5625; weights α·t + (1−α)(1−t) per pixel; logits 3 give distinct terms
    logits = torch.full((1, 1, 1, 4), 3.0)
    t = CONFIDENCE.flatten().tolist()
    alpha = 1 - sum(t) / 4
    bce = [-(ti * math.log(1 / (1 + math.exp(-3))) + (1 - ti) * math.log(1 - 1 / (1 + math.exp(-3)))) for ti in t]
    expected = sum((alpha * ti + (1 - alpha) * (1 - ti)) * b for ti, b in zip(t, bce)) / 4
    assert weak_loss(WeakLoss(target="soft"), logits) == pytest.approx(expected, rel=1e-6)


def test_ignore_band_drops_unsure_weak_pixels_only():
    # band 0.1: the 0.55 pixel is out; the rest 1 0 0 → α over the counted pixels = 2/3:
    # (2/3 + 1/3 + 1/3)·log 2 / 4 pixels
    assert weak_loss(WeakLoss(ignore_band=0.1)) == pytest.approx((2 / 3 + 1 / 3 + 1 / 3) * LOG2 / 4)
    # the same mask as ground truth: every pixel counts (a manual label is never banded or soft)
    manual = WeakLoss(target="soft", ignore_band=0.1, weight=0.3)
    assert weak_loss(manual, kind=LABEL_MANUAL) == pytest.approx(weak_loss(WeakLoss(), kind=LABEL_MANUAL))


def test_weak_weight_scales_a_weak_frame_against_a_manual_one():
    mask = torch.cat([CONFIDENCE, (CONFIDENCE >= 0.5).float()])
    logits = torch.zeros(2, 1, 1, 4)
    target, pixel_weight, image_weight = WeakLoss(weight=0.25).terms(mask, torch.tensor([LABEL_WEAK, LABEL_MANUAL]))
    assert image_weight.tolist() == [0.25, 1.0]
    loss = balanced_bce(logits, target, torch.tensor([True, True]), pixel_weight=pixel_weight, image_weight=image_weight)
    assert float(loss) == pytest.approx((0.25 + 1.0) * 0.5 * LOG2 / 2)  # still divided by the 2 labelled frames


@pytest.mark.parametrize("kwargs, match", [({"target": "fuzzy"}, "weak.target"), ({"ignore_band": 0.5}, "ignore_band"),
                                           ({"weight": 0.0}, "weak.weight")])
def test_bad_weak_loss_options_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WeakLoss(**kwargs)
