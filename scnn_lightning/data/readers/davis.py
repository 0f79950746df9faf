"""DAVIS-2016 (test set of §IV-A): `JPEGImages/480p/<seq>/00000.jpg`, `Annotations/480p/<seq>/00000.png`.

Every frame is annotated (8-bit grey {0, 255}). The split comes from `ImageSets/480p/<split>.txt`
(frame-pair lines with a leading slash), else `Annotations/db_info.yml` (`set: training|test`), else
the official 30/20 lists below. Anything else under the root (e.g. a `Meta/` folder) is ignored.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import yaml

from scnn_lightning.data.readers.common import (
    DataFault,
    check_split,
    finish,
    list_images,
    locate,
    pair_by_stem,
    require_root,
    stem_map,
    subfolders,
    unlabelled,
)
from scnn_lightning.data.records import DatasetIndex, SequenceRef
from scnn_lightning.errors import DataError

NAME = "davis"
SPLITS = ("train", "val")
LAYOUT = "JPEGImages/<res>/<seq>/<NNNNN>.jpg + Annotations/<res>/<seq>/<NNNNN>.png"

# Official DAVIS-2016 split (fperazzi/davis); the fallback when the root has no split files.
TRAIN_SEQUENCES = (
    "bear", "bmx-bumps", "boat", "breakdance-flare", "bus", "car-turn", "dance-jump", "dog-agility",
    "drift-turn", "elephant", "flamingo", "hike", "hockey", "horsejump-low", "kite-walk", "lucia",
    "mallard-fly", "mallard-water", "motocross-bumps", "motorbike", "paragliding", "rhino",
    "rollerblade", "scooter-gray", "soccerball", "stroller", "surf", "swing", "tennis", "train",
)  # fmt: skip
VAL_SEQUENCES = (
    "blackswan", "bmx-trees", "breakdance", "camel", "car-roundabout", "car-shadow", "cows",
    "dance-twirl", "dog", "drift-chicane", "drift-straight", "goat", "horsejump-high", "kite-surf",
    "libby", "motocross-jump", "paragliding-launch", "parkour", "scooter-black", "soapbox",
)  # fmt: skip
_BUILTIN = {"train": TRAIN_SEQUENCES, "val": VAL_SEQUENCES}
_DB_INFO_SETS = {"train": {"training", "train"}, "val": {"test", "val", "validation"}}


def _image_sets_lines(path: Path) -> list[list[str]]:
    """The whitespace-separated fields of each non-empty line (copies carry trailing spaces)."""
    return [fields for fields in (line.split() for line in path.read_text(errors="replace").splitlines()) if fields]


def _sequence_of(field: str) -> str:
    parts = PurePosixPath(field.strip("/")).parts
    return parts[-2] if len(parts) >= 2 else parts[0]


def _names_from_image_sets(path: Path) -> list[str]:
    """Sequence names, in order, from lines like '/JPEGImages/480p/blackswan/00000.jpg /Annotations/...'.

    A line holding a bare sequence name (the DAVIS-2017 style) is accepted too.
    """
    names: list[str] = []
    for fields in _image_sets_lines(path):
        name = _sequence_of(fields[0])
        if name not in names:
            names.append(name)
    return names


def _listed_files_missing(path: Path, base: Path, sequences: list[str]) -> list[str]:
    """Files named by the ImageSets lines of `sequences` that are not under `base`, in listing order."""
    missing: dict[str, None] = {}  # ordered, without repeats
    for fields in _image_sets_lines(path):
        if _sequence_of(fields[0]) not in sequences:
            continue
        for field in fields:
            relative = field.strip("/")
            is_path = "/" in relative  # not a bare sequence name
            if is_path and not os.path.isfile(os.path.join(base, relative)):  # os.path: fast over 7k lines
                missing[relative] = None
    return list(missing)


def _names_from_db_info(path: Path, split: str) -> list[str]:
    try:
        info = yaml.safe_load(path.read_text(errors="replace"))
        entries = info["sequences"]
        wanted = _DB_INFO_SETS[split]
        return [str(e["name"]).strip() for e in entries if str(e.get("set", "")).strip() in wanted]
    except (yaml.YAMLError, KeyError, TypeError, AttributeError) as err:
        raise DataError(path, f"cannot read the sequence list ({type(err).__name__}: {err})") from err


def _split_names(base: Path, resolution: str, split: str) -> tuple[list[str], Path | None]:
    """The split's sequence names and the file they came from (None: the built-in lists)."""
    image_sets = base / "ImageSets" / resolution / f"{split}.txt"
    if image_sets.is_file():
        return _names_from_image_sets(image_sets), image_sets
    db_info = base / "Annotations" / "db_info.yml"
    if db_info.is_file():
        return _names_from_db_info(db_info, split), db_info
    return list(_BUILTIN[split]), None


def _read_sequence(base: Path, resolution: str, seq: str, problems: list[str]) -> SequenceRef:
    images = list_images(base / "JPEGImages" / resolution / seq, problems)
    ann_folder = base / "Annotations" / resolution / seq
    if not ann_folder.is_dir():
        problems.append(f"{ann_folder}: missing, sequence {seq} is unlabelled")
        return SequenceRef(name=seq, frames=unlabelled(seq, images))
    annotations = stem_map(list_images(ann_folder, problems), problems, ann_folder)
    return SequenceRef(name=seq, frames=pair_by_stem(seq, images, annotations, problems, where=ann_folder))


def read_davis(root: str | Path, split: str | None = None, *, resolution: str = "480p") -> DatasetIndex:
    root = require_root(root)
    check_split(NAME, root, split, SPLITS)
    images = locate(root, "JPEGImages", LAYOUT)
    if not (images / resolution).is_dir():
        found = ", ".join(p.name for p in subfolders(images)) or "none"
        raise DataError(images, f"no {resolution}/ resolution folder (found: {found})")
    base = images.parent
    present = [p.name for p in subfolders(images / resolution)]
    problems: list[str] = []
    if split is None:
        names = present
    else:
        names, listing = _split_names(base, resolution, split)
        source = str(listing) if listing else "the built-in DAVIS-2016 list"
        missing = [name for name in names if name not in present]
        if missing:
            # A split file naming absent sequences is broken; the built-in list only meets a partial copy.
            text = f"split {split} from {source}: sequences not on disk: {', '.join(missing)}"
            problems.append(DataFault(text) if listing else text)
        names = [name for name in names if name in present]
        if not names:
            raise DataError(root, f"no sequence of split {split} (listed in {source}) is present")
        if listing is not None and listing.suffix == ".txt":
            for relative in _listed_files_missing(listing, base, names):
                problems.append(DataFault(f"{listing}: lists {relative}, which is not on disk"))
    sequences = [_read_sequence(base, resolution, seq, problems) for seq in names]
    return finish(NAME, root, sequences, problems, LAYOUT)
