"""`python -m experiments.run`: every ablation end to end on tiny synthetic clips, plus the CLI sweep."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from experiments.run import run
from scnn_lightning.models.variants import VARIANTS
from tests.conftest import TINY_OVERRIDES, compose_run

METRIC_KEYS = {"mae", "max_f", "mean_f", "adp_f", "s_measure", "max_e", "mean_e", "adp_e", "w_f"}


@pytest.fixture(scope="module")
def stage1_ckpt(tmp_path_factory, data_dir) -> Path:
    """Stage 1 once for the module; each variant test builds its cascade from it."""
    out = tmp_path_factory.mktemp("stage1_run")
    cfg = compose_run(out, data_dir, ["ablation=OS", "crf=null"])
    run(cfg)
    ckpt = out / "stage1" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    return ckpt


@pytest.mark.parametrize("code", list(VARIANTS))
def test_each_ablation_runs_end_to_end(code, tmp_path, data_dir, stage1_ckpt):
    cfg = compose_run(tmp_path, data_dir, [f"ablation={code}", f"stage1.ckpt={stage1_ckpt}", "motion=magnitude"])
    metrics = run(cfg)
    assert metrics["variant"] == code
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert METRIC_KEYS <= set(written) and written["protocol"] == "pysod"
    assert all(0.0 <= written[k] <= 1.0 for k in METRIC_KEYS)
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["scnn"] == {"stage": "video", "variant": code}
    first_conv = ckpt["state_dict"]["model.fcn2.backbone.features.0.weight"]
    assert first_conv.shape[1] == VARIANTS[code].in_channels
    predictions = list((tmp_path / "predictions").rglob("*.png"))
    assert predictions, "test maps were not written"
    # each prior map the variant has, scored alone on the test set; Ps and P also every validation epoch
    priors = {"SCNN": {"ps", "pt", "p"}, "NA": {"ps", "pt", "p"}, "FP": {"ps", "pt"}, "FG": {"ps"}, "OS": {"ps"},
              "OT": {"pt"}, "sFCN": set()}[code]
    assert set(written["priors"]) == priors
    assert all(METRIC_KEYS <= set(scores) and 0.0 <= scores["s_measure"] <= 1.0 for scores in written["priors"].values())
    header = (tmp_path / "val_curve.csv").read_text().splitlines()[0].split(",")
    assert {f"{prior}_{key}" for prior in priors & {"ps", "p"} for key in ("s_measure", "max_f", "mae")} <= set(header)
    weak_rounds = sorted(p.name for p in (tmp_path / "weak_labels").glob("round_*"))
    if VARIANTS[code].weak_labels:
        assert weak_rounds == ["round_000"]  # G0 before the one epoch; no epoch would train on a G1
    else:
        assert weak_rounds == []


def test_full_schedule_with_superpixel_prior(tmp_path, data_dir):
    """No stage-1 checkpoint given: stage 1, region classifier, stage 2 and test in one call."""
    metrics = run(compose_run(tmp_path, data_dir, ["ablation=SCNN", "report=true"]))
    assert (tmp_path / "stage1" / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "temporal" / "region_classifier.pt").is_file()
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert metrics["crf"] is True and 0.0 <= metrics["mae"] <= 1.0
    assert list((tmp_path / "csv").rglob("metrics.csv"))
    report = (tmp_path / "report" / "report.md").read_text()
    assert "SCNN" in report and (tmp_path / "report" / "qualitative.png").is_file()


def test_cli_sweeps_all_seven(tmp_path, data_dir, stage1_ckpt):
    """The documented command line: a Hydra multirun over every ablation (from one stage-1 checkpoint)."""
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "experiments.run", "-m", f"ablation={','.join(VARIANTS)}",
           f"hydra.sweep.dir={sweep}", f"paths.data_dir={data_dir}", f"paths.cache_dir={data_dir / 'cache'}",
           f"stage1.ckpt={stage1_ckpt}", "motion=magnitude", "crf=null", *TINY_OVERRIDES]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    found = {json.loads(p.read_text())["variant"] for p in sweep.glob("*/metrics.json")}
    assert found == set(VARIANTS)


def test_wandb_logger_runs_offline_grouped_by_ablation(tmp_path, data_dir, stage1_ckpt, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = compose_run(tmp_path, data_dir, ["ablation=OT", "logger=wandb", f"stage1.ckpt={stage1_ckpt}",
                                           "motion=magnitude", "crf=null"])
    assert cfg.logger.wandb.offline is True and cfg.logger.wandb.group == "OT"
    import wandb

    try:
        run(cfg)
    finally:
        wandb.finish()
    offline = list((tmp_path / "wandb").glob("offline-run-*"))
    assert offline, "no offline W&B run was written"
    assert list((tmp_path / "csv").rglob("metrics.csv")), "CSV logging must run beside W&B"


def test_resume_continues_the_stage_it_was_in(tmp_path, data_dir, stage1_ckpt):
    """A stage-2 checkpoint resumes stage 2 (no new stage 1) and trains the remaining epochs."""
    first = compose_run(tmp_path, data_dir, ["ablation=NA", f"stage1.ckpt={stage1_ckpt}", "motion=magnitude",
                                             "crf=null"])
    run(first)
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    resumed_dir = tmp_path / "resumed"
    again = compose_run(resumed_dir, data_dir, ["ablation=NA", f"ckpt_path={ckpt}", f"stage1.ckpt={stage1_ckpt}",
                                                "motion=magnitude", "crf=null", "++trainer.max_epochs=2"])
    run(again)
    assert not (resumed_dir / "stage1").exists()
    after = torch.load(resumed_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert after["epoch"] == saved["epoch"] + 1 and after["global_step"] > saved["global_step"]


@pytest.mark.ddp
def test_ddp_sim_runs_the_whole_schedule(tmp_path, data_dir):
    """`trainer=ddp_sim`: two CPU processes (gloo) through stage 1, weak labels, stage 2 and test."""
    run_dir = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "experiments.run", "trainer=ddp_sim", "ablation=SCNN", f"hydra.run.dir={run_dir}",
           f"paths.data_dir={data_dir}", f"paths.cache_dir={data_dir / 'cache'}", "motion=magnitude", "crf=null",
           *TINY_OVERRIDES]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["variant"] == "SCNN" and 0.0 <= metrics["mae"] <= 1.0
    assert sorted(p.name for p in (run_dir / "weak_labels").glob("round_*")) == ["round_000"]  # one epoch
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
