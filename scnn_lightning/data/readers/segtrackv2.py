"""SegTrackV2 (video training set of §IV-B).

Layout: `JPEGImages/<seq>/<stem>.png|.bmp` (despite the folder name), ground truth in
`GroundTruth/<seq>/<stem>.*` or, for multi-object sequences, `GroundTruth/<seq>/1/ .. k/` whose
objects are OR-ed into one salient mask. Extensions are used inconsistently, so files are matched by
stem only. Frame numbers need not start at 0 (bmx_06668). `ImageSets/all.txt` (`*<seq>` lines) and
`ImageSets/<seq>.txt` (first line a path prefix, then one stem per line) are followed when present.
"""

from __future__ import annotations

from pathlib import Path

from scnn_lightning.data.readers.common import (
    DataFault,
    check_split,
    finish,
    list_images,
    locate,
    note,
    require_root,
    stem_map,
    subfolders,
    unlabelled,
)
from scnn_lightning.data.records import DatasetIndex, FrameRef, SequenceRef
from scnn_lightning.errors import DataError

NAME = "segtrackv2"
SPLITS = ("all",)
LAYOUT = "JPEGImages/<seq>/<stem>.png|bmp, GroundTruth/<seq>/[<k>/]<stem>.png|bmp, optional ImageSets/"


def _read_lines(path: Path) -> list[str]:
    try:
        return [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError as err:
        raise DataError(path, f"cannot read ({err})") from err


def _sequence_names(base: Path, problems: list[str]) -> list[str]:
    """Names from ImageSets/all.txt ('*' prefixes stripped), else every JPEGImages/ sub-folder."""
    present = [p.name for p in subfolders(base / "JPEGImages")]
    listing = base / "ImageSets" / "all.txt"
    if not listing.is_file():
        return present
    listed = [line.lstrip("*").strip().strip("/") for line in _read_lines(listing)]
    listed = [name for name in listed if name]
    missing = [name for name in listed if name not in present]
    if missing:
        problems.append(DataFault(f"{listing}: listed sequences without a JPEGImages/ folder: {', '.join(missing)}"))
    unlisted = [name for name in present if name not in listed]
    if unlisted:
        problems.append(f"{listing}: JPEGImages/ folders not listed, skipped: {', '.join(unlisted)}")
    return [name for name in listed if name in present]


def _frame_files(base: Path, seq: str, problems: list[str]) -> list[Path]:
    """The sequence's frames in ImageSets/<seq>.txt order when that file exists, else sorted."""
    folder = base / "JPEGImages" / seq
    files = list_images(folder, problems)
    listing = base / "ImageSets" / f"{seq}.txt"
    if not listing.is_file():
        return files
    by_stem = stem_map(files, problems, folder)
    lines = _read_lines(listing)
    # Line 1 is the path prefix; it is only kept if it happens to name a frame.
    stems = ([lines[0]] if lines and lines[0] in by_stem else []) + lines[1:]
    unknown = [s for s in stems if s not in by_stem]
    if unknown:
        problems.append(DataFault(f"{listing}: stems without a frame file: {', '.join(unknown)}"))
    return [by_stem[s] for s in stems if s in by_stem]


def _object_folders(gt_folder: Path) -> list[Path]:
    """`1/ .. k/` object folders of a multi-object sequence, else the folder itself."""
    numbered = [p for p in subfolders(gt_folder) if p.name.isdigit()]
    return sorted(numbered, key=lambda p: int(p.name)) or [gt_folder]


def _read_sequence(base: Path, seq: str, problems: list[str]) -> SequenceRef:
    frames = _frame_files(base, seq, problems)
    gt_folder = base / "GroundTruth" / seq
    if not gt_folder.is_dir():
        problems.append(f"{gt_folder}: missing, sequence {seq} is unlabelled")
        return SequenceRef(name=seq, frames=unlabelled(seq, frames))
    objects = [
        stem_map(list_images(folder, problems), problems, folder) for folder in _object_folders(gt_folder)
    ]
    refs = []
    for path in frames:
        masks = tuple(obj[path.stem] for obj in objects if path.stem in obj)
        refs.append(FrameRef(sequence=seq, name=path.stem, image=path, masks=masks))
    stems = {p.stem for p in frames}
    orphans = [p for obj in objects for stem, p in obj.items() if stem not in stems]
    note(problems, f"{gt_folder}: ground truth matching no frame", orphans)
    note(problems, f"{gt_folder}: frames without ground truth", [r.image for r in refs if not r.masks])
    partial = [r.image for r in refs if 0 < len(r.masks) < len(objects)]
    note(problems, f"{gt_folder}: frames missing from some object folders", partial)
    return SequenceRef(name=seq, frames=refs)


def read_segtrackv2(root: str | Path, split: str | None = None) -> DatasetIndex:
    root = require_root(root)
    check_split(NAME, root, split, SPLITS)
    base = locate(root, "JPEGImages", LAYOUT).parent
    problems: list[str] = []
    sequences = [_read_sequence(base, seq, problems) for seq in _sequence_names(base, problems)]
    return finish(NAME, root, sequences, problems, LAYOUT)
