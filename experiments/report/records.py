"""A run's light records, copied so a study's results can be committed without its heavy files.

From a run directory: `metrics.json` (`stage1.json` for a seed's stage-1 run), `pr_curve.json`, each stage's
per-epoch validation curve (`val_curve.csv`, `stage1/val_curve.csv` as `stage1_val_curve.csv`), the
runner's per-sequence scores (`per_sequence/<test set>.csv`),
`.hydra/config.yaml` and `.hydra/overrides.yaml` (as `config.yaml`, `overrides.yaml`), the `manifest.json` of
every published weak-label round (`weak_labels/round_NNN/manifest.json`) with the frame lists they name
(`weak_labels/frames-<digest>.json`), and the CSV logger's per-step/epoch training and validation figures
(`[stage1/]csv/<stage>/version_N/metrics.csv` as `logs/<stage>/version_N.csv`).
Label images, predictions and checkpoints stay behind. The records hold what a report needs, so a run whose
folder is gone (made on another machine) is reported from them (`ablations.collect`). The paths a JSON or YAML
record holds are written in record form (`scnn_lightning.record_paths`: repository-relative, `DATA/...` for the
data), whatever wrote the run, so that records read alike from every machine.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from omegaconf import OmegaConf

from scnn_lightning.record_paths import in_record_form
from scnn_lightning.utils import atomic_path, write_json
from scnn_lightning.weak.store import MANIFEST, WeakLabelStore

# source inside the run directory -> name in the records folder
RECORD_FILES = {"metrics.json": "metrics.json", "stage1.json": "stage1.json", "pr_curve.json": "pr_curve.json",
                ".hydra/config.yaml": "config.yaml", ".hydra/overrides.yaml": "overrides.yaml",
                "val_curve.csv": "val_curve.csv", "stage1/val_curve.csv": "stage1_val_curve.csv"}
LOGS = ("csv/*/version_*/metrics.csv", "stage1/csv/*/version_*/metrics.csv")  # a stage-1 run logs one level down


def copy_file(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def copy_record(src: Path, dst: Path) -> None:
    """Copy one record; a JSON or YAML one with its paths in record form (Hydra's YAML laid out as Hydra does)."""
    if src.suffix == ".json":
        write_json(dst, in_record_form(json.loads(src.read_text())))
    elif src.suffix == ".yaml":
        config = in_record_form(OmegaConf.to_container(OmegaConf.load(src)))  # unresolved: ${...} stays as written
        with atomic_path(dst) as tmp:
            tmp.write_text(OmegaConf.to_yaml(OmegaConf.create(config)))
    else:
        copy_file(src, dst)


def copy_records(run_dir: Path, dest: Path) -> list[Path]:
    """Copy the records of `run_dir` into `dest` (created); returns the files written."""
    written = []
    for source, name in RECORD_FILES.items():
        if (run_dir / source).is_file():
            copy_record(run_dir / source, dest / name)
            written.append(dest / name)
    for scores in sorted(run_dir.glob("per_sequence/*.csv")):  # the runner's per-sequence scores per test set
        copy_file(scores, dest / "per_sequence" / scores.name)
        written.append(dest / "per_sequence" / scores.name)
    for log in sorted(log for pattern in LOGS for log in run_dir.glob(pattern)):  # loss and validation curves
        target = dest / "logs" / log.parent.parent.name / f"{log.parent.name}.csv"
        copy_file(log, target)
        written.append(target)
    store = WeakLabelStore(run_dir / "weak_labels")
    for round in store.rounds():  # published rounds only: a round being written has no manifest yet
        target = dest / "weak_labels" / store.round_dir(round).name / MANIFEST
        copy_file(store.round_dir(round) / MANIFEST, target)
        written.append(target)
    for listed in store.frame_list_files():  # the frame lists the manifests name, each kept once per run
        copy_file(listed, dest / "weak_labels" / listed.name)
        written.append(dest / "weak_labels" / listed.name)
    return written


def records_elsewhere(records: Path, current: list[Path]) -> list[Path]:
    """Record folders under `records` (those of a finished run: metrics.json or stage1.json) that belong to
    none of the `current` destinations: runs made on another machine, or since removed from the study."""
    keep = {d.resolve() for d in current}
    found = {p.parent for name in ("metrics.json", "stage1.json") for p in records.rglob(name)}
    return sorted(p for p in found if p.resolve() not in keep)
