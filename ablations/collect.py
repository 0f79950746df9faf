"""Collect a study: the comparison report (markdown table, PR curves, MAE bars, qualitative grid), a CSV,
each run's records and per-sequence scores.

    python -m ablations.collect runs/study --out ablations/results [--gt ROOT --dataset davis [--split val]]
        [--baselines ablations/results/davis/baselines.json] [--records DIR | --no-records] [--frames 6]

Every run directory under the study root that has a metrics.json takes part (nothing under --out); runs of
the same tag (variant, or e.g. SCNN-noCRF) over several seeds are reported as mean ± std. Writes under
--out, besides the files of experiments/compare.py (report.md, summary.csv, figures):

  runs/seed<N>/<tag>/  each run's records, at its path under the study root: metrics.json, pr_curve.json,
                       config.yaml and overrides.yaml (from .hydra/), logs/<stage>/version_N.csv (the CSV
                       logger's loss and validation curves), weak_labels/round_NNN/manifest.json of every
                       round, and with --gt its per_sequence.csv; a seed's stage1/ run its stage1.json,
                       config and logs; the study's study.json, merged over every machine that ran part of
                       it. Nothing heavy (no maps, labels or checkpoints), so the folder can be committed.
                       `--records DIR` writes them elsewhere, `--no-records` not at all.
                       A run recorded there whose folder is not under the study root (finished on another
                       machine or in an earlier session, or removed from the study) is reported from its
                       records (scores, PR curve, per-sequence scores, weak-label rounds; no maps for the
                       grid) and named in a warning; `--prune-records` deletes such records instead.
  per_sequence.csv     with --gt: every run's scores per test sequence, computed from its saved maps of the
                       test set --dataset/--split name by the project's evaluator against --gt (cached in
                       its records as long as they are newer than its maps), then the rows of
                       baselines_per_sequence.csv beside --baselines; columns method (the run's tag or the
                       baseline's name), kind (trained | reference map), seed, sequence, frames, scores.

`--baselines FILE` (python -m ablations.baselines) puts its reference maps in the same table and figures.
report.md starts with the commands that reproduce it: the launch (as the study's study.json records it,
with the runs it plans that are not finished yet; rebuilt from the runs' recorded .hydra/overrides.yaml
when there is no such file), the baselines (as their file records it) and this collect.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
from pathlib import Path

import yaml

from ablations.baselines import KEYS
from ablations.launch import EXTRAS, STUDY_FILE, finished, merge_study, override_key, read_study
from experiments.compare import build_report
from experiments.report.per_sequence import agreement_warning, read_rows, score_sequences
from experiments.report.records import copy_records, records_elsewhere
from experiments.report.references import load_references, per_sequence_file
from experiments.report.runs import Run, load_run
from experiments.report.tables import REFERENCE_KIND, TRAINED_KIND
from experiments.report.wins import wins_section
from scnn_lightning.data.datamodule import name_of_test_set
from scnn_lightning.errors import DataError
from scnn_lightning.models.variants import VARIANTS
from scnn_lightning.record_paths import record_command
from scnn_lightning.utils import atomic_path

# Overrides the launcher sets per job (ablations/launch.py `plan`), so not part of the study-wide ones.
PER_JOB_KEYS = {"seed", "ablation", "tag", "stage1_only", "stage1.ckpt", "motion.classifier", "stage2.ckpt",
                "ckpt_path"}
EXTRA_TAGS = {spec[0]: name for name, spec in EXTRAS.items()}
PER_SEQUENCE_COLUMNS = ["method", "kind", "seed", "sequence", "frames", *KEYS]


def find_runs(root: Path, exclude: Path | None = None) -> list[Path]:
    """Folders below `root` of finished runs (a metrics.json, or stage1.json for a seed's stage 1), not looking
    inside a run (its maps and labels are many files) nor under `exclude` (the results folder, whose records
    hold copies of those files)."""
    skip = exclude.resolve() if exclude is not None else None
    runs = []
    for folder, subfolders, files in os.walk(root):
        here = Path(folder)
        if skip is not None and here.resolve().is_relative_to(skip):
            subfolders.clear()
            continue
        if finished(here):
            runs.append(here)
            subfolders.clear()
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
    return sorted(runs)


def read_overrides(run_dir: Path) -> list[str] | None:
    """The command-line overrides Hydra recorded for a run (None for a run without them)."""
    path = next((p for p in (run_dir / ".hydra" / "overrides.yaml", run_dir / "overrides.yaml") if p.is_file()), None)
    if path is None:  # a run folder keeps them under .hydra/, its records folder at its top
        return None
    try:
        overrides = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise DataError(path, f"cannot be read as YAML ({err})") from err
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise DataError(path, "expected a list of overrides (key=value strings)")
    return overrides


def launch_command(root: Path, runs: list[Run]) -> tuple[str | None, str]:
    """The `ablations.launch` command that makes these runs, and a note on what it could not capture;
    (None, why) when the runs were not all made by the launcher."""
    overrides = {r.path: read_overrides(r.path) for r in runs}
    unrecorded = [str(p) for p, o in overrides.items() if o is None]
    if unrecorded:
        return None, f"no .hydra/overrides.yaml in {', '.join(unrecorded)}"
    tags = {r.variant for r in runs}
    variants = [v for v in VARIANTS if v in tags]
    foreign = sorted(tags - set(VARIANTS) - set(EXTRA_TAGS))
    if foreign or not variants:
        return None, f"tags the launcher does not make: {', '.join(foreign)}" if foreign else "no variant run"
    extras = [EXTRA_TAGS[t] for t in EXTRA_TAGS if t in tags]
    # an extra's own settings are not study-wide ones, and replace the study's overrides of the same keys
    own = {tag: {override_key(o) for o in EXTRAS[name][2]} for tag, name in EXTRA_TAGS.items()}
    lists = [(own.get(r.variant, set()), [o for o in overrides[r.path] if override_key(o) not in PER_JOB_KEYS])
             for r in runs]
    kept = [(keys, [o for o in found if override_key(o) not in keys]) for keys, found in lists]
    candidates = list(dict.fromkeys(o for _, found in kept for o in found))
    shared = [o for o in candidates if all(o in found or override_key(o) in keys for keys, found in kept)]
    differing = sorted(o for o in candidates if o not in shared)
    command = record_command(["python", "-m", "ablations.launch", "--out", str(root),
                          "--seeds", *map(str, sorted({r.seed for r in runs})), "--variants", *variants,
                          "--extras", *extras, "--", *shared])
    note = f"not every run had these overrides, so they are left out: {', '.join(differing)}" if differing else ""
    return command, note


def reproduce_section(root: Path, runs: list[Run], baselines_command: str, collect: str, *,
                      records: Path | None, per_sequence: bool, out: Path) -> str:
    """The report's opening section: the commands behind it, what the study still has to run and where the
    per-run files are."""
    launches = read_study(records if records is not None else root)
    if launches:
        commands = [x["command"] for x in launches]
        source, note = f"The launch command is the one the study recorded (`{STUDY_FILE}`)", ""
    else:
        launch, note = launch_command(root, runs)
        commands = [launch] if launch else []
        source = "The launch command is rebuilt from the runs' recorded overrides (`.hydra/overrides.yaml`)"
    others = ([baselines_command] if baselines_command else []) + [collect]
    lines = ["## Reproduce", "",
             source + ("; the baselines command is the one their file records" if baselines_command else "") + ".",
             "", "```bash", *commands, *others, "```", ""]
    if not commands:
        lines += [f"No launch command: {note}.", ""]
    elif note:
        lines += [f"Launch: {note}.", ""]
    if launches:
        lines += [progress_line([root, *([records] if records is not None else [])], launches), ""]
    if records is not None:
        folder = os.path.relpath(records.resolve(), out.resolve())
        lines += [f"Per-run records (metrics.json, pr_curve.json, config.yaml, weak-label manifests"
                  f"{', per_sequence.csv' if per_sequence else ''}): [{folder}/]({folder}/).", ""]
    if per_sequence:
        lines += ["Scores per test sequence of every run and reference map: [per_sequence.csv](per_sequence.csv).", ""]
    return "\n".join(lines)


def progress_line(folders: list[Path], launches: list[dict]) -> str:
    """How many of the planned runs (stage 1 included) are finished, here or in the records, and which are not."""
    planned = list(dict.fromkeys(run for launch in launches for run in launch["runs"]))
    pending = [run for run in planned if not any(finished(folder / run) for folder in folders)]
    if not pending:
        return f"Progress: all {len(planned)} planned runs (stage 1 included) are finished."
    return (f"Progress: {len(planned) - len(pending)} of {len(planned)} planned runs (stage 1 included) are "
            f"finished; not yet: {', '.join(pending)}.")


def run_rows(run: Run, rows: list[dict]) -> list[dict]:
    return [{"method": run.variant, "kind": TRAINED_KIND, "seed": run.seed,
             **{k: r.get(k) for k in ("sequence", "frames", *KEYS)}} for r in rows]


def reference_rows(baselines: Path) -> list[dict]:
    """The rows of baselines_per_sequence.csv beside `baselines` ([] when there is no such file)."""
    path = per_sequence_file(baselines)
    if not path.is_file():
        return []
    columns = ("method", "sequence", "frames", *KEYS)
    try:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(path, f"cannot be read as CSV ({err})") from err
    missing = [c for c in columns if rows and c not in rows[0]]
    if not rows or missing:
        raise DataError(path, f"is not a per-sequence baselines table (missing {', '.join(missing) or 'rows'})")
    return [{"kind": REFERENCE_KIND, "seed": "", **{k: r[k] for k in columns}} for r in rows]


def write_per_sequence(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=PER_SEQUENCE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def per_sequence_scores(runs: list[Run], destinations: dict[Path, Path] | None, *, gt: Path, dataset: str,
                        split: str | None, test_set: str) -> tuple[list[dict], list[str]]:
    """Every run's per-sequence rows (cached in its records folder when there is one) and any warnings."""
    rows, warnings = [], []
    for run in runs:
        own = run.path / "per_sequence" / f"{test_set}.csv"  # the runner's, in a run folder or its records
        if not own.is_file() and not run.predictions(test_set).is_dir():
            kept = run.path / "per_sequence.csv"  # a run reported from its records: the scores they kept
            if kept.is_file():
                rows += run_rows(run, read_rows(kept))
            else:
                warnings.append(f"{run.path}: no saved maps of {test_set} (predictions/), so no per-sequence scores")
            continue
        cache = destinations[run.path] / "per_sequence.csv" if destinations and run.path in destinations else None
        scored = score_sequences(run, test_set, gt=gt, dataset=dataset, split=split, cache=cache)
        if (problem := agreement_warning(run, scored, test_set)) is not None:
            warnings.append(problem)
        rows += run_rows(run, scored)
    return rows, warnings


def collect(root: Path, out: Path, *, gt: Path | None, dataset: str, split: str | None, baselines: Path | None,
            records: Path | None, frames: int, command: str, prune_records: bool = False) -> Path:
    """Records, per-sequence scores and the report of the study under `root`; returns report.md's path."""
    found = find_runs(root, exclude=out)
    destinations, warnings, elsewhere = None, [], []
    if records is not None:
        destinations = {d: records / d.relative_to(root) for d in found}
        for d in found:
            copy_records(d, destinations[d])
        merge_study(root, records)
        for folder in records_elsewhere(records, list(destinations.values())):
            if prune_records:
                shutil.rmtree(folder)
            else:
                elsewhere.append(folder)
    # In study order wherever a run lives (here, or only in the records); stage-1 runs have no scores.
    place = {**{d: d.relative_to(root) for d in found}, **{d: d.relative_to(records) for d in elsewhere}}
    run_dirs = sorted((d for d in place if (d / "metrics.json").is_file()), key=place.get)
    warnings += [f"{d}: reported from its records; its run is not under {root} (made elsewhere, or removed: "
                 "--prune-records deletes its records)" for d in elsewhere if d in run_dirs]
    if not run_dirs:
        where = f" nor in {records}" if records is not None else ""
        raise DataError(root, f"no run with a metrics.json below this folder{where}")
    runs = [load_run(d) for d in run_dirs]
    refs = load_references(baselines) if baselines is not None else None  # a bad file stops us before scoring
    appendix = ""
    if gt is not None:
        rows, scoring_warnings = per_sequence_scores(runs, destinations, gt=gt, dataset=dataset, split=split,
                                             test_set=name_of_test_set(dataset, split))
        warnings += scoring_warnings
        if baselines is not None:
            rows += reference_rows(baselines)
        write_per_sequence(out / "per_sequence.csv", rows)
        appendix = wins_section(rows, list(dict.fromkeys(run.variant for run in runs)))
    preface = reproduce_section(root, runs, refs.command if refs is not None else "", command, records=records,
                                per_sequence=gt is not None, out=out)
    return build_report(run_dirs, out, gt=gt, dataset=dataset if gt else None, split=split, frames=frames,
                        baselines=baselines, preface=preface, warnings=warnings, appendix=appendix)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--gt", type=Path, help="test ground truth root: qualitative grid and per-sequence scores")
    parser.add_argument("--dataset", default="davis")
    parser.add_argument("--split")
    parser.add_argument("--baselines", type=Path, help="baselines.json of python -m ablations.baselines")
    parser.add_argument("--records", type=Path, help="where the runs' records go (default: OUT/runs)")
    parser.add_argument("--no-records", action="store_true", help="copy no records (per-sequence scores uncached)")
    parser.add_argument("--prune-records", action="store_true",
                        help="delete records of runs that are no longer in the study (listed as warnings otherwise)")
    parser.add_argument("--frames", type=int, default=6, help="rows of the qualitative grid (0: no grid)")
    args = parser.parse_args(argv)
    if args.no_records and args.records is not None:
        parser.error("--records and --no-records exclude each other")
    records = None if args.no_records else args.records or args.out / "runs"
    command = record_command(["python", "-m", "ablations.collect", *(sys.argv[1:] if argv is None else argv)])
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        report = collect(args.root, args.out, gt=args.gt, dataset=args.dataset, split=args.split,
                         baselines=args.baselines, records=records, frames=args.frames, command=command,
                         prune_records=args.prune_records)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
