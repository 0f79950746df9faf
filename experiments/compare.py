"""`python -m experiments.compare RUN_DIR... --out DIR`: one comparison report over finished runs.

    python -m experiments.compare logs/runs/SCNN/* logs/runs/sFCN/* --out reports/ablation \
        [--gt data/DAVIS --dataset davis --split val] [--test-set davis-val] [--frames 6] \
        [--baselines ablations/results/davis/baselines.json]

Runs of the same variant (and CRF setting and protocol) are pooled over their seeds. Writes under DIR:
  report.md         scores per variant (mean ± std over seeds, best in bold; all test frames pooled, then
                    one table per test set when the runs have several), figures, Table II run time
  summary.csv       the same scores at full precision, one row per variant
  pr_curves.png     PR curves of every variant (paper Fig. 5 / 7, top)
  mae_bars.png      MAE per variant with value labels (Fig. 5 / 7, bottom)
  qualitative.png   test frames × [frame, ground truth,] variant maps (Fig. 6 / 8)
  overview.png      the three figures in one picture
  weak_rounds.png   per-round fusion weights and held-out weak-label quality (Fig. 4), for runs with weak labels
Mixing evaluation protocols is allowed but flagged in the report and on stderr.

`--baselines FILE` (baselines.json of `python -m ablations.baselines`) adds its reference maps as rows
marked "(map)" to the scores table and summary.csv (column `kind`), grey dashed curves to pr_curves.png
(from baselines_curves.json beside it, when present) and hatched grey bars to mae_bars.png. They are scores
of maps taken as they are: no seeds, no CRF. A protocol, test set or frame count that differs from the
runs' is flagged like mixed protocols.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from experiments.report.figures import compose_overview, plot_mae_bars, plot_pr_curves
from experiments.report.qualitative import plot_grid, rows_from_dataset, rows_from_predictions, shown_run
from experiments.report.references import References, load_references, reference_warnings
from experiments.report.runs import LOWER_IS_BETTER, Run, VariantGroup, consistency_warnings, group_runs, load_run
from experiments.report.tables import metrics_table, runtime_table, write_summary_csv
from experiments.report.weak_rounds import weak_rounds_section
from scnn_lightning.data.datamodule import name_of_test_set
from scnn_lightning.errors import DataError
from scnn_lightning.record_paths import record_path
from scnn_lightning.utils import atomic_path


def _load_all(run_dirs) -> list:
    seen: dict[Path, Path] = {}
    runs = []
    for raw in run_dirs:
        path = Path(raw)
        if path.resolve() in seen:
            raise DataError(path, f"given twice (also as {seen[path.resolve()]}); each run may count once")
        seen[path.resolve()] = path
        runs.append(load_run(path))
    if not runs:
        raise ValueError("no run directories given")
    return runs


def _default_test_set(runs: list[Run], dataset: str | None, split: str | None) -> str | None:
    """The test set the grid shows: the one `--dataset/--split` names if the runs recorded it, else their first."""
    recorded = list(dict.fromkeys(name for run in runs for name in run.datasets))
    named = name_of_test_set(dataset, split) if dataset is not None else None
    return named if named in recorded else next(iter(recorded), None)


def _per_set_tables(runs: list[Run]) -> list[str]:
    """Markdown sections with each test set's own scores, when the runs recorded more than one set."""
    names = list(dict.fromkeys(name for run in runs for name in run.datasets))
    if len(names) < 2:
        return []
    lines = ["## Scores per test set", ""]
    for name in names:
        alone = [dataclasses.replace(run, scores=run.datasets.get(name, {})) for run in runs]
        lines += [f"### {name}", "", metrics_table(group_runs(alone)), ""]
    return lines


def _qualitative(groups: list[VariantGroup], out: Path, *, gt, dataset, split, test_set,
                 frames: int) -> tuple[dict[str, int], list[str]]:
    """Draw the grid; returns the seed each shown variant's maps come from ({} when no grid was drawn) and any
    warning about why a variant or the whole grid is left out."""
    if frames <= 0:
        return {}, []
    # Runs reported from their records alone kept no maps: the grid shows the others.
    mapless = [g.label for g in groups if not shown_run(g, test_set).predictions(test_set).is_dir()]
    notes = [f"no saved maps of {', '.join(mapless)}: not in the qualitative grid"] if mapless else []
    groups = [g for g in groups if g.label not in mapless]
    if not groups:
        return {}, notes
    if gt is not None:
        rows = rows_from_dataset(groups, frames, gt=Path(gt), dataset=dataset, split=split, test_set=test_set)
    else:
        rows = rows_from_predictions(groups, frames, test_set)
    if not rows:
        return {}, [*notes, "no test frame has a saliency map in every run's predictions/ folder; "
                            "the qualitative grid is left out"]
    plot_grid(rows, groups, out / "qualitative.png")
    return {g.label: shown_run(g, test_set).seed for g in groups}, notes


def _references_text(refs: References | None, test_set: str | None) -> list[str]:
    if refs is None:
        return []
    where = f"`{refs.path}`" + (f" (made by `{refs.command}`)" if refs.command else "")
    frames = ", ".join(str(n) for n in sorted(n for n in refs.frames() if n is not None)) or "an unrecorded number of"
    curves = (f"their PR curves from `{refs.curves_path}`, drawn grey and dashed" if refs.curves_path is not None
              else "no curves file beside it, so they have no PR curves")
    return [f"Rows marked \"(map)\" are reference maps scored as they are, not trained (no seeds, no CRF): "
            f"{len(refs.groups)} rows from {where}, {refs.protocol} protocol, {frames} frames"
            + (f" of test set `{test_set}`" if test_set else "") + f"; {curves}; hatched grey bars in the MAE plot. "
            "They count for the bold best values.", ""]


def _markdown(groups, runs, warnings: list[str], *, has_pr: bool, grid_seeds: dict[str, int], gt, dataset, split,
              test_set, references: list[str] = (), preface: str = "") -> str:
    trained = [g for g in groups if not g.reference]
    lines = ["# Comparison report", ""]
    lines += [f"> **Warning:** {w}" for w in warnings] + ([""] if warnings else [])
    lines += [preface] if preface else []
    lines += [f"{len(runs)} run(s), {len(trained)} variant(s)"
              + (f", {len(groups) - len(trained)} reference map(s)" if references else "")
              + ". Scores are mean ± sample std over seeds "
              f"(n runs); the best value of each column is in bold "
              f"({', '.join(sorted(LOWER_IS_BETTER))}: lower is better, the rest: higher). "
              "`protocol` is the evaluation protocol and `CRF` whether the dense CRF (Eq. 9-10) refined the maps.",
              "", "## Scores", "", "Every test frame pooled (each run's metrics.json top level).", "",
              *references,
              metrics_table(groups), "", "Full precision: [summary.csv](summary.csv).", ""]
    lines += _per_set_tables(runs)
    lines += ["## PR curves and MAE", ""]
    lines += ["![PR curves](pr_curves.png)"] if has_pr else ["No run recorded a pr_curve.json; no PR plot."]
    lines += ["![MAE](mae_bars.png)", ""]
    if grid_seeds:
        if gt is None:
            source = "no ground-truth data given (`--gt`), so only the maps are shown"
        else:
            source = (f"input frames and ground truth from {dataset} at `{record_path(gt)}`"
                      + (f" (split {split})" if split else ""))
        if test_set is not None:
            source += f"; maps of test set `{test_set}`"
        shown = (f"seed {next(iter(grid_seeds.values()))} for every variant" if len(set(grid_seeds.values())) == 1
                 else ", ".join(f"{label} seed {seed}" for label, seed in grid_seeds.items()))
        lines += ["## Qualitative results", "",
                  f"Each variant's maps come from its lowest seed with saved maps (here {shown}); {source}.",
                  "", "![qualitative](qualitative.png)", ""]
    runtime = runtime_table(groups)
    if runtime is not None:
        lines += ["## Run time per component (Table II)", "",
                  "Mean seconds per frame over the runs that recorded `timings.json`.", "", runtime, ""]
    lines += ["## Runs", ""]
    lines += [f"- {g.label}: " + ", ".join(f"`{r.path}` (seed {r.seed})" for r in g.runs) for g in trained]
    return "\n".join(lines) + "\n"


def build_report(run_dirs, out, *, gt=None, dataset=None, split=None, frames: int = 6, test_set=None,
                 baselines=None, preface: str = "", warnings=(), appendix: str = "") -> Path:
    """Write the comparison report of `run_dirs` under `out`; returns the path of `report.md`.

    `test_set`: whose maps the qualitative grid shows (`predictions/<test set>/`); by default the one
    `dataset`/`split` name if the runs recorded it, else the first test set they recorded.
    `baselines`: a baselines.json whose reference maps join the table and figures (module docstring).
    `preface`: markdown placed near the top (e.g. the commands that reproduce the report); `warnings`: more
    problems to flag beside the report's own; `appendix`: markdown placed before the weak-label rounds.
    """
    if gt is not None and dataset is None:
        raise ValueError("--gt needs --dataset (the reader for that root)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = _load_all(run_dirs)
    trained = group_runs(runs)
    warnings = consistency_warnings(runs, trained) + list(warnings)
    # The set the user named is the one the reference maps must share, even where the grid falls back to another.
    named_set = test_set or (name_of_test_set(dataset, split) if dataset is not None else None)
    test_set = test_set or _default_test_set(runs, dataset, split)
    refs = load_references(baselines) if baselines is not None else None
    groups = trained + (refs.groups if refs is not None else [])
    if refs is not None:
        warnings += reference_warnings(refs, runs, named_set or test_set)

    write_summary_csv(out / "summary.csv", groups)
    has_pr = plot_pr_curves(groups, out / "pr_curves.png")
    plot_mae_bars(groups, out / "mae_bars.png")
    # The grid shows the runs' own maps; the reference maps are not under any run's predictions/.
    grid_seeds, grid_warnings = _qualitative(trained, out, gt=gt, dataset=dataset, split=split, test_set=test_set,
                                             frames=frames)
    warnings += grid_warnings
    compose_overview([out / "pr_curves.png"] * has_pr + [out / "mae_bars.png"],
                     out / "qualitative.png" if grid_seeds else None, out / "overview.png")
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)

    report = out / "report.md"
    with atomic_path(report) as tmp:
        tmp.write_text(_markdown(groups, runs, warnings, has_pr=has_pr, grid_seeds=grid_seeds,
                                 gt=gt, dataset=dataset, split=split, test_set=test_set,
                                 references=_references_text(refs, named_set or test_set), preface=preface)
                       + (f"\n{appendix}\n" if appendix else "") + weak_rounds_section(runs, out))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                        help="finished runs (each with metrics.json)")
    parser.add_argument("--out", required=True, type=Path, help="report folder (created)")
    parser.add_argument("--gt", type=Path,
                        help="ground-truth dataset root, for the qualitative grid's frames and masks")
    parser.add_argument("--dataset", help="reader for --gt (scnn_lightning.data.readers names, e.g. davis)")
    parser.add_argument("--split", help="split of --gt (reader-specific, e.g. val)")
    parser.add_argument("--test-set", help="test set whose maps the grid shows (predictions/<test set>/; default: "
                                           "the one --dataset/--split name if recorded, else the runs' first)")
    parser.add_argument("--frames", type=int, default=6, help="rows of the qualitative grid (0: no grid)")
    parser.add_argument("--baselines", type=Path,
                        help="baselines.json of python -m ablations.baselines: its reference maps join the table")
    args = parser.parse_args(argv)
    if args.gt is not None and args.dataset is None:
        parser.error("--gt needs --dataset")
    try:
        report = build_report(args.run_dirs, args.out, gt=args.gt, dataset=args.dataset, split=args.split,
                              frames=args.frames, test_set=args.test_set, baselines=args.baselines)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
