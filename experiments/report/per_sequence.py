"""Per-sequence scores of a run: the `per_sequence/<test set>.csv` the runner writes with its test scores, or,
for runs older than that file, its saved maps of one test set scored by the project's evaluator
(`scnn_lightning.evaluate.evaluate_folders`, whose scores the runner's equal) against the ground truth.

Scoring a DAVIS val run (1,376 frames) takes half a minute or more, so the evaluator's per_sequence.csv
is cached (e.g. in the run's records folder) and used again while it is newer than every map and the
run's metrics.json. Delete the cached file to score again (e.g. against another ground truth).
"""

from __future__ import annotations

import csv
import math
import tempfile
from pathlib import Path

from experiments.report.records import copy_file
from experiments.report.runs import Run
from scnn_lightning.errors import DataError
from scnn_lightning.evaluate import evaluate_folders

MAE_TOLERANCE = 1e-5  # the runner and the evaluator score the same 8-bit maps: only float noise may differ


def _fresh(cache: Path | None, maps: Path, metrics: Path) -> bool:
    """Whether `cache` was written after every map under `maps` and after `metrics`."""
    if cache is None or not cache.is_file():
        return False
    changes = [p.stat().st_mtime for p in maps.rglob("*") if p.is_file()] + [metrics.stat().st_mtime]
    return cache.stat().st_mtime > max(changes)


def _number(path: Path, key: str, text: str) -> float | None:
    """A CSV cell as a number; empty means not measured (e.g. a sequence the protocol skips entirely)."""
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise DataError(path, f"{key} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise DataError(path, f"{key} is {text}, not a finite number")
    return value


def read_rows(path: Path) -> list[dict]:
    """The evaluator's per_sequence.csv: {sequence, frames, <score>: float | None, ...} per sequence."""
    try:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(path, f"cannot be read as CSV ({err})") from err
    if not rows or not {"sequence", "frames"} <= set(rows[0]):
        raise DataError(path, "is not a per-sequence score table (columns sequence, frames, scores)")
    parsed = []
    for line in rows:
        frames = _number(path, "frames", line["frames"])
        if frames is None or frames != int(frames) or frames < 0:
            raise DataError(path, f"sequence {line['sequence']}: frames {line['frames']!r} is not a frame count")
        scores = {k: _number(path, f"{line['sequence']} {k}", v) for k, v in line.items()
                  if k not in ("sequence", "frames")}
        parsed.append({"sequence": line["sequence"], "frames": int(frames), **scores})
    return parsed


def score_sequences(run: Run, test_set: str | None, *, gt: Path, dataset: str, split: str | None,
                    cache: Path | None = None) -> list[dict]:
    """Per-sequence rows of `run`'s maps of `test_set`, from `cache` while it is fresh, else scored (and cached)."""
    own = run.path / "per_sequence" / f"{test_set}.csv"
    if test_set and own.is_file():  # the runner scored these maps per sequence as it wrote them
        if cache is not None:
            copy_file(own, cache)
        return read_rows(own)
    maps = run.predictions(test_set)
    if not maps.is_dir():
        raise DataError(maps, "no saved maps of this run to score per sequence")
    if _fresh(cache, maps, run.path / "metrics.json"):
        return read_rows(cache)
    with tempfile.TemporaryDirectory(prefix="per_sequence_") as tmp:
        # No temporal term: it needs optical flow over every frame and no per-sequence column asks for it.
        # Missing maps are allowed: `agreement_warning` compares the frames scored with the run's own.
        evaluate_folders(maps, gt, tmp, protocol=run.protocol, temporal=False, dataset=dataset, split=split,
                         allow_missing=True)
        scored = Path(tmp) / "per_sequence.csv"
        if cache is not None:
            copy_file(scored, cache)
        return read_rows(scored)


def agreement_warning(run: Run, rows: list[dict], test_set: str | None) -> str | None:
    """A warning when the per-sequence rows do not add up to the run's own scores of that test set (other
    frames, or maps changed since the run scored them); None when they agree."""
    recorded = run.datasets.get(test_set, run.scores) if test_set else run.scores
    frames = run.frames_per_set.get(test_set, run.frames) if test_set else run.frames
    counted = sum(r["frames"] for r in rows)
    if frames is not None and counted != frames:
        return (f"{run.path}: its maps scored per sequence cover {counted} frames, its metrics.json "
                f"{frames}; per_sequence.csv and the table are not over the same frames")
    # Other protocols average per sequence, not per frame: no frame-weighted check for them.
    if run.protocol != "pysod" or "mae" not in recorded or any(r.get("mae") is None for r in rows) or not counted:
        return None
    pooled = sum(r["frames"] * r["mae"] for r in rows) / counted
    if abs(pooled - recorded["mae"]) > MAE_TOLERANCE:
        return (f"{run.path}: its maps scored per sequence give MAE {pooled:.6f}, its metrics.json "
                f"{recorded['mae']:.6f}; the saved maps are not the ones the run scored")
    return None
