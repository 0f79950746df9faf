"""Training-sample augmentation with albumentations, in the loader's workers (`data.augment`).

One geometric draw per sample (a random resized crop of the frame as read, then a horizontal flip) moves every
map of the sample alike: the RGB frames and the prior maps bilinearly, the mask with nearest neighbour so a soft
or confidence label keeps its values. Each map is resampled once, and the mask with OpenCV's
`INTER_NEAREST_EXACT`, which samples the same pixel centres as the bilinear resize (`INTER_NEAREST`,
albumentations' default, is off by up to half a source pixel), so an edge lands on the same pixel in the mask as
in the frame. Colour jitter then changes the RGB frames only, with the same factors for a frame and its partner
frame so the pair stays a pair. Every draw comes from the seed the caller gives (`FrameDataset`: a hash of the
run's seed, the epoch and the frame), so a sample's augmentation does not depend on the global RNG, the number of
loader workers or the order of the frames.

Why albumentations and not kornia on the batch's device: on this project's CPU, where the studies train, the
same transforms with the same alignment cost kornia about six times as much CPU time per batch, and they run
in the training process instead of beside it (`benchmarks/augment_speed.py`, docs/speed.md).

Config, every key optional:
    flip: true                     # horizontal flip with probability 1/2
    scale: [0.35, 1.0]             # crop area as a share of the frame; null: no crop
    ratio: [0.8, 1.25]             # crop width/height over the frame's (1: the frame's own aspect)
    color_jitter: {brightness: 0.3, contrast: 0.3, saturation: 0.3, hue: 0.03}  # torchvision's ranges
The old form `{flip, max_scale}` (scale up to `max_scale`, crop back to size) reads as
`scale: [1/max_scale², 1], ratio: [1, 1]`.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass
from typing import Any, Mapping

import cv2
import numpy as np

from scnn_lightning.data.transforms import RGB_KEYS

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # else each import asks PyPI for news (2 s offline)
import albumentations as A  # noqa: E402

AUGMENT_KEYS = ("flip", "scale", "ratio", "color_jitter")
LEGACY_KEYS = ("flip", "max_scale")
JITTER_KEYS = ("brightness", "contrast", "saturation", "hue")
SMOOTH_MAPS = ("pt", "flow_gray")  # priors: resampled bilinearly like the frames, never colour-jittered


@dataclass(frozen=True)
class AugmentSpec:
    flip: bool = False
    scale: tuple[float, float] | None = None
    ratio: tuple[float, float] = (1.0, 1.0)
    color_jitter: tuple[tuple[str, float], ...] = ()  # (factor, amount) pairs, the non-zero ones

    @property
    def enabled(self) -> bool:
        return self.flip or self.scale is not None or bool(self.color_jitter)


def parse_augment(raw: Any) -> AugmentSpec | None:
    """`data.augment` as an `AugmentSpec`; None when it is null, false or switches nothing on. A wrong key or value
    is a ValueError naming it."""
    if raw is None or raw is False:
        return None
    if not isinstance(raw, Mapping):
        raise ValueError(f"data.augment must be a mapping with keys {', '.join(AUGMENT_KEYS)}, or null/false to "
                         f"switch it off; got {raw!r}")
    if "max_scale" in raw:
        raw = legacy_to_current(raw)
    unknown = sorted(set(raw) - set(AUGMENT_KEYS))
    if unknown:
        raise ValueError(f"data.augment.{unknown[0]} is not a key of data.augment (known: {', '.join(AUGMENT_KEYS)})")
    if raw.get("ratio") is not None and raw.get("scale") is None:
        raise ValueError("data.augment.ratio shapes the random crop, which data.augment.scale switches on: give "
                         "both, or neither")
    flip = raw.get("flip", False)
    if not isinstance(flip, bool):
        raise ValueError(f"data.augment.flip must be true or false, got {flip!r}")
    scale, ratio = raw.get("scale"), raw.get("ratio")
    spec = AugmentSpec(flip=flip,
                       scale=None if scale is None else check_range("scale", scale, upper=1.0),
                       ratio=(1.0, 1.0) if ratio is None else check_range("ratio", ratio, upper=math.inf),
                       color_jitter=check_jitter(raw.get("color_jitter")))
    return spec if spec.enabled else None


def legacy_to_current(raw: Mapping) -> dict:
    """The old `{flip, max_scale}`: the frame scaled by up to `max_scale` and cropped back to size, i.e. a crop of
    at least 1/max_scale² of its area at the frame's aspect."""
    extra = sorted(set(raw) - set(LEGACY_KEYS))
    if extra:
        raise ValueError(f"data.augment.max_scale is the old form of data.augment.scale and cannot be mixed with "
                         f"data.augment.{extra[0]}: give scale (and ratio) instead, e.g. scale: [0.7, 1.0]")
    max_scale = raw["max_scale"]
    if isinstance(max_scale, bool) or not isinstance(max_scale, (int, float)) or not max_scale >= 1.0:
        raise ValueError(f"data.augment.max_scale must be a number >= 1, got {max_scale!r} (the current keys are "
                         f"scale and ratio)")
    crop = max_scale > 1.0
    return {"flip": raw.get("flip", True), "scale": [1.0 / max_scale**2, 1.0] if crop else None,
            "ratio": [1.0, 1.0] if crop else None}


def check_range(key: str, value: Any, *, upper: float) -> tuple[float, float]:
    """[low, high] with 0 < low <= high <= upper."""
    numbers = isinstance(value, (list, tuple)) and len(value) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    if not numbers or not 0.0 < value[0] <= value[1] <= upper:
        bound = f" <= {upper:g}" if math.isfinite(upper) else ""
        raise ValueError(f"data.augment.{key} must be [low, high] with 0 < low <= high{bound}, got {value!r}")
    return float(value[0]), float(value[1])


def check_jitter(raw: Any) -> tuple[tuple[str, float], ...]:
    """The colour jitter's non-zero factors; null or false: none."""
    if raw is None or raw is False:
        return ()
    if not isinstance(raw, Mapping):
        raise ValueError(f"data.augment.color_jitter must be a mapping with keys {', '.join(JITTER_KEYS)}, or null; "
                         f"got {raw!r}")
    unknown = sorted(set(raw) - set(JITTER_KEYS))
    if unknown:
        raise ValueError(f"data.augment.color_jitter.{unknown[0]} is not a colour-jitter key (known: "
                         f"{', '.join(JITTER_KEYS)})")
    for key, amount in raw.items():
        upper = 0.5 if key == "hue" else math.inf  # hue turns by at most half the colour circle
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not 0.0 <= amount <= upper:
            raise ValueError(f"data.augment.color_jitter.{key} must be a number in [0, {upper:g}], got {amount!r}")
    return tuple((key, float(raw[key])) for key in JITTER_KEYS if raw.get(key))


class SampleAugment:
    """Augments one sample's maps as read (H, W, 3 uint8 frames, H, W float32 mask and priors, all at the frame's
    size). With a crop the maps come out at `size`; without one at the frame's size, for the dataset to resize.
    The crop is taken from the frame as read, so a small crop keeps the frame's detail."""

    def __init__(self, spec: AugmentSpec, size: tuple[int, int]):
        self.relative_ratio = spec.ratio
        self.crop = None if spec.scale is None else A.RandomResizedCrop(
            size=size, scale=spec.scale, ratio=spec.ratio, interpolation=cv2.INTER_LINEAR,
            mask_interpolation=cv2.INTER_NEAREST_EXACT)
        steps = [step for step in (self.crop, A.HorizontalFlip(p=0.5) if spec.flip else None) if step is not None]
        # The frames and priors are image targets (bilinear), the mask the mask target; strict: a map it does not
        # know is an error rather than a map left where it was.
        targets = {key: "image" for key in (*RGB_KEYS, *SMOOTH_MAPS) if key != "image"}
        self.geometry = A.Compose(steps, additional_targets=targets, strict=True) if steps else None
        self.colour = colour_pipeline(spec)

    def __call__(self, maps: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
        # One pair of generators for every step: the flip does not repeat the crop's draws.
        numpy_rng, python_rng = np.random.default_rng(seed), random.Random(seed)
        maps = dict(maps)
        if self.crop is not None:
            # albumentations' ratio is the crop's own width/height; ours is relative to the frame's, whose aspect
            # differs from image to image in a still-image set.
            aspect = maps["image"].shape[1] / maps["image"].shape[0]
            self.crop.ratio = (self.relative_ratio[0] * aspect, self.relative_ratio[1] * aspect)
        if self.geometry is not None:
            self.geometry.set_random_state(numpy_rng, python_rng)
            maps.update(self.geometry(**maps))
        if self.colour is not None:
            self.colour.set_random_state(numpy_rng, python_rng)
            maps.update(self.colour(**{key: maps[key] for key in RGB_KEYS if key in maps}))
        return maps


def colour_pipeline(spec: AugmentSpec) -> A.Compose | None:
    """The same factors for every frame of a call (the frame and its partner)."""
    if not spec.color_jitter:
        return None
    amounts = {key: 0.0 for key in JITTER_KEYS} | dict(spec.color_jitter)
    return A.Compose([A.ColorJitter(**amounts, p=1.0)], additional_targets={"next_image": "image"}, strict=True)


def build_augmenter(raw: Any, size: tuple[int, int]) -> SampleAugment | None:
    spec = parse_augment(raw)
    return SampleAugment(spec, size) if spec is not None else None
