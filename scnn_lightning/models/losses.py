"""Class-balanced cross-entropy, paper Eq. 3."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def balanced_bce(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Eq. 3 with a per-image α = fraction of background pixels in that image's label.

    logits, target: (B, 1, H, W); valid: (B,) bool — images without a label contribute nothing
    (they are excluded, not treated as all-background). Positives are weighted by α and negatives
    by 1 − α, so a rare foreground is not drowned out. Taken literally, an all-background label
    (α = 1) would give its only class weight 0 and teach nothing about false positives; such one-class
    labels use α = 0.5 (plain cross-entropy) instead, which is finite and still penalises mistakes. The per-pixel sum of the paper
    is divided by the pixel count (a mean), which is why our learning rate differs from Caffe's 1e-10
    (see docs/training.md). Returns 0 (with a graph) when no image in the batch is labelled.
    """
    assert logits.shape == target.shape and logits.dim() == 4, (logits.shape, target.shape)
    valid = valid.to(torch.bool)
    if not valid.any():
        return logits.sum() * 0.0
    logits, target = logits[valid], target[valid].to(logits.dtype)
    foreground = target.mean(dim=(1, 2, 3), keepdim=True)
    one_class = (foreground == 0) | (foreground == 1)
    alpha = torch.where(one_class, torch.full_like(foreground, 0.5), 1.0 - foreground)
    weight = alpha * target + (1.0 - alpha) * (1.0 - target)
    per_pixel = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (weight * per_pixel).mean(dim=(1, 2, 3)).sum() / valid.sum()
