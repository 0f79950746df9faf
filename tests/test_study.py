"""A fast version of the ablation study: launcher → runs → collector, at tiny sizes (pipeline, not ordering)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from ablations.launch import plan
from tests.conftest import TINY_OVERRIDES

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
    assert f"stage2.ckpt={tmp_path}/seed0/SCNN/checkpoints/last.ckpt" in by_dir["seed0/SCNN-noCRF"]  # not retrained
    assert not any(a.startswith("stage1.ckpt=") for a in by_dir["seed1/SCNN-allblocks"])
    assert "model.upsample=all" in by_dir["seed1/SCNN-allblocks"]
    assert all("data=benchmark" in args for _, args in jobs)


def test_tiny_study_runs_and_collects(tmp_path, data_dir):
    study, results = tmp_path / "study", tmp_path / "results"
    overrides = [f"paths.data_dir={data_dir}", f"paths.cache_dir={data_dir / 'cache'}", "motion=magnitude",
                 *TINY_OVERRIDES]
    launch = [sys.executable, "-m", "ablations.launch", "--out", str(study), "--seeds", "0",
              "--variants", "OS", "SCNN", "--extras", "crf", "--", *overrides]
    done = subprocess.run(launch, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    again = subprocess.run(launch, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout.count("done already") == 4  # resumable: nothing reruns
    collect = [sys.executable, "-m", "ablations.collect", str(study), "--out", str(results)]
    done = subprocess.run(collect, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = list(csv.DictReader((results / "summary.csv").open()))
    assert {r["variant"] for r in rows} == {"OS", "SCNN", "SCNN-noCRF"}
    no_crf = json.loads((study / "seed0" / "SCNN-noCRF" / "metrics.json").read_text())
    assert no_crf["checkpoint"] == str(study / "seed0" / "SCNN" / "checkpoints" / "last.ckpt") and not no_crf["crf"]
    assert not (study / "seed0" / "SCNN-noCRF" / "checkpoints").exists()  # SCNN's model tested again, no training
    assert (results / "report.md").is_file() and (results / "pr_curves.png").is_file()
