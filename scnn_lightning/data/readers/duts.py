"""DUTS (image stage stand-in for MSRA10K): `img/**/*.jpg` with `gt/**/*.png` in a mirrored tree.

The DAVSOD training copy splits the images into `img/part_000/`...; the original release names the
folders `DUTS-TR-Image/` and `DUTS-TR-Mask/` (`DUTS-TE-*` for the test set). Masks are anti-aliased
(0..255) and are binarised at >= 128 by `io.read_mask`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Callable

from scnn_lightning.data.io import IMAGE_SUFFIXES
from scnn_lightning.data.readers.common import (
    check_split,
    finish,
    is_hidden,
    natural_key,
    note,
    pair_by_stem,
    require_root,
)
from scnn_lightning.data.records import DatasetIndex, SequenceRef
from scnn_lightning.errors import DataError

NAME = "duts"
SPLITS = ("all",)
LAYOUT = "img/**/<name>.jpg + gt/**/<name>.png (or DUTS-TR-Image/ + DUTS-TR-Mask/)"
FOLDER_PAIRS = (("img", "gt"), ("DUTS-TR-Image", "DUTS-TR-Mask"), ("DUTS-TE-Image", "DUTS-TE-Mask"))


def _tree_images(folder: Path, problems: list[str]) -> list[Path]:
    """Image files anywhere below `folder`, naturally sorted by relative path; other files noted.

    Hidden files and anything inside hidden folders (`__MACOSX/`, `.ipynb_checkpoints/`) are skipped.
    """
    files = [
        p for p in folder.rglob("*")
        if p.is_file() and not any(is_hidden(Path(part)) for part in p.relative_to(folder).parts)
    ]
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    note(problems, f"{folder}: skipped non-image files", sorted(set(files) - set(images)))
    return sorted(images, key=lambda p: natural_key(p.relative_to(folder).as_posix()))


def _relative_stem(folder: Path) -> Callable[[Path], str]:
    return lambda path: path.relative_to(folder).with_suffix("").as_posix()


def read_duts(root: str | Path, split: str | None = None) -> DatasetIndex:
    root = require_root(root)
    check_split(NAME, root, split, SPLITS)
    pairs = [(root / i, root / g) for i, g in FOLDER_PAIRS if (root / i).is_dir() and (root / g).is_dir()]
    if not pairs:
        raise DataError(root, f"no image/mask folder pair (expected layout: {LAYOUT})")
    image_folder, gt_folder = pairs[0]
    problems: list[str] = []
    images = _tree_images(image_folder, problems)
    masks = {_relative_stem(gt_folder)(p): p for p in _tree_images(gt_folder, problems)}
    # Masks mirror the image tree (part_000/x.jpg <-> part_000/x.png), so match on the relative stem.
    frames = pair_by_stem(NAME, images, masks, problems, where=gt_folder, key=_relative_stem(image_folder))
    # Output maps are written as <sequence>/<name>.png, so equal names in two sub-folders would clash.
    duplicates = sorted(name for name, count in Counter(f.name for f in frames).items() if count > 1)
    if duplicates:
        problems.append(f"{image_folder}: one file name in several sub-folders: {', '.join(duplicates)}")
    return finish(NAME, root, [SequenceRef(name=NAME, frames=frames, temporal=False)], problems, LAYOUT)
