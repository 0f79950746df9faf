"""Helpers shared by the layout readers: root checks, listing frames, stem matching, problem notes.

Every listing here skips hidden and OS metadata files (`._*` AppleDouble files, `.DS_Store`,
`Thumbs.db`, dotfiles, `__MACOSX/`): a macOS copy of a dataset holds a `._00000.jpg` beside every
frame, and reading those as frames would fail or, worse, add frames that do not exist.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Iterable

from scnn_lightning.data.io import IMAGE_SUFFIXES
from scnn_lightning.data.records import DatasetIndex, FrameRef, SequenceRef
from scnn_lightning.errors import DataError

_EXAMPLES = 5  # how many file names a problem note quotes
_OS_METADATA = frozenset({"thumbs.db", "__macosx"})  # compared lower-case; dotfiles are caught by name


class DataFault(str):
    """A reader problem that makes the data unusable as configured (an empty sequence, a split-list
    entry without files); `verify` refuses to train on it. Plain `str` problems are notes."""


def is_hidden(path: Path) -> bool:
    """True for dotfiles (including `._*` and `.DS_Store`) and OS metadata such as `Thumbs.db`."""
    return path.name.startswith(".") or path.name.lower() in _OS_METADATA


def visible_children(folder: Path) -> list[Path]:
    """The entries of `folder` that are not hidden or OS metadata (unsorted)."""
    return [p for p in folder.iterdir() if not is_hidden(p)]


def natural_key(name: str) -> tuple:
    """Sort key treating digit runs as numbers: '75' < '280' < '1560', 'f2' < 'f10'."""
    parts = re.split(r"(\d+)", name.lower())
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p) + (name,)


def note(problems: list[str], what: str, paths: Iterable[Path | str]) -> None:
    """Append one problem line: `what` plus a count and a few example names (nothing if no paths)."""
    names = [Path(p).name for p in paths]
    if not names:
        return
    shown = ", ".join(names[:_EXAMPLES]) + (", ..." if len(names) > _EXAMPLES else "")
    problems.append(f"{what}: {len(names)} file(s) ({shown})")


def require_root(root: str | Path) -> Path:
    """The dataset root as a Path; DataError when it is missing, not a folder, or empty."""
    root = Path(root)
    if not root.exists():
        raise DataError(root, "dataset root does not exist")
    if not root.is_dir():
        raise DataError(root, "dataset root is not a folder")
    if not visible_children(root):
        raise DataError(root, "dataset root is an empty folder")
    return root


def check_split(dataset: str, root: Path, split: str | None, valid: tuple[str, ...]) -> None:
    if split is not None and split not in valid:
        raise DataError(
            root, f"unknown split {split!r} for dataset {dataset}; valid splits: {', '.join(valid)} (or None)"
        )


def find_dir(root: Path, name: str, depth: int = 2) -> Path | None:
    """`root/name`, else the first `name` folder up to `depth` levels further down (sorted order).

    Archives often unpack double-nested (MSRA10K_Imgs_GT/MSRA10K_Imgs_GT/Imgs/).
    """
    level = [root]
    for _ in range(depth + 1):
        for folder in level:
            if (folder / name).is_dir():
                return folder / name
        level = [child for folder in level for child in sorted(visible_children(folder)) if child.is_dir()]
    return None


def locate(root: Path, name: str, layout: str) -> Path:
    """`find_dir` that raises a DataError describing the expected layout when nothing is found."""
    found = find_dir(root, name)
    if found is None:
        raise DataError(root, f"no {name}/ folder here or up to two levels down (expected layout: {layout})")
    return found


def subfolders(folder: Path) -> list[Path]:
    return sorted((p for p in visible_children(folder) if p.is_dir()), key=lambda p: natural_key(p.name))


def list_images(folder: Path, problems: list[str], *, expected: Iterable[str] = ()) -> list[Path]:
    """Image files directly in `folder`, naturally sorted by name.

    Other files are skipped with a note, except suffixes in `expected` (known companion files such
    as FBMS `.bmf` manifests) and hidden files, skipped silently. Sub-folders are left to the caller.
    """
    expected = {s.lower() for s in expected}
    images, skipped = [], []
    for path in visible_children(folder):
        if not path.is_file():
            continue
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            images.append(path)
        elif suffix not in expected:
            skipped.append(path)
    note(problems, f"{folder}: skipped non-image files", sorted(skipped))
    return sorted(images, key=lambda p: natural_key(p.name))


def stem_map(paths: Iterable[Path], problems: list[str], where: Path) -> dict[str, Path]:
    """stem -> file. Extensions are not trusted (SegTrackV2 mixes .png/.bmp); duplicates are noted."""
    by_stem: dict[str, Path] = {}
    duplicates = []
    for path in paths:
        if path.stem in by_stem:
            duplicates.append(path)
        else:
            by_stem[path.stem] = path
    note(problems, f"{where}: same stem as another file, ignored", duplicates)
    return by_stem


def unlabelled(sequence: str, images: Iterable[Path]) -> list[FrameRef]:
    return [FrameRef(sequence=sequence, name=path.stem, image=path) for path in images]


def pair_by_stem(
    sequence: str,
    images: list[Path],
    masks: dict[str, Path],
    problems: list[str],
    *,
    where: Path,
    key: Callable[[Path], str] = lambda path: path.stem,
) -> list[FrameRef]:
    """One FrameRef per image with the mask whose key (default: stem) matches; leftovers are noted."""
    remaining = dict(masks)
    frames = []
    for image in images:
        mask = remaining.pop(key(image), None)
        masks_of_frame = (mask,) if mask else ()
        frames.append(FrameRef(sequence=sequence, name=image.stem, image=image, masks=masks_of_frame))
    note(problems, f"{where}: frames without ground truth", [f.image for f in frames if not f.labelled])
    note(problems, f"{where}: ground truth matching no frame", sorted(remaining.values()))
    return frames


def finish(
    dataset: str, root: Path, sequences: list[SequenceRef], problems: list[str], layout: str
) -> DatasetIndex:
    """Drop empty sequences (a fault: a listed or present sequence without frames) and refuse an
    index without any frame."""
    kept = []
    for seq in sequences:
        if seq.frames:
            kept.append(seq)
        else:
            problems.append(DataFault(f"{root}: sequence {seq.name} has no frames, skipped"))
    if not kept:
        raise DataError(root, f"no frames found for dataset {dataset} (expected layout: {layout})")
    return DatasetIndex(dataset=dataset, root=root, sequences=kept, problems=problems)
