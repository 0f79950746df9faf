"""Tiny checkpoints in a run-directory layout and generated videos, for the predict and export tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from scnn_lightning.data.synthetic import render_frame, sample_scene
from scnn_lightning.inference.checkpoint import save_inference_checkpoint
from scnn_lightning.motion.classifier import RegionClassifier
from scnn_lightning.training.module import MODULES

TINY = dict(width=0.0625, fc_channels=16, dropout=0.0, crf={"iterations": 2})


def make_run(root: Path, code: str, *, classifier: bool = False, seed: int = 0, **hparams) -> Path:
    """`root/checkpoints/last.ckpt` of variant `code` ("image" = stage 1) with random weights."""
    torch.manual_seed(seed)
    module = MODULES[code](**{**TINY, **hparams}).eval()
    rel = Path("stage1/checkpoints/last.ckpt") if code == "image" else Path("checkpoints/last.ckpt")
    ckpt = save_inference_checkpoint(module, root / rel)
    if classifier:
        RegionClassifier.untrained(module.model.fcn1.backbone).save(root / "temporal" / "region_classifier.pt")
    return ckpt


def clip_frames(frames: int, height: int = 64, width: int = 96, seed: int = 0) -> list[np.ndarray]:
    scene = sample_scene(np.random.default_rng(seed), frames=frames, height=height, width=width)
    return [render_frame(scene, t)[0] for t in range(frames)]


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def write_folder(folder: Path, frames: list[np.ndarray], prefix: str = "f") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{prefix}{i:03d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


def video_frame_count(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count
