"""The saliency map blended over its frame as a red tint, written as one MP4 per sequence."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

TINT_RGB = np.array([255, 0, 0], np.float32)
TINT_STRENGTH = 0.6  # at saliency 1 the pixel is 60 % red, so the frame stays visible underneath
DEFAULT_FPS = 25.0  # for folders of frames, which carry no frame rate


def blend(frame_rgb: np.ndarray, saliency: np.ndarray) -> np.ndarray:
    """RGB uint8 frame with red mixed in proportionally to the saliency (H, W) in [0, 1]."""
    alpha = TINT_STRENGTH * np.clip(saliency, 0, 1)[..., None]
    return np.round(frame_rgb * (1 - alpha) + TINT_RGB * alpha).astype(np.uint8)


def source_fps(video: Path | None) -> float:
    """The input video's frame rate, `DEFAULT_FPS` for frame folders or unreadable rates."""
    if video is None:
        return DEFAULT_FPS
    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else 0.0
    capture.release()
    return fps if np.isfinite(fps) and 1.0 <= fps <= 240.0 else DEFAULT_FPS


class OverlayVideo:
    """An mp4v file at the size of the sequence's first frame (later frames of another size are resized).

    Written under a hidden temporary name and renamed by `close()`, so an interrupted run never leaves a
    half video under the real name (`utils.atomic_path` cannot be held open across frames from a thread).
    """

    def __init__(self, path: Path, fps: float):
        self.path, self.fps = path, fps
        self._tmp = path.with_name(f".{path.name}.part.mp4")  # the suffix tells OpenCV the container
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None  # (W, H)

    def write(self, frame_rgb: np.ndarray, saliency: np.ndarray) -> None:
        if self._writer is None:
            self._tmp.parent.mkdir(parents=True, exist_ok=True)
            self._size = (frame_rgb.shape[1], frame_rgb.shape[0])
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self._size)
            if not self._writer.isOpened():
                raise OSError(f"{self.path}: OpenCV cannot write an mp4v video here")
        frame = blend(frame_rgb, saliency)
        if (frame.shape[1], frame.shape[0]) != self._size:
            frame = cv2.resize(frame, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        """Finish the file and move it into place."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            os.replace(self._tmp, self.path)

    def abandon(self) -> None:
        """Drop the partial file (the run failed)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self._tmp.unlink(missing_ok=True)
