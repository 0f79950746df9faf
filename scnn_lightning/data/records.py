"""Plain records describing a dataset on disk, shared by every reader and consumer.

A reader turns a dataset root into a `DatasetIndex`; nothing is decoded until `io.read_frame` /
`io.read_mask` is called, so indexing a large dataset is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

# How a ground-truth file encodes foreground:
#   "gray":     grey/RGB/palette/16-bit image, foreground where the (8-bit scaled) value >= 128
#   "nonzero":  foreground where any channel > 0 (FBMS .pgm, black background)
#   "nonwhite": foreground where the pixel is not pure white (FBMS .ppm, white background)
MaskFormat = Literal["gray", "nonzero", "nonwhite"]


@dataclass(frozen=True)
class FrameRef:
    """One frame of a sequence, with zero or more ground-truth files (several are OR-ed)."""

    sequence: str
    name: str  # frame stem; output maps are written as <sequence>/<name>.png
    image: Path  # an image file, or a video file when `video_index` is set
    masks: tuple[Path, ...] = ()
    mask_format: MaskFormat = "gray"
    video_index: int | None = None
    teacher: Path | None = None  # another model's map of this frame: its soft label when it has no ground truth

    @property
    def labelled(self) -> bool:
        return bool(self.masks)


@dataclass
class SequenceRef:
    """An ordered list of frames. `temporal` is False for still-image datasets (no next frame)."""

    name: str
    frames: list[FrameRef]
    temporal: bool = True


@dataclass
class DatasetIndex:
    """Everything a reader found under `root`, plus the problems it noticed but could live with."""

    dataset: str
    root: Path
    sequences: list[SequenceRef]
    problems: list[str] = field(default_factory=list)

    @property
    def frames(self) -> list[FrameRef]:
        return [f for s in self.sequences for f in s.frames]

    def summary(self) -> dict:
        frames = self.frames
        return {
            "dataset": self.dataset,
            "root": str(self.root),
            "sequences": len(self.sequences),
            "frames": len(frames),
            "labelled_frames": sum(f.labelled for f in frames),
            "per_sequence": {
                s.name: {"frames": len(s.frames), "labelled_frames": sum(f.labelled for f in s.frames)}
                for s in self.sequences
            },
            "problems": list(self.problems),
        }
