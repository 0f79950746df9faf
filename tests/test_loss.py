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


# -- the other losses (`stage1.loss`, `stage2.loss`), by hand on four-pixel images ----------------------------
from scnn_lightning.data.datamodule import LABEL_TEACHER  # noqa: E402
from scnn_lightning.models.losses import LOSSES, boundary_weight, get_loss  # noqa: E402

ONE = torch.tensor([True])
HALF_ON = torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 1, 4)


def test_bce_at_logit_zero_is_log2_whatever_the_target():
    assert get_loss("bce")(ZERO_LOGITS, HALF_ON, ONE).item() == pytest.approx(LOG2)
    assert get_loss("bce")(ZERO_LOGITS, CONFIDENCE, ONE).item() == pytest.approx(LOG2)  # soft targets too


def test_bce_iou_adds_one_minus_the_soft_iou():
    # p = 0.5 everywhere: Σ p t = 1, Σ (p + t − p t) = 2·1 + 2·0.5 = 3, IoU term 1 − (1 + 1) / (3 + 1) = 0.5
    assert get_loss("bce_iou")(ZERO_LOGITS, HALF_ON, ONE).item() == pytest.approx(LOG2 + 0.5)
    confident = torch.tensor([20.0, 20.0, -20.0, -20.0]).view(1, 1, 1, 4)  # right everywhere: both terms ~0
    assert get_loss("bce_iou")(confident, HALF_ON, ONE).item() == pytest.approx(0.0, abs=1e-6)


def test_structure_on_a_flat_label_is_bce_plus_iou():
    # An all-foreground label has no boundary: weight 1, so log 2 + 1 − (Σ p t + 1) / (Σ (p + t − p t) + 1)
    # = log 2 + 1 − (2 + 1) / (4 + 1)
    assert get_loss("structure")(ZERO_LOGITS, torch.ones(1, 1, 1, 4), ONE).item() == pytest.approx(LOG2 + 0.4)


def test_boundary_weight_grows_next_to_an_edge():
    target = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0]).view(1, 1, 1, 6)
    weight = boundary_weight(target, kernel=3).flatten()
    # window means (padding not counted): 0, 0, 1/3, 2/3, 1, 1 → 1 + 5·|mean − label|
    assert torch.allclose(weight, torch.tensor([1.0, 1.0, 1 + 5 / 3, 1 + 5 / 3, 1.0, 1.0]))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_ignores_unlabelled_images_and_stays_finite_on_one_class_labels(name):
    loss_fn = get_loss(name)
    logits = torch.randn(3, 1, 24, 24, requires_grad=True)
    target = torch.stack([torch.zeros(1, 24, 24), torch.ones(1, 24, 24), torch.zeros(1, 24, 24)])
    valid = torch.tensor([True, True, False])
    loss = loss_fn(logits, target, valid)
    loss.backward()
    assert torch.isfinite(loss) and logits.grad[2].abs().sum() == 0 and logits.grad[:2].abs().sum() > 0
    assert loss_fn(logits, target, torch.zeros(3, dtype=torch.bool)).item() == 0.0


def test_plain_bce_is_calibrated_where_the_balanced_loss_is_not():
    """A pixel that is foreground in a quarter of the images: BCE's best logit gives 0.25, Eq. 3's more (pitfall:
    the balance moves uncertain pixels towards foreground)."""
    target = torch.zeros(4, 1, 2, 2)
    target[0, 0, 0, 0] = 1.0  # that pixel is foreground in image 0 only; 1 of 4 pixels foreground there
    target[1:, 0, 0, 1] = 1.0  # the other images have another pixel foreground, so α stays 0.75
    best = {}
    for name in ("bce", "balanced"):
        logit = torch.zeros(1, requires_grad=True)
        optimizer = torch.optim.SGD([logit], lr=2.0)
        for _ in range(300):
            logits = torch.zeros(4, 1, 2, 2).index_put((torch.arange(4), torch.zeros(4, dtype=torch.long),
                                                        torch.zeros(4, dtype=torch.long), torch.zeros(4, dtype=torch.long)),
                                                       logit.expand(4))
            optimizer.zero_grad()
            get_loss(name)(logits, target, torch.ones(4, dtype=torch.bool)).backward()
            optimizer.step()
        best[name] = torch.sigmoid(logit).item()
    assert best["bce"] == pytest.approx(0.25, abs=0.01)
    assert best["balanced"] == pytest.approx(0.75 * 0.25 / (0.75 * 0.25 + 0.25 * 0.75), abs=0.01)  # = 0.5


def test_an_unknown_loss_lists_the_valid_names():
    with pytest.raises(ValueError, match="balanced, bce, bce_iou, structure"):
        get_loss("dice")


def test_a_teacher_map_is_always_a_soft_target():
    target, _, _ = WeakLoss(target="binary").terms(CONFIDENCE, torch.tensor([LABEL_TEACHER]))
    assert torch.equal(target, CONFIDENCE)
