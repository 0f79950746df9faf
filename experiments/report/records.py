"""A run's light records, copied so a study's results can be committed without its heavy files.

From a run directory: `metrics.json`, `pr_curve.json`, `.hydra/config.yaml` and `.hydra/overrides.yaml` (as
`config.yaml`, `overrides.yaml`), the `manifest.json` of every published weak-label round
(`weak_labels/round_NNN/manifest.json`), and the CSV logger's per-step/epoch training and validation figures
(`csv/<stage>/version_N/metrics.csv` as `logs/<stage>/version_N.csv`). Label images, predictions and
checkpoints stay behind.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from scnn_lightning.utils import atomic_path
from scnn_lightning.weak.store import MANIFEST, WeakLabelStore

# source inside the run directory -> name in the records folder
RECORD_FILES = {"metrics.json": "metrics.json", "pr_curve.json": "pr_curve.json", ".hydra/config.yaml": "config.yaml",
                ".hydra/overrides.yaml": "overrides.yaml"}


def copy_file(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def copy_records(run_dir: Path, dest: Path) -> list[Path]:
    """Copy the records of `run_dir` into `dest` (created); returns the files written."""
    written = []
    for source, name in RECORD_FILES.items():
        if (run_dir / source).is_file():
            copy_file(run_dir / source, dest / name)
            written.append(dest / name)
    for log in sorted(run_dir.glob("csv/*/version_*/metrics.csv")):  # loss and validation curves per stage
        target = dest / "logs" / log.parent.parent.name / f"{log.parent.name}.csv"
        copy_file(log, target)
        written.append(target)
    store = WeakLabelStore(run_dir / "weak_labels")
    for round in store.rounds():  # published rounds only: a round being written has no manifest yet
        target = dest / "weak_labels" / store.round_dir(round).name / MANIFEST
        copy_file(store.round_dir(round) / MANIFEST, target)
        written.append(target)
    return written


def stale_records(records: Path, current: list[Path]) -> list[Path]:
    """Record folders under `records` (those holding a metrics.json) that belong to none of the `current`
    destinations: runs since removed from the study, or of another study sharing the folder."""
    keep = {d.resolve() for d in current}
    return sorted(p.parent for p in records.rglob(RECORD_FILES["metrics.json"]) if p.parent.resolve() not in keep)
