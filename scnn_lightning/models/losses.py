"""Class-balanced cross-entropy (paper Eq. 3), and how much of a weak label it is given."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from scnn_lightning.data.datamodule import LABEL_WEAK

WEAK_TARGETS = ("binary", "soft")


def balanced_bce(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, *,
                 pixel_weight: torch.Tensor | None = None, image_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 3 with a per-image α = fraction of background pixels in that image's label.

    logits, target: (B, 1, H, W); valid: (B,) bool — images without a label contribute nothing
    (they are excluded, not treated as all-background). Positives are weighted by α and negatives
    by 1 − α, so a rare foreground is not drowned out. Taken literally, an all-background label
    (α = 1) would give its only class weight 0 and teach nothing about false positives; such one-class
    labels use α = 0.5 (plain cross-entropy) instead, which is finite and still penalises mistakes. The per-pixel sum of the paper
    is divided by the pixel count (a mean), which is why our learning rate differs from Caffe's 1e-10
    (see docs/training.md). Returns 0 (with a graph) when no image in the batch is labelled.

    Weak labels (`weak_label_terms`) may bring a soft target in [0, 1] (α and the class weights then use its
    expected foreground), a `pixel_weight` (B, 1, H, W) that is 0 where a pixel teaches nothing (its α is taken
    over the pixels that count), and an `image_weight` (B,) that scales an image's loss; the sum is still
    divided by the number of labelled images, so a weight below 1 lowers that image's share.
    """
    assert logits.shape == target.shape and logits.dim() == 4, (logits.shape, target.shape)
    valid = valid.to(torch.bool)
    if not valid.any():
        return logits.sum() * 0.0
    count = valid.sum()
    logits, target = logits[valid], target[valid].to(logits.dtype)
    counted = torch.ones_like(target) if pixel_weight is None else pixel_weight[valid].to(logits.dtype)
    pixels = counted.sum(dim=(1, 2, 3), keepdim=True)
    foreground = (target * counted).sum(dim=(1, 2, 3), keepdim=True) / pixels.clamp_min(1.0)
    one_class = (foreground == 0) | (foreground == 1)
    alpha = torch.where(one_class, torch.full_like(foreground, 0.5), 1.0 - foreground)
    weight = (alpha * target + (1.0 - alpha) * (1.0 - target)) * counted
    per_pixel = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    per_image = (weight * per_pixel).mean(dim=(1, 2, 3))
    if image_weight is not None:
        per_image = per_image * image_weight[valid].to(logits.dtype)
    return per_image.sum() / count


@dataclass(frozen=True)
class WeakLoss:
    """How the loss uses a weak label (`weak.target`, `weak.ignore_band`, `weak.weight`; manual labels are
    always used whole). A weak frame's `mask` holds its confidence (`fusion.confidence_levels` / 255:
    >= 0.5 foreground, 0.5 at the fused map's Otsu threshold, 0 and 1 at the ends).

    target: "binary" (the paper: the thresholded label) or "soft" (the confidence itself);
    ignore_band: pixels whose confidence lies within this distance of 0.5 get no loss (0: every pixel counts);
    weight: a weak frame's loss relative to a frame with ground truth."""

    target: str = "binary"
    ignore_band: float = 0.0
    weight: float = 1.0

    def __post_init__(self):
        if self.target not in WEAK_TARGETS:
            raise ValueError(f"weak.target must be one of {', '.join(WEAK_TARGETS)}, got {self.target!r}")
        if not 0.0 <= self.ignore_band < 0.5:
            raise ValueError(f"weak.ignore_band must lie in [0, 0.5), got {self.ignore_band!r}")
        if not self.weight > 0.0:
            raise ValueError(f"weak.weight must be positive, got {self.weight!r}")

    def terms(self, mask: torch.Tensor, label_kind: torch.Tensor):
        """(target, pixel_weight or None, image_weight or None) of `balanced_bce` for a batch."""
        weak = (label_kind == LABEL_WEAK).view(-1, 1, 1, 1)
        binary = (mask >= 0.5).to(mask.dtype)
        target = torch.where(weak, mask, binary) if self.target == "soft" else binary
        pixel_weight = None
        if self.ignore_band > 0.0:
            unsure = weak & ((mask - 0.5).abs() < self.ignore_band)
            pixel_weight = (~unsure).to(mask.dtype)
        image_weight = None
        if self.weight != 1.0:
            image_weight = torch.where(weak.view(-1), torch.full_like(mask[:, 0, 0, 0], self.weight),
                                       torch.ones_like(mask[:, 0, 0, 0]))
        return target, pixel_weight, image_weight
