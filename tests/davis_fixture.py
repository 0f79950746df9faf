"""Tiny stand-ins for the real-video study's data, in the real layouts: a DAVIS-2016 root (synthetic clips,
official layout and split lists), a DUTS-TR root (`DUTS-TR-Image/` + `DUTS-TR-Mask/`) and a folder of
external saliency maps (`<model>/<sequence>/<frame>.jpg`, as saliency-maps/davis-2016-half)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from scnn_lightning.data.io import read_frame, read_mask
from scnn_lightning.data.readers import load_index
from scnn_lightning.data.records import FrameRef
from scnn_lightning.data.synthetic import generate_clips

MapFn = Callable[[FrameRef, np.ndarray, str], np.ndarray]  # (frame, its {0,1} mask, split) -> uint8 map


def tiny_davis(root: Path, *, sequences: int = 5, frames: int = 4, height: int = 48, width: int = 64,
               val_fraction: float = 0.4, seed: int = 3) -> Path:
    """A DAVIS-2016 layout root with `ImageSets/480p/{train,val}.txt`, every frame annotated."""
    return generate_clips(root, sequences=sequences, frames=frames, height=height, width=width, seed=seed,
                          val_fraction=val_fraction)


def tiny_duts(root: Path, davis: Path, count: int = 6) -> Path:
    """DUTS-TR as released (`DUTS-TR-Image/<name>.jpg`, `DUTS-TR-Mask/<name>.png`), from DAVIS frames."""
    frames = load_index("davis", davis).frames[:count]
    for n, frame in enumerate(frames):
        name = f"ILSVRC2012_test_{n:08d}"
        _write(root / "DUTS-TR-Image" / f"{name}.jpg", cv2.cvtColor(read_frame(frame), cv2.COLOR_RGB2BGR))
        _write(root / "DUTS-TR-Mask" / f"{name}.png", read_mask(frame) * np.uint8(255))
    return root


def blurred_truth(frame: FrameRef, mask: np.ndarray, split: str) -> np.ndarray:
    """A decent saliency map: the ground truth, blurred."""
    return cv2.GaussianBlur(mask.astype(np.float32) * 255, (0, 0), 2).astype(np.uint8)


def saliency_folders(root: Path, davis: Path, models: dict[str, MapFn], suffix: str = ".jpg") -> Path:
    """`root/<model>/<sequence>/<frame><suffix>` for every frame of both splits."""
    for split in ("train", "val"):
        for frame in load_index("davis", davis, split).frames:
            mask = read_mask(frame)
            for model, make in models.items():
                _write(root / model / frame.sequence / f"{frame.name}{suffix}", make(frame, mask, split))
    return root


def _write(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), pixels), path
