"""Resizing and paired augmentation: one random draw applied identically to every map of a sample.

A sample is a dict of (C, H, W) float tensors. Masks are resized with nearest neighbour so they stay
binary; images and priors bilinearly.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
NEAREST_KEYS = frozenset({"mask"})


def to_tensor_image(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 → (3, H, W) float, ImageNet-normalised (the VGG16 convention)."""
    x = torch.from_numpy(np.require(rgb, requirements=["C", "W"])).permute(2, 0, 1).float() / 255.0
    return (x - IMAGENET_MEAN) / IMAGENET_STD


def to_uint8_image(x: torch.Tensor) -> np.ndarray:
    """Inverse of `to_tensor_image` (for CRF and visualisation)."""
    rgb = (x.detach().cpu() * IMAGENET_STD + IMAGENET_MEAN).clamp(0, 1) * 255.0
    return rgb.round().byte().permute(1, 2, 0).numpy()


def to_tensor_map(m: np.ndarray) -> torch.Tensor:
    """(H, W) array → (1, H, W) float tensor."""
    return torch.from_numpy(np.require(m, dtype=np.float32, requirements=["C", "W"]))[None]


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


def paired_augment(sample: dict[str, torch.Tensor], size: tuple[int, int], rng: np.random.Generator, *,
                   flip: bool = True, max_scale: float = 1.25) -> dict[str, torch.Tensor]:
    """Random horizontal flip and scale-then-crop back to `size`, identical for every key."""
    scale = rng.uniform(1.0, max_scale) if max_scale > 1.0 else 1.0
    big = (int(round(size[0] * scale)), int(round(size[1] * scale)))
    sample = resize(sample, big)
    top = int(rng.integers(0, big[0] - size[0] + 1))
    left = int(rng.integers(0, big[1] - size[1] + 1))
    do_flip = flip and rng.random() < 0.5
    out = {}
    for key, x in sample.items():
        x = x[:, top:top + size[0], left:left + size[1]]
        out[key] = torch.flip(x, dims=[-1]) if do_flip else x
    return out
