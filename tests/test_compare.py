"""`python -m experiments.compare`: the report renders from two real (tiny, synthetic) runs."""

from __future__ import annotations

import csv
import json
import os
import shutil
import statistics
from pathlib import Path

import cv2
import numpy as np
import pytest
from matplotlib import colors

from ablations.collect import collect
from experiments.compare import build_report, main
from experiments.report import per_sequence
from experiments.report.figures import group_styles, style
from experiments.report.qualitative import choose_frames
from experiments.report.runs import VariantGroup, load_run
from experiments.run import run
from scnn_lightning.errors import DataError
from tests.conftest import compose_run

SCORES = ("mae", "max_f", "mean_f", "adp_f", "s_measure", "max_e", "mean_e", "adp_e", "w_f")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir) -> dict[str, Path]:
    """Two real runs of the project's runner: sFCN, then OT built from the same stage-1 checkpoint."""
    root = tmp_path_factory.mktemp("compare_runs")
    run(compose_run(root / "sfcn", data_dir, ["ablation=sFCN", "motion=magnitude", "crf=null"]))
    stage1 = root / "sfcn" / "stage1" / "checkpoints" / "last.ckpt"
    run(compose_run(root / "ot", data_dir, ["ablation=OT", "motion=magnitude", "crf=null", f"stage1.ckpt={stage1}"]))
    return {"sFCN": root / "sfcn", "OT": root / "ot"}


@pytest.fixture(scope="module")
def report(runs, data_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    return build_report([runs["sFCN"], runs["OT"]], out, gt=data_dir / "synthetic" / "test", dataset="davis")


def metrics_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def copy_run(src: Path, dst: Path, **changes) -> Path:
    """A second 'run' made from a real one: its outputs, with some metrics.json entries replaced."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("checkpoints", "stage1", "csv", "weak_labels"))
    metrics = metrics_of(dst)
    metrics.update(changes)
    (dst / "metrics.json").write_text(json.dumps(metrics))
    return dst


def table_rows(report_md: Path) -> dict[str, dict[str, str]]:
    """The scores table of report.md as {label: {column: cell}}."""
    lines = [ln for ln in report_md.read_text().splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == len(header) and cells[0] != "model":
            rows[cells[0]] = dict(zip(header, cells))
    return rows


def test_report_lists_both_variants_with_their_numbers(report, runs):
    rows = table_rows(report)
    assert set(rows) == {"sFCN", "OT"}
    for variant, run_dir in runs.items():
        metrics = metrics_of(run_dir)
        row = rows[variant]
        assert (row["protocol"], row["CRF"], row["n"], row["seeds"]) == ("pysod", "off", "1", "0")
        for key in SCORES:
            column = key + (" ↓" if key == "mae" else " ↑")
            assert row[column].strip("*") == f"{metrics[key]:.3f}", (variant, key)
    # Bold marks the best variant: the lower MAE, the higher max F.
    maes = {v: metrics_of(d)["mae"] for v, d in runs.items()}
    assert rows[min(maes, key=maes.get)]["mae ↓"].startswith("**")
    if round(min(maes.values()), 3) != round(max(maes.values()), 3):
        assert not rows[max(maes, key=maes.get)]["mae ↓"].startswith("**")
    text = report.read_text()
    assert "Warning" not in text and "![qualitative](qualitative.png)" in text


def test_figures_are_real_images(report):
    for name in ("pr_curves.png", "mae_bars.png", "qualitative.png", "overview.png"):
        img = cv2.imread(str(report.parent / name), cv2.IMREAD_COLOR)
        assert img is not None, name
        assert min(img.shape[:2]) > 150, (name, img.shape)
        assert img.std() > 20, f"{name} looks blank"
        assert (img < 250).any(axis=2).mean() > 0.02, f"{name} is mostly white"


def test_summary_csv_parses_to_the_runs_metrics(report, runs):
    with (report.parent / "summary.csv").open(newline="") as handle:
        rows = {r["variant"]: r for r in csv.DictReader(handle)}
    assert set(rows) == set(runs)
    for variant, run_dir in runs.items():
        metrics = metrics_of(run_dir)
        assert rows[variant]["n"] == "1" and rows[variant]["mae_std"] == ""
        for key in SCORES:
            assert float(rows[variant][f"{key}_mean"]) == pytest.approx(metrics[key], abs=1e-12)


def test_seeds_of_one_variant_are_pooled(runs, tmp_path):
    first = metrics_of(runs["sFCN"])
    second = copy_run(runs["sFCN"], tmp_path / "sfcn_seed1", seed=1, mae=first["mae"] + 0.1, max_f=0.5)
    out = build_report([runs["sFCN"], second, runs["OT"]], tmp_path / "out", frames=0)

    with (out.parent / "summary.csv").open(newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["variant"] == "sFCN")
    maes = [first["mae"], first["mae"] + 0.1]
    assert (row["n"], row["seeds"]) == ("2", "0 1")
    assert float(row["mae_mean"]) == pytest.approx(statistics.mean(maes))
    assert float(row["mae_std"]) == pytest.approx(statistics.stdev(maes))
    assert float(row["max_f_mean"]) == pytest.approx((first["max_f"] + 0.5) / 2)

    cell = table_rows(out)["sFCN"]
    assert cell["n"] == "2" and cell["seeds"] == "0, 1"
    assert cell["mae ↓"].strip("*") == f"{statistics.mean(maes):.3f} ± {statistics.stdev(maes):.3f}"
    assert not (out.parent / "qualitative.png").exists()  # frames=0: no grid asked for


def test_missing_metrics_is_an_error_naming_the_directory(runs, tmp_path, capsys):
    unfinished = tmp_path / "unfinished_run"
    unfinished.mkdir()
    with pytest.raises(DataError, match="unfinished_run.*no metrics.json"):
        build_report([runs["OT"], unfinished], tmp_path / "out")
    assert main([str(runs["OT"]), str(unfinished), "--out", str(tmp_path / "cli")]) == 1
    assert str(unfinished) in capsys.readouterr().err


def test_mixed_protocols_are_flagged(runs, tmp_path, capsys):
    davsod = copy_run(runs["OT"], tmp_path / "ot_davsod", protocol="davsod")
    out = build_report([runs["OT"], davsod], tmp_path / "out", frames=0)
    text = out.read_text()
    assert "> **Warning:** runs were evaluated with different protocols" in text
    assert str(davsod) in text
    assert "different protocols" in capsys.readouterr().err
    assert set(table_rows(out)) == {"OT (pysod)", "OT (davsod)"}  # never pooled across protocols


def test_runtime_table_when_timings_were_recorded(runs, tmp_path):
    timed = copy_run(runs["OT"], tmp_path / "ot_timed")
    # The layout of `python -m benchmarks.runtime --out`: components, total, and extra keys to ignore.
    (timed / "timings.json").write_text(json.dumps({"flow": 0.3, "temporal_prior": 0.1, "network": 0.5, "crf": 0.1,
                                                    "total": 1.0, "flow_ratio": 0.3, "motion_target_met": False,
                                                    "setup": {"height": 64, "width": 96}}))
    out = build_report([runs["sFCN"], timed], tmp_path / "out", frames=0)
    text = out.read_text()
    assert "## Run time per component (Table II)" in text
    assert "| OT | Optical flow computation | 0.300 | 30.00 |" in text
    assert "| OT | Neural network processing | 0.500 | 50.00 |" in text
    assert "| OT | Total | 1.000 | 100 |" in text
    assert "| sFCN | Total" not in text  # the untimed run has no rows


def test_grid_without_ground_truth_shows_only_maps(runs, tmp_path):
    out = build_report([runs["sFCN"], runs["OT"]], tmp_path / "out", frames=2)
    assert "only the maps are shown" in out.read_text()
    with_gt_free = cv2.imread(str(out.parent / "qualitative.png"))
    assert with_gt_free is not None and with_gt_free.std() > 5


def test_frames_are_spread_over_sequences_deterministically():
    candidates = {f"seq{s}": [f"{i:05d}" for i in range(10)] for s in range(3)}
    # Two per sequence: the centres of each half of the ten frames.
    assert choose_frames(candidates, 6) == [("seq0", "00002"), ("seq0", "00007"), ("seq1", "00002"),
                                            ("seq1", "00007"), ("seq2", "00002"), ("seq2", "00007")]
    # Fewer rows than sequences: the outer sequences' middle frames.
    assert choose_frames(candidates, 2) == [("seq0", "00005"), ("seq2", "00005")]
    # Uneven split: 4 rows over 3 sequences gives the first sequence the extra row.
    assert [k[0] for k in choose_frames(candidates, 4)] == ["seq0", "seq0", "seq1", "seq2"]
    assert [k[1] for k in choose_frames({"only": list("abcdef")}, 3)] == ["b", "d", "f"]
    assert choose_frames({"short": ["x"]}, 6) == [("short", "x")]  # never invents frames


def test_bad_metrics_values_are_reported(runs, tmp_path):
    broken = copy_run(runs["OT"], tmp_path / "nan_run", mae=float("nan"))
    with pytest.raises(DataError, match=r"nan_run/metrics.json: 'mae' must be a finite number"):
        build_report([broken], tmp_path / "out")


def test_a_repeated_seed_is_flagged(runs, tmp_path, capsys):
    twin = copy_run(runs["OT"], tmp_path / "ot_again")
    out = build_report([runs["OT"], twin], tmp_path / "out", frames=0)
    assert "> **Warning:** OT: seed(s) 0 appear in more than one run" in out.read_text()
    assert "seed(s) 0" in capsys.readouterr().err
    with pytest.raises(DataError, match="given twice"):
        build_report([runs["OT"], runs["OT"]], tmp_path / "out2", frames=0)


def test_runs_without_maps_leave_the_grid_and_unshared_maps_leave_it_out(runs, tmp_path, capsys):
    bare = copy_run(runs["OT"], tmp_path / "ot_no_maps")
    shutil.rmtree(bare / "predictions")
    out = build_report([runs["sFCN"], bare], tmp_path / "out")  # e.g. a run reported from its records
    assert "no saved maps of OT: not in the qualitative grid" in out.read_text()
    assert "maps come from its lowest seed with saved maps (here seed 0 for every variant)" in out.read_text()
    assert (out.parent / "qualitative.png").is_file()
    elsewhere = copy_run(runs["OT"], tmp_path / "ot_other_frames")
    for sequence in [p for p in (elsewhere / "predictions").glob("*/*") if p.is_dir()]:
        sequence.rename(sequence.with_name("other-" + sequence.name))
    out = build_report([runs["sFCN"], elsewhere], tmp_path / "out2")
    assert "the qualitative grid is left out" in out.read_text() and "left out" in capsys.readouterr().err
    assert not (out.parent / "qualitative.png").exists() and (out.parent / "overview.png").is_file()


def test_temporal_consistency_is_lower_better_and_counts_its_own_runs(runs, tmp_path):
    sfcn_tc = copy_run(runs["sFCN"], tmp_path / "sfcn_tc", seed=1, temporal_consistency=0.2)
    ot_tc = copy_run(runs["OT"], tmp_path / "ot_tc", temporal_consistency=0.1)
    rows = table_rows(build_report([runs["sFCN"], sfcn_tc, ot_tc], tmp_path / "out", frames=0))
    assert rows["sFCN"]["temporal_consistency ↓"] == "0.200 (n=1)"  # only one of its two seeds measured it
    assert rows["OT"]["temporal_consistency ↓"] == "**0.100**"


def test_unknown_ground_truth_dataset_is_an_error(runs, data_dir, tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'nope'"):
        build_report([runs["OT"]], tmp_path / "out", gt=data_dir / "synthetic" / "test", dataset="nope")


def _frames_folder(root: Path, sequence: str) -> Path:
    """An unlabelled `frames` dataset: one folder of two images named like the runs' test frames."""
    folder = root / sequence
    folder.mkdir(parents=True)
    for name in ("00000", "00001"):
        cv2.imwrite(str(folder / f"{name}.png"), np.full((48, 64, 3), 90, np.uint8))
    return folder


def test_ground_truth_that_matches_no_prediction_is_an_error(runs, tmp_path):
    other = _frames_folder(tmp_path / "gt", "another_clip")
    with pytest.raises(DataError, match=r"another_clip: none of the 2 frames of frames has a map"):
        build_report([runs["OT"]], tmp_path / "out", gt=other, dataset="frames")


def test_unlabelled_frames_still_fill_the_grid(runs, tmp_path):
    sequence = sorted(p.name for p in (runs["OT"] / "predictions" / "davis").iterdir())[0]
    frames = _frames_folder(tmp_path / "gt", sequence)
    out = build_report([runs["OT"]], tmp_path / "out", gt=frames, dataset="frames", frames=2, test_set="davis")
    assert "![qualitative](qualitative.png)" in out.read_text()
    assert cv2.imread(str(out.parent / "qualitative.png")) is not None


def test_runs_from_before_test_sets_were_recorded_still_report(runs, data_dir, tmp_path):
    """Older runs: no `datasets` in metrics.json and maps in predictions/<seq>/<frame>.png."""
    old = copy_run(runs["OT"], tmp_path / "ot_old", datasets=None)
    for seq in list((old / "predictions" / "davis").iterdir()):
        seq.rename(old / "predictions" / seq.name)
    (old / "predictions" / "davis").rmdir()
    out = build_report([runs["sFCN"], old], tmp_path / "out", gt=data_dir / "synthetic" / "test", dataset="davis",
                       frames=2)
    assert "![qualitative](qualitative.png)" in out.read_text() and "Scores per test set" not in out.read_text()


# --- reference maps (baselines.json of ablations.baselines) beside the runs -------------------------------

REFERENCE_ROWS = [  # the layout `python -m ablations.baselines` writes (rounded scores, frames per row)
    {"method": "csnet-x2", "mae": 0.0621, "s_measure": 0.8111, "max_f": 0.7389, "mean_f": 0.661, "max_e": 0.8845,
     "mean_e": 0.8113, "w_f": 0.5671},
    {"method": "centre", "mae": 0.3141, "s_measure": 0.5011, "max_f": 0.3652, "mean_f": 0.2508, "max_e": 0.7748,
     "mean_e": 0.4772, "w_f": 0.1638},
]


def write_baselines(folder: Path, frames: int, *, protocol: str = "pysod", curves: bool = True) -> Path:
    """A small baselines.json (+ baselines_curves.json for csnet-x2 only, and baselines_per_sequence.csv with one
    sequence) as ablations/baselines.py lays them out."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{**row, "frames": frames} for row in REFERENCE_ROWS]
    path = folder / "baselines.json"
    path.write_text(json.dumps({"command": "python -m ablations.baselines --davis D", "protocol": protocol,
                                "rows": rows}))
    if curves:
        recall = np.linspace(0, 1, 256)
        (folder / "baselines_curves.json").write_text(json.dumps(
            {"csnet-x2": {"precision": (0.9 - 0.4 * recall).tolist(), "recall": recall.tolist()}}))
    with (folder / "baselines_per_sequence.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["method", "sequence", "frames", *list(REFERENCE_ROWS[0])[1:]])
        writer.writeheader()
        writer.writerows({**row, "sequence": "syn0000", "frames": frames} for row in REFERENCE_ROWS)
    return path


def test_reference_maps_join_the_table_and_summary(runs, tmp_path):
    baselines = write_baselines(tmp_path / "base", metrics_of(runs["OT"])["frames"])
    out = build_report([runs["sFCN"], runs["OT"]], tmp_path / "out", frames=0, baselines=baselines)
    text = out.read_text()
    rows = table_rows(out)
    assert list(rows) == ["sFCN", "OT", "CSNet-x2 (map)", "centre prior (map)"]  # trained first, then maps
    ref = rows["CSNet-x2 (map)"]
    assert (ref["protocol"], ref["CRF"], ref["n"], ref["seeds"]) == ("pysod", "off", "—", "—")
    assert ref["mae ↓"] == "**0.062**" and ref["max_f ↑"] == "**0.739**" and ref["adp_f ↑"] == "—"
    assert rows["centre prior (map)"]["s_measure ↑"] == "0.501"
    assert "Warning" not in text and "2 reference map(s)" in text and "grey and dashed" in text

    with (out.parent / "summary.csv").open(newline="") as handle:
        summary = {r["variant"]: r for r in csv.DictReader(handle)}
    assert {v: r["kind"] for v, r in summary.items()} == {"sFCN": "trained", "OT": "trained",
                                                          "csnet-x2": "reference map", "centre": "reference map"}
    assert summary["csnet-x2"]["n"] == "" and summary["csnet-x2"]["runs"] == str(baselines)
    assert float(summary["csnet-x2"]["mae_mean"]) == 0.0621 and summary["OT"]["n"] == "1"


def test_summary_has_no_kind_column_without_reference_maps(report):
    with (report.parent / "summary.csv").open(newline="") as handle:
        assert "kind" not in next(csv.reader(handle))


def test_reference_maps_are_grey_and_never_solid_and_leave_the_variants_colours():
    trained = [VariantGroup(label=v, variant=v, protocol="pysod", crf=True, runs=[]) for v in ("sFCN", "SCNN")]
    maps = [VariantGroup(label=f"{m} (map)", variant=m, protocol="pysod", crf=False, runs=[], reference=True)
            for m in ("csnet-x1", "csnet-x2", "centre")]
    styles = group_styles(trained + maps)
    assert styles[:2] == [style(0), style(1)]
    for ref in styles[2:]:
        assert ref["linestyle"] != "-"
        red, green, blue, _ = colors.to_rgba(ref["color"])
        assert red == green == blue  # a grey
    assert len({s["linestyle"] for s in styles[2:]}) == 3


def test_reference_maps_of_other_frames_or_protocol_are_flagged(runs, tmp_path, capsys):
    baselines = write_baselines(tmp_path / "base", 1376, protocol="davsod", curves=False)
    out = build_report([runs["OT"]], tmp_path / "out", frames=0, baselines=baselines)
    text = out.read_text()
    assert "> **Warning:** the reference maps" in text and "davsod protocol" in text
    assert "scored on 1376 frames" in text and str(runs["OT"]) in text
    assert "no curves file beside it" in text  # no baselines_curves.json: rows without curves, not a crash
    assert "scored on 1376 frames" in capsys.readouterr().err


@pytest.mark.parametrize("content, problem", [
    ("{not json", "is not valid JSON"),
    (json.dumps({"protocol": "pysod", "rows": []}), "'rows' must be a non-empty list"),
    (json.dumps({"rows": REFERENCE_ROWS}), "records no evaluation 'protocol'"),
    (json.dumps({"protocol": "pysod", "rows": [{**REFERENCE_ROWS[0], "mae": "NaN"}]}), "mae' must be a finite number"),
    (json.dumps({"protocol": "pysod", "rows": [{"mae": 0.1}]}), r"rows\[0\] has no method name"),
    (json.dumps({"protocol": "pysod", "rows": REFERENCE_ROWS + REFERENCE_ROWS[:1]}), "csnet-x2 appear in more"),
])
def test_malformed_baselines_file_is_an_error_naming_it(runs, tmp_path, content, problem):
    bad = tmp_path / "broken_baselines.json"
    bad.write_text(content)
    with pytest.raises(DataError, match=rf"broken_baselines.json: .*{problem}"):
        build_report([runs["OT"]], tmp_path / "out", frames=0, baselines=bad)


def test_malformed_curves_file_is_an_error_naming_it(runs, tmp_path, capsys):
    baselines = write_baselines(tmp_path / "base", 2)
    curves = {"csnet-x2": {"precision": [0.5], "recall": []}}
    (tmp_path / "base" / "baselines_curves.json").write_text(json.dumps(curves))
    with pytest.raises(DataError, match=r"baselines_curves.json: csnet-x2.'recall' must be a non-empty list"):
        build_report([runs["OT"]], tmp_path / "out", frames=0, baselines=baselines)
    assert main([str(runs["OT"]), "--out", str(tmp_path / "cli"), "--baselines", str(baselines)]) == 1
    assert "baselines_curves.json" in capsys.readouterr().err


# --- per-sequence scores from a run's saved maps --------------------------------------------------------

def test_per_sequence_scores_come_from_the_runner_when_it_wrote_them(runs, data_dir, tmp_path, monkeypatch):
    def no_scoring(*args, **kwargs):
        raise AssertionError("scored again although the run wrote its per-sequence scores")

    monkeypatch.setattr(per_sequence, "evaluate_folders", no_scoring)
    cache = tmp_path / "records" / "per_sequence.csv"
    rows = per_sequence.score_sequences(load_run(runs["OT"]), "davis", gt=data_dir / "synthetic" / "test",
                                        dataset="davis", split=None, cache=cache)
    assert rows == per_sequence.read_rows(runs["OT"] / "per_sequence" / "davis.csv") == per_sequence.read_rows(cache)


def test_per_sequence_scores_add_up_to_the_run_and_are_cached(runs, data_dir, tmp_path, monkeypatch):
    older = copy_run(runs["OT"], tmp_path / "older_run")
    shutil.rmtree(older / "per_sequence")  # a run from before the runner wrote them: scored from its maps
    run = load_run(older)
    gt = data_dir / "synthetic" / "test"
    cache = tmp_path / "records" / "per_sequence.csv"
    rows = per_sequence.score_sequences(run, "davis", gt=gt, dataset="davis", split=None, cache=cache)
    recorded = metrics_of(older)["datasets"]["davis"]
    assert sum(r["frames"] for r in rows) == recorded["frames"]
    pooled = sum(r["frames"] * r["mae"] for r in rows) / recorded["frames"]
    assert pooled == pytest.approx(recorded["mae"], abs=1e-9)  # the evaluator and the runner agree
    assert per_sequence.agreement_warning(run, rows, "davis") is None

    def no_scoring(*args, **kwargs):
        raise AssertionError("scored again although the cache is newer than the maps")

    monkeypatch.setattr(per_sequence, "evaluate_folders", no_scoring)
    assert per_sequence.score_sequences(run, "davis", gt=gt, dataset="davis", split=None, cache=cache) == rows
    newer = cache.stat().st_mtime + 10
    a_map = next((older / "predictions" / "davis").rglob("*.png"))
    os.utime(a_map, (newer, newer))  # a map rewritten after the cache: it must be scored again
    with pytest.raises(AssertionError, match="scored again"):
        per_sequence.score_sequences(run, "davis", gt=gt, dataset="davis", split=None, cache=cache)


def test_per_sequence_scores_that_do_not_match_the_run_are_flagged(runs, data_dir, tmp_path):
    datasets = metrics_of(runs["OT"])["datasets"]
    datasets["davis"]["mae"] += 0.01
    changed = copy_run(runs["OT"], tmp_path / "ot_changed", datasets=datasets)
    shutil.rmtree(changed / "per_sequence")
    changed = load_run(changed)
    rows = per_sequence.score_sequences(changed, "davis", gt=data_dir / "synthetic" / "test", dataset="davis",
                                        split=None)
    assert "not the ones the run scored" in per_sequence.agreement_warning(changed, rows, "davis")
    assert "cover 1 frames" in per_sequence.agreement_warning(changed, [{**rows[0], "frames": 1}], "davis")


def test_runs_gone_from_the_study_are_reported_from_their_records_until_pruned(runs, tmp_path):
    study = tmp_path / "study"
    copy_run(runs["sFCN"], study / "seed0" / "sFCN")
    copy_run(runs["OT"], study / "seed0" / "OT")
    out = tmp_path / "results"
    kwargs = dict(gt=None, dataset="davis", split=None, baselines=None, records=out / "runs", frames=2,
                  command="python -m ablations.collect study")
    collect(study, out, **kwargs)
    assert (out / "runs" / "seed0" / "OT" / "metrics.json").is_file()
    shutil.rmtree(study / "seed0" / "OT")  # made on another machine, or dropped from the study
    report = collect(study, out, **kwargs)
    text = report.read_text()
    assert f"{out / 'runs' / 'seed0' / 'OT'}: reported from its records; its run is not under {study}" in text
    assert table_rows(report)["OT"]["mae ↓"].strip("*") == f"{metrics_of(runs['OT'])['mae']:.3f}"
    assert "no saved maps of OT" in text and "![qualitative]" in text  # the grid shows the run that kept maps
    text = collect(study, out, **kwargs, prune_records=True).read_text()
    assert "OT" not in table_rows(out / "report.md") and not (out / "runs" / "seed0" / "OT").exists()
    assert "reported from its records" not in text and (out / "runs" / "seed0" / "sFCN" / "metrics.json").is_file()
    (study / "seed0" / "sFCN" / "metrics.json").unlink()  # nothing finished anywhere
    with pytest.raises(DataError, match="no run with a metrics.json below this folder"):
        collect(study, out, **kwargs, prune_records=True)
