"""The training losses: class-balanced cross-entropy (paper Eq. 3) and the field's later choices, and how much
of a weak label a loss is given.

Every loss takes logits and a target (B, 1, H, W), `valid` (B,) — images without a label contribute nothing —,
an optional `pixel_weight` (B, 1, H, W; 0 where a pixel teaches nothing) and `image_weight` (B,), and returns the
sum of the per-image losses divided by the number of labelled images (0 with a graph when there is none). Targets
may be soft, in [0, 1] (weak labels, a teacher's map).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from scnn_lightning.data.datamodule import LABEL_TEACHER, LABEL_WEAK

WEAK_TARGETS = ("binary", "soft")
PerImage = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _reduce(per_image: PerImage, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
            pixel_weight: torch.Tensor | None, image_weight: torch.Tensor | None) -> torch.Tensor:
    """Select the labelled images, apply the weights and average: what every loss shares."""
    assert logits.shape == target.shape and logits.dim() == 4, (logits.shape, target.shape)
    valid = valid.to(torch.bool)
    if not valid.any():
        return logits.sum() * 0.0
    count = valid.sum()
    logits, target = logits[valid], target[valid].to(logits.dtype)
    counted = torch.ones_like(target) if pixel_weight is None else pixel_weight[valid].to(logits.dtype)
    losses = per_image(logits, target, counted)
    if image_weight is not None:
        losses = losses * image_weight[valid].to(logits.dtype)
    return losses.sum() / count


def _balanced_per_image(logits: torch.Tensor, target: torch.Tensor, counted: torch.Tensor) -> torch.Tensor:
    pixels = counted.sum(dim=(1, 2, 3), keepdim=True)
    foreground = (target * counted).sum(dim=(1, 2, 3), keepdim=True) / pixels.clamp_min(1.0)
    one_class = (foreground == 0) | (foreground == 1)
    alpha = torch.where(one_class, torch.full_like(foreground, 0.5), 1.0 - foreground)
    weight = (alpha * target + (1.0 - alpha) * (1.0 - target)) * counted
    return (weight * F.binary_cross_entropy_with_logits(logits, target, reduction="none")).mean(dim=(1, 2, 3))


def balanced_bce(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, *,
                 pixel_weight: torch.Tensor | None = None, image_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 3 with a per-image α = fraction of background pixels in that image's label (loss `balanced`).

    Positives are weighted by α and negatives by 1 − α, so a rare foreground is not drowned out. Taken literally,
    an all-background label (α = 1) would give its only class weight 0 and teach nothing about false positives;
    such one-class labels use α = 0.5 (plain cross-entropy) instead. The per-pixel sum of the paper is divided by
    the pixel count (a mean), which is why our learning rate differs from Caffe's 1e-10 (docs/training.md). With a
    soft target α uses its expected foreground; with a `pixel_weight`, α is taken over the pixels that count.
    The balance moves every uncertain pixel towards foreground (the optimum for a pixel that is salient with
    probability q is α q / (α q + (1 − α)(1 − q))): fine for a thresholded map, costly for MAE and S.
    """
    return _reduce(_balanced_per_image, logits, target, valid, pixel_weight, image_weight)


def _bce_per_image(logits: torch.Tensor, target: torch.Tensor, counted: torch.Tensor) -> torch.Tensor:
    per_pixel = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (counted * per_pixel).mean(dim=(1, 2, 3))


def bce(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, *,
        pixel_weight: torch.Tensor | None = None, image_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Plain per-pixel binary cross-entropy (loss `bce`): calibrated probabilities, no class balance."""
    return _reduce(_bce_per_image, logits, target, valid, pixel_weight, image_weight)


def soft_iou(prob: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """1 − weighted soft IoU per image: Σ w p t / Σ w (p + t − p t), with 1 added to both sums so an empty
    label and an empty map agree (loss 0) instead of dividing 0 by 0."""
    inter = (weight * prob * target).sum(dim=(1, 2, 3))
    union = (weight * (prob + target - prob * target)).sum(dim=(1, 2, 3))
    return 1.0 - (inter + 1.0) / (union + 1.0)


def _bce_iou_per_image(logits: torch.Tensor, target: torch.Tensor, counted: torch.Tensor) -> torch.Tensor:
    return _bce_per_image(logits, target, counted) + soft_iou(torch.sigmoid(logits), target, counted)


def bce_iou(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, *,
            pixel_weight: torch.Tensor | None = None, image_weight: torch.Tensor | None = None) -> torch.Tensor:
    """BCE plus soft IoU (loss `bce_iou`): the pixel term calibrates, the image-level IoU term rewards getting
    the whole object (the common choice of saliency networks since BASNet)."""
    return _reduce(_bce_iou_per_image, logits, target, valid, pixel_weight, image_weight)


def boundary_weight(target: torch.Tensor, kernel: int | None = None) -> torch.Tensor:
    """1 + 5·|local mean of the label − label|: large near object boundaries, 1 inside and far away. The window
    is about 1/12 of the shorter side (31 px at F3Net's 352), odd, so the weight scales with the input."""
    if kernel is None:
        kernel = 2 * (min(target.shape[-2:]) // 24) + 1
    local = F.avg_pool2d(target, kernel, stride=1, padding=kernel // 2, count_include_pad=False)
    return 1.0 + 5.0 * (local - target).abs()


def _structure_per_image(logits: torch.Tensor, target: torch.Tensor, counted: torch.Tensor) -> torch.Tensor:
    weight = boundary_weight(target) * counted
    per_pixel = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    weighted_bce = (weight * per_pixel).sum(dim=(1, 2, 3)) / weight.sum(dim=(1, 2, 3)).clamp_min(1e-6)
    return weighted_bce + soft_iou(torch.sigmoid(logits), target, weight)


def structure(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, *,
              pixel_weight: torch.Tensor | None = None, image_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Boundary-weighted BCE + weighted soft IoU (loss `structure`, after F3Net, AAAI 2020): pixels near an
    object's edge, where saliency maps blur, weigh up to 6× more in both terms."""
    return _reduce(_structure_per_image, logits, target, valid, pixel_weight, image_weight)


LOSSES: dict[str, Callable[..., torch.Tensor]] = {"balanced": balanced_bce, "bce": bce, "bce_iou": bce_iou,
                                                  "structure": structure}


def get_loss(name: str) -> Callable[..., torch.Tensor]:
    """The loss `stage1.loss` / `stage2.loss` names; an unknown name lists the valid ones."""
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {name!r}")
    return LOSSES[name]


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
        """(target, pixel_weight or None, image_weight or None) of a loss for a batch. A teacher's map
        (`LABEL_TEACHER`, stage 1's distillation targets) is always a soft target."""
        weak = (label_kind == LABEL_WEAK).view(-1, 1, 1, 1)
        teacher = (label_kind == LABEL_TEACHER).view(-1, 1, 1, 1)
        soft = teacher | weak if self.target == "soft" else teacher
        target = torch.where(soft, mask, (mask >= 0.5).to(mask.dtype))
        pixel_weight = None
        if self.ignore_band > 0.0:
            unsure = weak & ((mask - 0.5).abs() < self.ignore_band)
            pixel_weight = (~unsure).to(mask.dtype)
        image_weight = None
        if self.weight != 1.0:
            image_weight = torch.where(weak.view(-1), torch.full_like(mask[:, 0, 0, 0], self.weight),
                                       torch.ones_like(mask[:, 0, 0, 0]))
        return target, pixel_weight, image_weight
