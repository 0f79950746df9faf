"""Tensor conversions and resizing of a sample (a dict of (C, H, W) float tensors).

Masks are resized with nearest neighbour so they keep their values (binary, or a soft label's confidences);
images and priors bilinearly. Training samples are augmented before this, as read (`augment.py`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
NEAREST_KEYS = frozenset({"mask"})
RGB_KEYS = ("image", "next_image")  # a sample's frames; every other key is a one-channel map


def to_tensor_image(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 → (3, H, W) float, ImageNet-normalised (the VGG16 convention)."""
    x = torch.from_numpy(np.require(rgb, requirements=["C", "W"])).permute(2, 0, 1).float() / 255.0
    return normalise(x)


def to_uint8_image(x: torch.Tensor) -> np.ndarray:
    """Inverse of `to_tensor_image` (for CRF and visualisation)."""
    rgb = denormalise(x.detach().cpu()).clamp(0, 1) * 255.0
    return rgb.round().byte().permute(1, 2, 0).numpy()


def normalise(rgb: torch.Tensor) -> torch.Tensor:
    """[0, 1] RGB, (3, H, W) or (B, 3, H, W) on any device → ImageNet-normalised."""
    return (rgb - IMAGENET_MEAN.to(rgb)) / IMAGENET_STD.to(rgb)


def denormalise(x: torch.Tensor) -> torch.Tensor:
    """Inverse of `normalise`."""
    return x * IMAGENET_STD.to(x) + IMAGENET_MEAN.to(x)


def to_tensor_map(m: np.ndarray) -> torch.Tensor:
    """(H, W) array → (1, H, W) float tensor."""
    return torch.from_numpy(np.require(m, dtype=np.float32, requirements=["C", "W"]))[None]


def to_tensors(maps: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """A sample's arrays as read (uint8 RGB frames, float maps) → its tensors."""
    return {key: to_tensor_image(m) if key in RGB_KEYS else to_tensor_map(m) for key, m in maps.items()}


def resize(sample: dict[str, torch.Tensor], size: tuple[int, int]) -> dict[str, torch.Tensor]:
    out = {}
    for key, x in sample.items():
        if tuple(x.shape[-2:]) == tuple(size):
            out[key] = x
        elif key in NEAREST_KEYS:
            out[key] = F.interpolate(x[None], size=size, mode="nearest")[0]
        else:
            out[key] = F.interpolate(x[None], size=size, mode="bilinear", align_corners=False)[0]
    return out
