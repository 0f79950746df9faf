"""MSRA10K (image stage of §IV-B): `Imgs/<id>.jpg` with its mask `Imgs/<id>.png` in the same folder.

Ids are sparse unpadded integers (75, 280, 1560 ...), sorted numerically. The zip sometimes unpacks
double-nested, so `Imgs/` is searched up to two levels below the root.
"""

from __future__ import annotations

from pathlib import Path

from scnn_lightning.data.readers.common import (
    check_split,
    finish,
    list_images,
    locate,
    pair_by_stem,
    require_root,
)
from scnn_lightning.data.records import DatasetIndex, SequenceRef

NAME = "msra10k"
SPLITS = ("all",)  # there is no official split; SCNN trains on all 10k images
LAYOUT = "Imgs/<id>.jpg + Imgs/<id>.png side by side"


def read_msra10k(root: str | Path, split: str | None = None) -> DatasetIndex:
    root = require_root(root)
    check_split(NAME, root, split, SPLITS)
    imgs = locate(root, "Imgs", LAYOUT)
    problems: list[str] = []
    files = list_images(imgs, problems)
    masks = {p.stem: p for p in files if p.suffix.lower() == ".png"}
    images = [p for p in files if p.suffix.lower() != ".png"]
    frames = pair_by_stem(NAME, images, masks, problems, where=imgs)
    return finish(NAME, root, [SequenceRef(name=NAME, frames=frames, temporal=False)], problems, LAYOUT)
