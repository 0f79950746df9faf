"""A tiny synthetic clip for the motion tests: a textured disc moving over a panning textured
background, plus a static high-contrast square that is painted on the background (it moves only with
the camera, so it is salient in appearance but not in motion)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from scnn_lightning.data.records import DatasetIndex, FrameRef, SequenceRef

PAN = (2, 1)  # camera pan per frame (x, y) in pixels: the background shifts by −PAN in the image
DISC_STEP = (4, -2)  # disc motion per frame in image coordinates


def texture(rng: np.random.Generator, h: int, w: int, cell: int = 6) -> np.ndarray:
    small = rng.integers(0, 256, (h // cell + 2, w // cell + 2, 3), dtype=np.uint8)
    big = cv2.resize(small, (w + 2 * cell, h + 2 * cell), interpolation=cv2.INTER_CUBIC)
    return big[:h, :w]


def make_clip(root: Path, name: str, *, frames: int = 6, height: int = 96, width: int = 128,
              seed: int = 0) -> tuple[SequenceRef, list[np.ndarray], list[np.ndarray]]:
    """Write PNG frames and masks under `root/<name>/`; returns the sequence, the disc masks and the
    distractor masks (both bool (H, W) per frame)."""
    rng = np.random.default_rng(seed)
    margin = 4 * frames
    canvas = texture(rng, height + margin, width + margin)
    sq = (height // 2 - 12, width - 40)  # distractor square top-left on the canvas
    canvas[sq[0]:sq[0] + 20, sq[1]:sq[1] + 20] = (255, 255, 255)
    canvas[sq[0] + 5:sq[0] + 15, sq[1] + 5:sq[1] + 15] = (0, 0, 0)
    disc_tex = texture(rng, height, width, cell=4)
    disc_tex[..., 0] = 255 - disc_tex[..., 0] // 3
    radius = min(height, width) // 6
    yy, xx = np.mgrid[0:height, 0:width]
    (root / name).mkdir(parents=True, exist_ok=True)
    refs, discs, distractors = [], [], []
    for t in range(frames):
        ox, oy = PAN[0] * t, PAN[1] * t
        img = canvas[oy:oy + height, ox:ox + width].copy()
        cx, cy = width // 4 + DISC_STEP[0] * t, height // 2 + DISC_STEP[1] * t
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 <= radius ** 2
        shifted = np.roll(disc_tex, (DISC_STEP[1] * t, DISC_STEP[0] * t), (0, 1))  # texture moves with the disc
        img[disc] = shifted[disc]
        distractor = np.zeros((height, width), bool)
        distractor[max(sq[0] - oy, 0):max(sq[0] + 20 - oy, 0), max(sq[1] - ox, 0):max(sq[1] + 20 - ox, 0)] = True
        distractor &= ~disc
        img_path, mask_path = root / name / f"{t:05d}.png", root / name / f"{t:05d}_gt.png"
        cv2.imwrite(str(img_path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(mask_path), disc.astype(np.uint8) * 255)
        refs.append(FrameRef(sequence=name, name=f"{t:05d}", image=img_path, masks=(mask_path,)))
        discs.append(disc)
        distractors.append(distractor)
    return SequenceRef(name=name, frames=refs), discs, distractors


def make_index(root: Path, names: list[str], **kw) -> DatasetIndex:
    seqs = [make_clip(root, n, seed=i, **kw)[0] for i, n in enumerate(names)]
    return DatasetIndex(dataset="synthetic-motion", root=root, sequences=seqs)
