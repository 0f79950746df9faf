"""Unlabelled input for inference: a folder of frames, a folder of such folders, or a video file.

A folder holding images directly is one sequence named after the folder (natural order of names).
Otherwise each sub-folder of images, and each video file, is a sequence. A video's frames are
FrameRefs pointing at the video with `video_index` set, named 00000, 00001 ...
"""

from __future__ import annotations

from pathlib import Path

from scnn_lightning.data.io import VIDEO_SUFFIXES, count_video_frames
from scnn_lightning.data.readers.common import (
    check_split,
    finish,
    list_images,
    note,
    require_root,
    subfolders,
    unlabelled,
    visible_children,
)
from scnn_lightning.data.records import DatasetIndex, FrameRef, SequenceRef
from scnn_lightning.errors import DataError

NAME = "frames"
SPLITS = ("all",)
LAYOUT = "a folder of frames, a folder of frame folders / videos, or a video file"


def _is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES


def video_sequence(path: Path) -> SequenceRef:
    frames = [
        FrameRef(sequence=path.stem, name=f"{i:05d}", image=path, video_index=i)
        for i in range(count_video_frames(path))
    ]
    return SequenceRef(name=path.stem, frames=frames)


def _folder_sequence(folder: Path, problems: list[str]) -> SequenceRef:
    images = list_images(folder, problems, expected=VIDEO_SUFFIXES)
    return SequenceRef(name=folder.name, frames=unlabelled(folder.name, images))


def read_frames(root: str | Path, split: str | None = None) -> DatasetIndex:
    root = Path(root)
    if _is_video(root):
        check_split(NAME, root, split, SPLITS)
        return finish(NAME, root, [video_sequence(root)], [], LAYOUT)
    if root.is_file():
        suffixes = ", ".join(sorted(VIDEO_SUFFIXES))
        raise DataError(root, f"not a folder or a video file (video suffixes: {suffixes})")
    root = require_root(root)
    check_split(NAME, root, split, SPLITS)
    problems: list[str] = []
    top = _folder_sequence(root, problems)
    videos = sorted(p for p in visible_children(root) if _is_video(p))
    folders = subfolders(root)
    if top.frames:
        # Images directly here: this folder is the sequence; anything nested is not part of it.
        note(problems, f"{root}: sub-folders and videos beside the frames, skipped", folders + videos)
        return finish(NAME, root, [top], problems, LAYOUT)
    sequences = [_folder_sequence(folder, problems) for folder in folders]
    sequences += [video_sequence(video) for video in videos]
    return finish(NAME, root, sequences, problems, LAYOUT)
