"""FBMS-59 (train: FBMS-train with sparse ground truth; test: FBMS-test, §IV-A/B).

Layout: `Trainingset/<seq>/` and `Testset/<seq>/` hold the frames `<seq>_<N>.jpg` (`tennis<NNN>.jpg`
has no underscore) and `GroundTruth/`, which holds `<seq>Def.dat` naming the annotated frames and
the ground-truth files: colour `.ppm` on a white background or grey `.pgm` on a black background
(`*PROB*` files are not ground truth). Only about every 20th frame is annotated, and the numbering
bases of Def.dat, frame names and GT names disagree, so each GT file is tied to its frame by name
(the frame's own name, else the shared frame number), never by index arithmetic.
"""

from __future__ import annotations

import re
from pathlib import Path

from scnn_lightning.data.readers.common import (
    check_split,
    find_dir,
    finish,
    is_hidden,
    list_images,
    note,
    require_root,
    subfolders,
    unlabelled,
)
from scnn_lightning.data.records import DatasetIndex, FrameRef, MaskFormat, SequenceRef
from scnn_lightning.errors import DataError

NAME = "fbms"
SPLITS = ("train", "test")
SPLIT_FOLDERS = {"train": "Trainingset", "test": "Testset"}
LAYOUT = "Trainingset|Testset/<seq>/<seq>_<N>.jpg + <seq>/GroundTruth/(<seq>Def.dat, *.ppm | *.pgm)"
_MASK_FORMATS: dict[str, MaskFormat] = {".ppm": "nonwhite", ".pgm": "nonzero"}


def frame_number(stem: str, seq: str) -> int | None:
    """The frame number in a frame or GT stem: the first digit run after the sequence name.

    bear01_0001 -> 1, bear01_0001_gt -> 1, tennis012 -> 12 (the '01' of 'bear01' is skipped).
    """
    rest = stem[len(seq):] if stem.lower().startswith(seq.lower()) else stem
    match = re.search(r"\d+", rest)
    return int(match.group()) if match else None


def parse_def_dat(path: Path) -> list[tuple[str, str | None]]:
    """(GT file name, input frame name or None) per labelled frame listed in a `<seq>Def.dat`.

    The file alternates label lines ('File name:') and value lines; values may carry the
    annotators' directories, so only the base name is kept.
    """
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
    except OSError as err:
        raise DataError(path, f"cannot read ({err})") from err
    values = [line for line in lines if line]
    entries: list[tuple[str, str | None]] = []
    for label, value in zip(values, values[1:]):
        base = re.split(r"[\\/]", value)[-1]
        if label.lower() == "file name:":
            entries.append((base, None))
        elif label.lower() == "input file name:" and entries:
            entries[-1] = (entries[-1][0], base)
    return entries


def _gt_candidates(gt_folder: Path, seq: str, problems: list[str]) -> list[tuple[Path, str | None]]:
    """(GT path, input frame name) from Def.dat, else from a glob: .ppm first, then .pgm."""
    definitions = sorted(p for p in gt_folder.glob("*Def.dat") if not is_hidden(p))
    preferred = gt_folder / f"{seq}Def.dat"
    definition = preferred if preferred.is_file() else (definitions[0] if definitions else None)
    if definition is not None:
        entries = parse_def_dat(definition)
        if entries:
            missing = [gt for gt, _ in entries if not (gt_folder / gt).is_file()]
            note(problems, f"{definition}: listed ground truth not on disk", missing)
            return [(gt_folder / gt, frame) for gt, frame in entries if (gt_folder / gt).is_file()]
        problems.append(f"{definition}: no 'File name:' entries, ground truth found by file listing")
    for suffix in (".ppm", ".pgm"):
        found = [p for p in sorted(gt_folder.glob(f"*{suffix}")) if "PROB" not in p.name and not is_hidden(p)]
        if found:
            return [(p, None) for p in found]
    return []


def _match_frame(
    gt: Path, input_name: str | None, seq: str, images: dict[str, Path], by_number: dict[int, str]
) -> str | None:
    """Stem of the frame a GT file annotates: Def.dat's input name, else the shared frame number."""
    if input_name is not None:
        stem = Path(input_name).stem  # Def.dat may say .ppm where the disk holds .jpg
        if stem in images:
            return stem
        number = frame_number(stem, seq)
        if number in by_number:
            return by_number[number]
    return by_number.get(frame_number(gt.stem, seq))


def _read_sequence(folder: Path, problems: list[str]) -> SequenceRef:
    seq = folder.name
    images = {p.stem: p for p in list_images(folder, problems, expected=(".bmf",))}  # .bmf: frame manifest
    by_number: dict[int, str] = {}
    for stem in images:
        number = frame_number(stem, seq)
        if number is not None:
            by_number.setdefault(number, stem)
    gt_folder = folder / "GroundTruth"
    if not gt_folder.is_dir():
        problems.append(f"{gt_folder}: missing, sequence {seq} is unlabelled")
        return SequenceRef(name=seq, frames=unlabelled(seq, images.values()))
    masks: dict[str, list[Path]] = {}
    orphans = []
    for gt, input_name in _gt_candidates(gt_folder, seq, problems):
        stem = _match_frame(gt, input_name, seq, images, by_number)
        if stem is None:
            orphans.append(gt)
        else:
            masks.setdefault(stem, []).append(gt)
    note(problems, f"{gt_folder}: ground truth matching no frame", orphans)
    frames = []
    for stem, image in images.items():
        paths = tuple(masks.get(stem, ()))
        mask_format = _MASK_FORMATS.get(paths[0].suffix.lower(), "gray") if paths else "gray"
        frames.append(FrameRef(sequence=seq, name=stem, image=image, masks=paths, mask_format=mask_format))
    return SequenceRef(name=seq, frames=frames)


def read_fbms(root: str | Path, split: str | None = None) -> DatasetIndex:
    root = require_root(root)
    check_split(NAME, root, split, SPLITS)
    wanted = [split] if split is not None else list(SPLITS)
    problems: list[str] = []
    sequences = []
    for part in wanted:
        folder = find_dir(root, SPLIT_FOLDERS[part], depth=2)
        if folder is None:
            if split is not None:
                raise DataError(
                    root, f"no {SPLIT_FOLDERS[part]}/ folder for split {part} (expected layout: {LAYOUT})"
                )
            continue
        sequences += [_read_sequence(seq_folder, problems) for seq_folder in subfolders(folder)]
    return finish(NAME, root, sequences, problems, LAYOUT)
