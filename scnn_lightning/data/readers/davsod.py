"""The unified DAVSOD benchmark layout (Fan et al., CVPR 2019), in which SSAV ships DAVIS, FBMS, ViSal...

`<root>/<seq>/Imgs/*.jpg|png` with `<root>/<seq>/ground-truth/*.png` (`GT_object_level/` in the
DAVSOD release itself), matched by stem. Ground truth may be partial (DAVSOD file names are source
video frame numbers, not always contiguous).
"""

from __future__ import annotations

from pathlib import Path

from scnn_lightning.data.readers.common import (
    check_split,
    finish,
    list_images,
    pair_by_stem,
    require_root,
    stem_map,
    subfolders,
    unlabelled,
)
from scnn_lightning.data.records import DatasetIndex, SequenceRef
from scnn_lightning.errors import DataError

NAME = "davsod"
SPLITS = ("all",)  # each DAVSOD package (train / val / test subsets) is its own root
LAYOUT = "<seq>/Imgs/*.jpg|png + <seq>/ground-truth/*.png (or <seq>/GT_object_level/*.png)"
GT_FOLDERS = ("ground-truth", "GT_object_level")


def _read_sequence(folder: Path, problems: list[str]) -> SequenceRef:
    seq = folder.name
    images = list_images(folder / "Imgs", problems)
    gt_folder = next((folder / g for g in GT_FOLDERS if (folder / g).is_dir()), None)
    if gt_folder is None:
        problems.append(f"{folder}: no {' or '.join(GT_FOLDERS)}/ folder, sequence {seq} is unlabelled")
        return SequenceRef(name=seq, frames=unlabelled(seq, images))
    masks = stem_map(list_images(gt_folder, problems), problems, gt_folder)
    return SequenceRef(name=seq, frames=pair_by_stem(seq, images, masks, problems, where=gt_folder))


def read_davsod(root: str | Path, split: str | None = None) -> DatasetIndex:
    root = require_root(root)
    check_split(NAME, root, split, SPLITS)
    problems: list[str] = []
    if (root / "Imgs").is_dir():  # the root is itself one sequence folder
        sequences = [root]
    else:
        folders = subfolders(root)
        sequences = [f for f in folders if (f / "Imgs").is_dir()]
        if not sequences:
            raise DataError(root, f"no <seq>/Imgs/ folders (expected layout: {LAYOUT})")
        others = [f.name for f in folders if f not in sequences]
        if others:
            problems.append(f"{root}: folders without Imgs/, skipped: {', '.join(others)}")
    return finish(NAME, root, [_read_sequence(f, problems) for f in sequences], problems, LAYOUT)
