"""A fast version of the ablation study: launcher → runs → collector, at tiny sizes (pipeline, not ordering)."""

from __future__ import annotations

import csv
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from ablations.collect import find_runs, launch_command, reproduce_section
from ablations.launch import DEFAULT_EXTRAS, STUDY_FILE, main as launch_main, plan, read_study, record_study, to_run
from scnn_lightning.errors import DataError
from tests.conftest import TINY_OVERRIDES
from tests.test_compare import write_baselines

ROOT = Path(__file__).resolve().parents[1]


def test_plan_shares_stage1_per_seed_and_gives_allblocks_its_own(tmp_path):
    jobs = plan(tmp_path, [0, 1], ["sFCN", "SCNN"], ["crf", "upsample"], ["data=benchmark"])
    dirs = [d.relative_to(tmp_path).as_posix() for d, _ in jobs]
    assert dirs == ["seed0/stage1", "seed0/sFCN", "seed0/SCNN", "seed0/SCNN-noCRF", "seed0/SCNN-allblocks",
                    "seed1/stage1", "seed1/sFCN", "seed1/SCNN", "seed1/SCNN-noCRF", "seed1/SCNN-allblocks"]
    by_dir = dict(zip(dirs, (args for _, args in jobs)))
    assert "stage1_only=true" in by_dir["seed0/stage1"]
    assert any(a.startswith("stage1.ckpt=") and "seed0/stage1" in a for a in by_dir["seed0/SCNN-noCRF"])
    assert "crf=null" in by_dir["seed0/SCNN-noCRF"] and "tag=SCNN-noCRF" in by_dir["seed0/SCNN-noCRF"]
    assert f"stage2.ckpt={tmp_path}/seed0/SCNN/checkpoints" in by_dir["seed0/SCNN-noCRF"]  # SCNN's tested weights
    for own in ("seed0/stage1", "seed1/SCNN-allblocks"):  # trained here, whatever the data config ships
        assert "stage1.ckpt=null" in by_dir[own] and "motion.classifier=null" in by_dir[own]
    assert not any(a.startswith("stage1.ckpt=/") for a in by_dir["seed1/SCNN-allblocks"])
    assert "model.upsample=all" in by_dir["seed1/SCNN-allblocks"]
    assert all("data=benchmark" in args for _, args in jobs)


def test_tiny_study_runs_and_collects(tmp_path, data_dir):
    study, results = tmp_path / "study", tmp_path / "results"
    overrides = [f"paths.data_dir={data_dir}", f"paths.cache_dir={data_dir / 'cache'}", "motion=magnitude",
                 *TINY_OVERRIDES]
    launch = [sys.executable, "-m", "ablations.launch", "--out", str(study), "--seeds", "0",
              "--variants", "OS", "SCNN", "--extras", "crf", "--records", str(results / "runs"), "--", *overrides]
    done = subprocess.run(launch, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    # --records: each run's records are written as it finishes, before any collect.
    assert all((results / "runs" / "seed0" / tag / "metrics.json").is_file() for tag in ("OS", "SCNN", "SCNN-noCRF"))
    assert (results / "runs" / "seed0" / "stage1" / "stage1.json").is_file()
    assert read_study(results / "runs") == read_study(study)
    again = subprocess.run(launch, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout.count("done already") == 4  # resumable: nothing reruns
    tags = ("OS", "SCNN", "SCNN-noCRF")
    metrics = {tag: json.loads((study / "seed0" / tag / "metrics.json").read_text()) for tag in tags}
    baselines = write_baselines(tmp_path / "baselines", metrics["SCNN"]["frames"])
    collect = [sys.executable, "-m", "ablations.collect", str(study), "--out", str(results),
               "--gt", str(data_dir / "synthetic" / "test"), "--dataset", "davis", "--baselines", str(baselines)]
    done = subprocess.run(collect, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = list(csv.DictReader((results / "summary.csv").open()))
    assert {r["variant"]: r["kind"] for r in rows} == {**dict.fromkeys(tags, "trained"),
                                                       "csnet-x2": "reference map", "centre": "reference map"}
    report = (results / "report.md").read_text()
    assert "Warning" not in report and "| CSNet-x2 (map) | pysod | off | — | — |" in report
    # Reproducible: the launch command the study recorded, once (the rerun resumed it), and the collect.
    assert read_study(study) == [{"command": shlex.join(["python", *launch[1:]]),
                                  "runs": ["seed0/stage1", "seed0/OS", "seed0/SCNN", "seed0/SCNN-noCRF"]}]
    assert shlex.join(["python", *launch[1:]]) in report and shlex.join(["python", *collect[1:]]) in report
    assert "Progress: all 4 planned runs (stage 1 included) are finished." in report
    assert "## Sequences won" in report and "| SCNN-noCRF | " in report  # head-to-head per sequence

    # Records: each run's light files at its place under the study, and nothing heavy.
    records = results / "runs" / "seed0"
    expected = {f"{tag}/{name}" for tag in tags for name in ("metrics.json", "pr_curve.json", "config.yaml",
                                                             "overrides.yaml", "per_sequence.csv",
                                                             "per_sequence/davis.csv")}
    logs = {f"{tag}/logs/{p.parent.parent.name}/{p.parent.name}.csv"
            for tag in tags for p in (study / "seed0" / tag).glob("csv/*/version_*/metrics.csv")}
    assert "SCNN/logs/stage2/version_0.csv" in logs  # training and validation curves travel with the records
    manifests = {p.relative_to(study / "seed0").as_posix()
                 for p in study.glob("seed0/*/weak_labels/round_*/manifest.json")}
    assert {"OS/weak_labels/round_000/manifest.json", "SCNN/weak_labels/round_000/manifest.json"} <= manifests
    frame_lists = {p.relative_to(study / "seed0").as_posix() for p in study.glob("seed0/*/weak_labels/frames-*.json")}
    assert {p.split("/")[0] for p in frame_lists} == {"OS", "SCNN"}  # each run keeps its lists once, not per round
    stage1 = {f"stage1/{name}" for name in ("stage1.json", "config.yaml", "overrides.yaml",
                                            "logs/stage1/version_0.csv", "stage1_val_curve.csv")}
    curves = {f"{tag}/val_curve.csv" for tag in ("OS", "SCNN")}  # SCNN-noCRF tests SCNN's model: no training
    assert {p.relative_to(records).as_posix() for p in records.rglob("*") if p.is_file()} == \
        expected | manifests | frame_lists | logs | stage1 | curves
    assert json.loads((records / "SCNN" / "metrics.json").read_text()) == metrics["SCNN"]
    assert read_study(results / "runs") == read_study(study)  # the plan travels with the records

    # Per-sequence scores: every run's add up to its own metrics; the baselines' rows follow.
    per_sequence = list(csv.DictReader((results / "per_sequence.csv").open()))
    for tag in tags:
        mine = [r for r in per_sequence if r["method"] == tag and r["kind"] == "trained" and r["seed"] == "0"]
        frames = sum(int(r["frames"]) for r in mine)
        assert frames == metrics[tag]["frames"]
        assert sum(int(r["frames"]) * float(r["mae"]) for r in mine) / frames == pytest.approx(metrics[tag]["mae"])
    assert [(r["method"], r["kind"]) for r in per_sequence[-2:]] == [("csnet-x2", "reference map"),
                                                                    ("centre", "reference map")]
    no_crf = json.loads((study / "seed0" / "SCNN-noCRF" / "metrics.json").read_text())
    assert no_crf["checkpoint"] == str(study / "seed0" / "SCNN" / "checkpoints" / "last.ckpt") and not no_crf["crf"]
    assert not (study / "seed0" / "SCNN-noCRF" / "checkpoints").exists()  # SCNN's model tested again, no training
    assert (results / "report.md").is_file() and (results / "pr_curves.png").is_file()

    # The study goes on on another machine: OS's run folder and the study's plan are gone, its records stay.
    def scores(path):  # summary.csv without the column saying where each run lives
        return [{k: v for k, v in row.items() if k != "runs"} for row in csv.DictReader(path.open())]

    summary, grid = scores(results / "summary.csv"), (results / "qualitative.png").stat().st_mtime_ns
    shutil.rmtree(study / "seed0" / "OS")
    (study / STUDY_FILE).unlink()
    done = subprocess.run(collect, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = (results / "report.md").read_text()
    assert scores(results / "summary.csv") == summary  # OS still in the table, from its records
    assert list(csv.DictReader((results / "per_sequence.csv").open())) == per_sequence
    assert f"{records / 'OS'}: reported from its records" in report and "no saved maps of OS" in report
    assert "Progress: all 4 planned runs (stage 1 included) are finished." in report  # the plan from the records
    assert (results / "qualitative.png").stat().st_mtime_ns > grid  # redrawn from the runs that kept maps
    again = subprocess.run(launch, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and f"done already: {study / 'seed0' / 'OS'} (recorded in" in again.stdout
    assert again.stdout.count("done already") == 4 and not (study / "seed0" / "OS").exists()  # nothing reruns


def test_a_lever_study_builds_on_another_studys_stage1(tmp_path):
    base, lever = tmp_path / "base", tmp_path / "lever"
    with pytest.raises(DataError, match="stage1.json"):  # the base study's stage 1 must be finished
        plan(lever, [1], ["SCNN"], [], ["data.label_every=5"], stage1_from=base)
    assert launch_main(["--out", str(lever), "--seeds", "1", "--stage1", str(base), "--dry-run"]) == 2
    (base / "seed1" / "stage1").mkdir(parents=True)
    (base / "seed1" / "stage1" / "stage1.json").write_text("{}")
    with pytest.raises(DataError, match="last.ckpt: is missing"):  # records alone: no weights to build on
        plan(lever, [1], ["SCNN"], [], [], stage1_from=base)
    for weights in ("stage1/checkpoints/last.ckpt", "temporal/region_classifier.pt"):
        (base / "seed1" / "stage1" / weights).parent.mkdir(parents=True)
        (base / "seed1" / "stage1" / weights).write_bytes(b"")
    jobs = plan(lever, [1], ["SCNN", "NA"], ["crf"], ["data.label_every=5"], stage1_from=base)
    assert [d.relative_to(lever).as_posix() for d, _ in jobs] == ["seed1/SCNN", "seed1/NA", "seed1/SCNN-noCRF"]
    for _, args in jobs:
        assert f"stage1.ckpt={base}/seed1/stage1/stage1/checkpoints/last.ckpt" in args
        assert f"motion.classifier={base}/seed1/stage1/temporal/region_classifier.pt" in args
        assert "data.label_every=5" in args
    assert f"stage2.ckpt={lever}/seed1/SCNN/checkpoints" in jobs[2][1]  # the lever's own SCNN
    assert to_run(lever, jobs, None) == [True, True, True]


def test_a_study_resumed_on_another_machine_runs_what_is_missing_and_what_that_needs(tmp_path):
    study, records = tmp_path / "study", tmp_path / "records"
    jobs = plan(study, [0], ["OS", "SCNN"], ["crf"], ["data=davis"])
    names = [d.relative_to(study).as_posix() for d, _ in jobs]
    assert names == ["seed0/stage1", "seed0/OS", "seed0/SCNN", "seed0/SCNN-noCRF"]

    def record(*done):
        shutil.rmtree(records, ignore_errors=True)
        for name in done:
            (records / name).mkdir(parents=True)
            (records / name / ("stage1.json" if name.endswith("stage1") else "metrics.json")).write_text("{}")

    assert to_run(study, jobs, None) == [True] * 4
    record("seed0/stage1", "seed0/OS", "seed0/SCNN")  # SCNN-noCRF tests SCNN's checkpoint: SCNN runs again
    assert to_run(study, jobs, records) == [True, False, True, True]
    record("seed0/stage1", "seed0/SCNN", "seed0/SCNN-noCRF")  # OS needs only the seed's stage 1
    assert to_run(study, jobs, records) == [True, True, False, False]
    record(*names)
    assert to_run(study, jobs, records) == [False] * 4
    (study / "seed0" / "stage1").mkdir(parents=True)  # stage 1 already made on this machine: kept
    (study / "seed0" / "stage1" / "stage1.json").write_text("{}")
    record("seed0/OS")
    assert to_run(study, jobs, records) == [False, False, True, True]


def test_find_runs_skips_the_results_folder_and_what_is_inside_a_run(tmp_path):
    for folder in ("seed0/SCNN", "seed0/SCNN/report/inner", "results/runs/seed0/SCNN", "seed1/.hidden"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "metrics.json").write_text("{}")
    (tmp_path / "seed1" / "stage1").mkdir()  # not finished: no stage1.json yet
    (tmp_path / "seed0" / "stage1").mkdir()
    (tmp_path / "seed0" / "stage1" / "stage1.json").write_text("{}")
    assert find_runs(tmp_path, exclude=tmp_path / "results") == [tmp_path / "seed0" / "SCNN",
                                                                  tmp_path / "seed0" / "stage1"]


def test_report_quotes_the_recorded_launches_and_what_is_still_to_run(tmp_path):
    study = tmp_path / "study"
    runs = []
    for tag in ("OS", "SCNN-noCRF"):  # finished runs with the overrides the launcher gave them
        (study / "seed0" / tag / ".hydra").mkdir(parents=True)
        overrides = [f"ablation={'SCNN' if tag != 'OS' else 'OS'}", "seed=0", "data=davis"]
        (study / "seed0" / tag / ".hydra" / "overrides.yaml").write_text("\n".join(f"- {o}" for o in overrides))
        (study / "seed0" / tag / "metrics.json").write_text("{}")
        runs.append(SimpleNamespace(path=study / "seed0" / tag, variant=tag, seed=0))
    section = reproduce_section(study, runs, "", "python -m ablations.collect study", records=None,
                                per_sequence=False, out=tmp_path / "out")
    # No study.json (a study from before it existed): the command is rebuilt from the runs' overrides.
    assert "python -m ablations.launch --out " + str(study) + " --seeds 0 --variants OS --extras crf -- " \
           "data=davis" in section and "Progress" not in section

    argv = ["--out", str(study), "--seeds", "0", "1", "--variants", "OS", "--extras", "crf", "--", "data=davis"]
    jobs = plan(study, [0, 1], ["OS"], ["crf"], ["data=davis"])
    record_study(study, argv, jobs)
    record_study(study, argv, jobs)  # a resume adds nothing
    record_study(study, [*argv[:3], "2", *argv[5:]], plan(study, [2], ["OS"], ["crf"], ["data=davis"]))
    section = reproduce_section(study, runs, "", "python -m ablations.collect study", records=None,
                                per_sequence=False, out=tmp_path / "out")
    assert f"python -m ablations.launch --out {study} --seeds 0 1 --variants OS" in section
    assert f"python -m ablations.launch --out {study} --seeds 2 --variants OS" in section
    assert ("Progress: 2 of 9 planned runs (stage 1 included) are finished; not yet: seed0/stage1, seed1/stage1, "
            "seed1/OS, seed1/SCNN-noCRF, seed2/stage1, seed2/OS, seed2/SCNN-noCRF.") in section


def test_a_broken_study_file_is_an_error_naming_it(tmp_path):
    (tmp_path / STUDY_FILE).write_text('{"launches": [{"command": "x"}]}')
    with pytest.raises(DataError, match=STUDY_FILE):
        read_study(tmp_path)


@pytest.mark.skipif(not (ROOT / ".git").exists() or shutil.which("git") is None, reason="needs the git checkout")
def test_git_does_not_ignore_a_studys_records():
    # The records are what survives the machine a study ran on: they must reach the commit.
    paths = ["ablations/results/davis/v1/runs/study.json", "ablations/results/davis/v1/runs/seed1/SCNN/metrics.json",
             "ablations/results/davis/v1/runs/seed1/SCNN/logs/stage2/version_0.csv",
             "ablations/results/davis/v1/runs/seed1/SCNN/weak_labels/round_001/manifest.json",
             "ablations/results/davis/runs/seed0/SCNN/weak_labels/round_001/manifest.json"]
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=ROOT, capture_output=True, text=True)
    assert ignored.returncode == 1 and ignored.stdout == "", f"git ignores: {ignored.stdout}"
    assert subprocess.run(["git", "check-ignore", "--no-index", "runs/davis-study/seed1/SCNN/metrics.json"],
                          cwd=ROOT, capture_output=True).returncode == 0  # a study's own run folders stay out


def test_a_shared_stage1_plans_none_and_passes_none(tmp_path):
    jobs = plan(tmp_path, [0, 1], ["NA", "SCNN"], ["crf"], ["data=davis"], shared_stage1=True)
    assert [run_dir.relative_to(tmp_path).as_posix() for run_dir, _ in jobs] == [
        "seed0/NA", "seed0/SCNN", "seed0/SCNN-noCRF", "seed1/NA", "seed1/SCNN", "seed1/SCNN-noCRF"]
    assert not any(o.startswith(("stage1.ckpt=", "motion.classifier=", "stage1_only")) for _, job in jobs for o in job)


def test_scnn_paper_replaces_the_studys_weak_label_settings_and_is_not_a_default_extra(tmp_path):
    chosen = ["data=davis", "weak=davis_propagated", "weak.target=soft"]
    jobs = dict(plan(tmp_path, [0], ["SCNN"], ["paper"], chosen, shared_stage1=True))
    assert jobs[tmp_path / "seed0" / "SCNN"][-2:] == ["weak=davis_propagated", "weak.target=soft"]
    paper = jobs[tmp_path / "seed0" / "SCNN-paper"]
    assert "tag=SCNN-paper" in paper and "data=davis" in paper
    assert "weak=davis" in paper and "weak.target=binary" in paper and "data.image_mix=0.0" in paper
    assert "weak=davis_propagated" not in paper and "weak.target=soft" not in paper  # Hydra refuses a key twice
    assert "paper" not in DEFAULT_EXTRAS
    runs = []
    for run_dir, job in jobs.items():  # the collector rebuilds the launch from what the runs recorded
        (run_dir / ".hydra").mkdir(parents=True)
        (run_dir / ".hydra" / "overrides.yaml").write_text("\n".join(f"- {o}" for o in job))
        runs.append(SimpleNamespace(path=run_dir, variant=run_dir.name, seed=0))
    command, note = launch_command(tmp_path, runs)
    assert command.endswith("--variants SCNN --extras paper -- data=davis weak=davis_propagated weak.target=soft")
    assert note == ""
