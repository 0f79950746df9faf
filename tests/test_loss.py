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
