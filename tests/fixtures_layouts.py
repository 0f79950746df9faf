"""Tiny image/mask/video files for the reader and decoding tests, written in the real layouts' formats."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

# Real samples from the DAVSOD benchmark repository (/work/shared/data, beside the repo); a plain
# CI checkout has no such folder, so the tests using them are skipped there.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_DAVSOD = SHARED_DATA / "davsod-format" / "DAVIS"
REAL_DUTS = SHARED_DATA / "duts-tr-sample"


def needs(path: Path):
    return pytest.mark.skipif(not path.is_dir(), reason=f"real sample data not present at {path}")


H, W = 12, 16  # default frame size: small but not square, so transposed sizes would show


def rgb(seed: int = 0, shape: tuple[int, int] = (H, W)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(*shape, 3), dtype=np.uint8)


def box_mask(shape: tuple[int, int] = (H, W), top: int = 2, left: int = 3, size: int = 5) -> np.ndarray:
    """Boolean mask with one foreground square."""
    mask = np.zeros(shape, dtype=bool)
    mask[top : top + size, left : left + size] = True
    return mask


def save(path: Path, pixels: np.ndarray, mode: str | None = None) -> Path:
    """Write `pixels` with PIL (format from the suffix), creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(pixels) if mode is None else Image.fromarray(pixels).convert(mode)
    image.save(path)
    return path


def save_frame(path: Path, seed: int = 0, shape: tuple[int, int] = (H, W)) -> Path:
    return save(path, rgb(seed, shape))


def save_gray_mask(path: Path, mask: np.ndarray) -> Path:
    """8-bit grey 0/255 mask (DAVIS, DAVSOD, MSRA10K, SegTrackV2 style)."""
    return save(path, mask.astype(np.uint8) * 255)


def save_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """Motion-JPEG AVI (always available in OpenCV builds); frames are RGB."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened(), "OpenCV cannot write MJPG AVI here"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def def_dat(entries: list[tuple[int, str, str | None]], total_frames: int) -> str:
    """An FBMS `<seq>Def.dat` text: (0-based frame number, GT file name, input file name or None)."""
    lines = [
        "Ground truth definition file",
        "Total number of regions:",
        "2",
        "Scale of region 0:",
        "16777215",  # packed white (PPM background)
        "Scale of region 1:",
        "16711680",
        "Total number of frames in this shot:",
        str(total_frames),
        "Total number of labeled frames for this shot:",
        str(len(entries)),
    ]
    for number, gt_name, input_name in entries:
        lines += ["Frame number:", str(number), "File name:", gt_name]
        if input_name is not None:
            lines += ["Input file name:", input_name]
    return "\n".join(lines) + "\n"
