"""Check every frame and mask a run will use before any training, and report all problems at once.

    verify_data(cfg.data, cfg.paths.cache_dir)   # experiments/run.py, right before stage 1

Each source of the data config (`images`, `videos`, `val`, `test`) is indexed by its reader and every
file is decoded completely (`io.decode_pixels`: truncated JPEG/PNG included). Problems that would
crash a run or make it wrong are collected from all sources and raised together as one
`DataCheckError`: unreadable, fake or truncated files; a mask whose size differs from its frame's;
mask values that the >= 128 threshold cannot read (label indices, 0/1 masks, soft maps); frame sizes
changing inside a video; empty sequences; split-list entries without files. Warnings (colour masks, a
val/test sequence without any ground truth) and the readers' other notes (frames without ground truth,
which sparse FBMS-style annotation makes normal; skipped files) are logged, so they land in `run.log`.

Per-file results are cached by (path, size, mtime) in `<cache_dir>/verify/files.json` (written
atomically), so a second run decodes only files that are new or changed. `data.verify=false` skips
the check. `python -m scnn_lightning.data.inspect` runs the same per-dataset check (`check_index`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from scnn_lightning.data.io import MASK_THRESHOLD, decode_pixels, iter_video, mask_levels
from scnn_lightning.data.readers import load_index
from scnn_lightning.data.readers.common import DataFault, note
from scnn_lightning.data.records import DatasetIndex, FrameRef, SequenceRef
from scnn_lightning.errors import DataError
from scnn_lightning.utils import atomic_path

logger = logging.getLogger(__name__)

ROLES = ("images", "videos", "val", "test")  # the source lists of a data config, in schedule order
SCORED_ROLES = ("val", "test")  # sources whose ground truth is what gets scored
MID_GREY = (32, 223)  # a mask's mid-grey band: only anti-aliased edges should fall in it
MAX_MID_GREY_SHARE = 0.25  # real masks stay far below (DUTS-TR at 224 px: at most 0.13); soft maps do not
SHOWN_PROBLEMS = 100  # problems quoted in the exception message; all of them are logged
CACHE_VERSION = 1  # bump when a check changes, so old verdicts are not reused


class DataCheckError(DataError):
    """Every problem found in a run's data before training; `problems` holds one line per problem."""

    def __init__(self, problems: list[str], where: Path):
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems[:SHOWN_PROBLEMS])
        hidden = len(self.problems) - SHOWN_PROBLEMS
        more = f"\n  ... and {hidden} more (every problem is in the run log)" if hidden > 0 else ""
        super().__init__(where, f"{len(self.problems)} problem(s) in this run's data, found before training:\n"
                                f"{lines}{more}")


@dataclass
class Findings:
    """What a check found: `errors` stop a run; `warnings` and the readers' `notes` are logged."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: int = 0
    decoded: int = 0  # files decoded now, the others came from the cache

    def add(self, other: Findings) -> None:
        self.errors += other.errors
        self.warnings += other.warnings
        self.notes += other.notes
        self.files += other.files
        self.decoded += other.decoded


@dataclass(frozen=True)
class FileCheck:
    """One file to decode: a frame image, a whole video, or a mask read in `mask_format`."""

    kind: str  # "frame" | "video" | "mask"
    path: Path
    mask_format: str = ""

    @cached_property
    def key(self) -> str:  # the cache's key
        return f"{self.kind}:{self.mask_format}:{self.path}"


# ---- one file -------------------------------------------------------------------------------------


def _mask_findings(pixels: np.ndarray, full: int) -> dict:
    """Value problems of a "gray" mask (foreground = 8-bit level >= 128), and whether it is colour."""
    levels = mask_levels(pixels, full)
    found: dict[str, Any] = {}
    if pixels.ndim == 3 and not (pixels == pixels[:, :, :1]).all():
        found["colour"] = True
    top = int(levels.max())
    expected = "ground truth must be 0/255 or anti-aliased 0..255 grey"
    if 0 < top < MASK_THRESHOLD:
        found["problem"] = (f"mask values are 0..{top}, so nothing reaches the foreground level {MASK_THRESHOLD} "
                            f"(label indices or a 0/1 mask?); {expected}")
        return found
    share = float(((levels >= MID_GREY[0]) & (levels <= MID_GREY[1])).mean())
    if share > MAX_MID_GREY_SHARE:
        found["problem"] = (f"not a binary mask: {share:.0%} of its pixels are mid-grey "
                            f"({MID_GREY[0]}..{MID_GREY[1]}; a saliency map?); {expected}")
    return found


def _check_video(path: Path) -> dict:
    count, shape = 0, None
    for rgb in iter_video(path):
        count += 1
        shape = shape or list(rgb.shape[:2])
    return {"shape": shape, "frames": count}


def check_file(check: FileCheck) -> dict:
    """Decode one file completely: {"shape": [H, W], ...}, with "problem" when it is unusable."""
    try:
        if check.kind == "video":
            return _check_video(check.path)
        pixels, full = decode_pixels(check.path)
    except DataError as err:
        return {"problem": err.problem}
    result = {"shape": list(pixels.shape[:2])}
    if check.kind == "mask" and check.mask_format == "gray":  # FBMS .ppm/.pgm encode objects by design
        result.update(_mask_findings(pixels, full))
    return result


# ---- many files, cached -----------------------------------------------------------------------------


def _stamp(path: Path) -> list[int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


class ResultCache:
    """Results of `check_file` keyed by check, valid while the file keeps its size and mtime.

    `path=None` keeps them in memory only. A missing or damaged cache file only means a slower run.
    """

    def __init__(self, path: Path | None = None):
        self.path = path
        self.entries: dict[str, dict] = self._load()
        self.changed = False

    def _load(self) -> dict[str, dict]:
        if self.path is None or not self.path.is_file():
            return {}
        try:
            content = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return content.get("files", {}) if content.get("version") == CACHE_VERSION else {}

    def get(self, check: FileCheck, stamp: list[int]) -> dict | None:
        entry = self.entries.get(check.key)
        return entry["result"] if entry is not None and entry["stamp"] == stamp else None

    def put(self, check: FileCheck, stamp: list[int], result: dict) -> None:
        self.entries[check.key] = {"stamp": stamp, "result": result}
        self.changed = True

    def save(self) -> None:
        if self.path is None or not self.changed:
            return
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps({"version": CACHE_VERSION, "files": self.entries}, separators=(",", ":")))
        self.changed = False


def default_workers() -> int:
    # PIL and OpenCV decode with the GIL released, so threads keep every core busy.
    return min(8, os.cpu_count() or 1)


def run_checks(checks: Iterable[FileCheck], cache: ResultCache, workers: int | None = None
               ) -> tuple[dict[FileCheck, dict], int]:
    """The result of every check, decoding in threads only what the cache lacks; also how many were
    decoded. Files that cannot be stat'ed are decoded (and fail) without being cached."""
    results: dict[FileCheck, dict] = {}
    todo: list[tuple[FileCheck, list[int] | None]] = []
    for check in dict.fromkeys(checks):
        stamp = _stamp(check.path)
        cached = cache.get(check, stamp) if stamp is not None else None
        if cached is None:
            todo.append((check, stamp))
        else:
            results[check] = cached
    if todo:
        with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
            for (check, stamp), result in zip(todo, pool.map(check_file, [c for c, _ in todo])):
                results[check] = result
                if stamp is not None:
                    cache.put(check, stamp, result)
    return results, len(todo)


# ---- one dataset ------------------------------------------------------------------------------------


def _frame_check(ref: FrameRef) -> FileCheck:
    return FileCheck("frame" if ref.video_index is None else "video", ref.image)


def _mask_checks(ref: FrameRef) -> list[FileCheck]:
    return [FileCheck("mask", mask, ref.mask_format) for mask in ref.masks]


def _size(shape: list[int]) -> str:
    return f"{shape[0]}x{shape[1]} (HxW)"


def _frame_problems(ref: FrameRef, frame: dict, masks: list[tuple[Path, dict]]) -> list[str]:
    """A video frame past the decodable end; masks whose size differs from the frame's."""
    problems = []
    if ref.video_index is not None and "frames" in frame and ref.video_index >= frame["frames"]:
        problems.append(f"{ref.image}: frame {ref.video_index} does not decode (only {frame['frames']} do)")
    for path, mask in masks:
        if frame.get("shape") and mask.get("shape") and mask["shape"] != frame["shape"]:
            problems.append(f"{path}: mask is {_size(mask['shape'])} but frame {ref.image} is {_size(frame['shape'])}")
    return problems


def _size_changes(seq: SequenceRef, shapes: list[tuple[FrameRef, list[int] | None]]) -> list[str]:
    """Frames of a video whose size differs from its first frame's (still-image sets may mix sizes)."""
    known = [(ref, shape) for ref, shape in shapes if shape]
    if not known:
        return []
    first, expected = known[0]
    return [f"{ref.image}: frame is {_size(shape)} but the first frame of sequence {seq.name} ({first.image.name}) "
            f"is {_size(expected)}" for ref, shape in known[1:] if shape != expected]


def check_index(index: DatasetIndex, *, scored: bool = False, as_images: bool = False,
                cache: ResultCache | None = None, workers: int | None = None) -> Findings:
    """Decode every frame and mask of `index` and cross-check them (reader problems are not included).

    `scored`: the index is a val/test source, so a sequence without ground truth is worth a warning.
    `as_images`: its frames are used as still images, which may differ in size.
    """
    plan = [(seq, [(ref, _frame_check(ref), _mask_checks(ref)) for ref in seq.frames]) for seq in index.sequences]
    checks = list(dict.fromkeys(c for _, refs in plan for _, frame, masks in refs for c in (frame, *masks)))
    results, decoded = run_checks(checks, cache or ResultCache(), workers)
    found = Findings(files=len(checks), decoded=decoded)
    found.errors += [f"{c.path}: {results[c]['problem']}" for c in checks if "problem" in results[c]]
    for seq, refs in plan:
        for ref, frame, masks in refs:
            found.errors += _frame_problems(ref, results[frame], [(m.path, results[m]) for m in masks])
        if seq.temporal and not as_images:
            found.errors += _size_changes(seq, [(ref, results[frame].get("shape")) for ref, frame, _ in refs])
        if scored and refs and not any(ref.labelled for ref, _, _ in refs):
            found.warnings.append(f"{seq.frames[0].image.parent}: sequence {seq.name} has no ground truth "
                                  f"({len(refs)} frames), so none of it is scored")
    colour = [c.path for c in checks if results[c].get("colour")]
    note(found.warnings, f"{index.root}: colour masks, foreground where any channel >= {MASK_THRESHOLD}", colour)
    return found


def reader_findings(index: DatasetIndex) -> Findings:
    """The reader's own problems: faults (empty sequences, split entries without files) are errors,
    the rest notes."""
    return Findings(errors=[p for p in index.problems if isinstance(p, DataFault)],
                    notes=[p for p in index.problems if not isinstance(p, DataFault)])


# ---- a run's data -----------------------------------------------------------------------------------


def _common_root(roots: list[str]) -> Path:
    try:
        return Path(os.path.commonpath([str(Path(r).resolve()) for r in roots]))
    except ValueError:  # no roots, or roots on different drives
        return Path(".")


def verify_sources(sources: list[tuple[str, Any]], *, cache_file: Path | None = None,
                   workers: int | None = None) -> Findings:
    """Check `(role, SourceSpec)` sources; log notes and warnings; raise DataCheckError listing every error."""
    started = time.time()
    cache = ResultCache(cache_file)
    total = Findings()
    for role, spec in sources:
        try:
            index = load_index(spec.dataset, spec.root, spec.split)
        except (DataError, OSError) as err:  # OSError: e.g. a folder we may not list
            total.errors.append(str(err))
            continue
        total.add(reader_findings(index))
        total.add(check_index(index, scored=role in SCORED_ROLES, as_images=spec.as_images,
                              cache=cache, workers=workers))
    cache.save()
    for line in total.notes:
        logger.info("data: %s", line)
    for warning in total.warnings:
        logger.warning("data: %s", warning)
    if total.errors:
        for error in total.errors:
            logger.error("data: %s", error)
        raise DataCheckError(total.errors, _common_root([str(spec.root) for _, spec in sources]))
    logger.info("data checked: %d files in %d source(s), %d decoded now, %d from the cache (%.1f s)",
                total.files, len(sources), total.decoded, total.files - total.decoded, time.time() - started)
    return total


def verify_data(data: Mapping, cache_dir: str | Path | None = None, *, workers: int | None = None
                ) -> Findings | None:
    """The runner's check of a data config (`images`, `videos`, `val`, `test`); None if `verify` is off."""
    if not data.get("verify", True):
        logger.info("data.verify=false: frames and masks are not checked before training")
        return None
    # Imported here: the datamodule pulls in Lightning, which `inspect` (a user of this module) does not need.
    from scnn_lightning.data.datamodule import SourceSpec

    sources = [(role, SourceSpec.parse(spec)) for role in ROLES for spec in (data.get(role) or [])]
    cache_file = Path(cache_dir) / "verify" / "files.json" if cache_dir else None
    return verify_sources(sources, cache_file=cache_file, workers=workers)
