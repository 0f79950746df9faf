"""`python -m scnn_lightning.predict` without `--ckpt`: the checkpoint shipped in scnn_lightning/weights/."""

from __future__ import annotations

import csv
import json
import subprocess
import tomllib
from pathlib import Path

import pytest

import scnn_lightning
import scnn_lightning.weights as weights
from scnn_lightning.evaluate import evaluate_folders
from scnn_lightning.inference.checkpoint import save_inference_checkpoint
from scnn_lightning.motion.classifier import RegionClassifier
from scnn_lightning.predict import main
from scnn_lightning.training.module import MODULES
from tests.inference_helpers import TINY, clip_frames, write_folder

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def frames(tmp_path) -> Path:
    return write_folder(tmp_path / "frames", clip_frames(3, height=40, width=56))


def test_the_default_lives_in_the_installed_package():
    assert weights.DEFAULT_CHECKPOINT == Path(scnn_lightning.__file__).resolve().parent / "weights" / "scnn-davis.ckpt"


def test_without_a_shipped_checkpoint_the_error_names_the_path_and_asks_for_ckpt(tmp_path, frames, monkeypatch, capsys):
    missing = tmp_path / "weights" / "scnn-davis.ckpt"
    monkeypatch.setattr(weights, "DEFAULT_CHECKPOINT", missing)
    assert main(["--input", str(frames), "--out", str(tmp_path / "maps"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "--ckpt" in err
    assert not (tmp_path / "maps").exists()


def test_without_ckpt_predict_uses_the_shipped_checkpoint_and_its_classifier(tmp_path, frames, monkeypatch):
    """A shipped SCNN needs its temporal prior's classifier: weights/temporal/, as in a run directory."""
    shipped = tmp_path / "weights"
    module = MODULES["SCNN"](**TINY).eval()
    ckpt = save_inference_checkpoint(module, shipped / "scnn-davis.ckpt")
    RegionClassifier.untrained(module.model.fcn1.backbone).save(shipped / "temporal" / "region_classifier.pt")
    monkeypatch.setattr(weights, "DEFAULT_CHECKPOINT", ckpt)
    out = tmp_path / "maps"
    assert main(["--input", str(frames), "--out", str(out), "--no-crf", "--no-progress"]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["f000.png", "f001.png", "f002.png"]
    timings = json.loads((out / "timings.json").read_text())
    assert timings["variant"] == "SCNN" and timings["prior"] == "superpixel"


def test_shipped_files_are_package_data_and_not_git_ignored():
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert {"weights/*.ckpt", "weights/*.json", "weights/temporal/*.pt"} <= set(package_data["scnn_lightning"])
    for name in ("scnn-davis.ckpt", "scnn-davis.json", "temporal/region_classifier.pt"):
        ignored = subprocess.run(["git", "check-ignore", "-q", f"scnn_lightning/weights/{name}"], cwd=REPO)
        assert ignored.returncode == 1, f"{name} would be git-ignored"


SHIPPED_SCORES = REPO / "ablations" / "results" / "davis" / "shipped_per_sequence.csv"
DAVIS = REPO.parent / "shared" / "data" / "davis-2016-half"


@pytest.mark.skipif(not (weights.DEFAULT_CHECKPOINT.is_file() and DAVIS.is_dir()),
                    reason="needs the shipped checkpoint and the DAVIS-2016 data under ../shared")
def test_committed_per_sequence_scores_are_what_predict_and_evaluate_give(tmp_path):
    """Re-check one committed row as anyone can: predict without --ckpt on a val sequence, then evaluate."""
    sequence = "car-shadow"  # the shortest val sequence (40 frames)
    view = tmp_path / "davis"
    for kind in ("JPEGImages", "Annotations"):
        (view / kind / "480p").mkdir(parents=True)
        (view / kind / "480p" / sequence).symlink_to(DAVIS / kind / "480p" / sequence)
    lines = [ln for ln in (DAVIS / "ImageSets" / "480p" / "val.txt").read_text().splitlines() if f"/{sequence}/" in ln]
    (view / "ImageSets" / "480p").mkdir(parents=True)
    (view / "ImageSets" / "480p" / "val.txt").write_text("\n".join(lines) + "\n")
    assert main(["--input", str(view), "--dataset", "davis", "--split", "val", "--out", str(tmp_path / "maps"),
                 "--no-progress"]) == 0
    scores = evaluate_folders(tmp_path / "maps", view, tmp_path / "eval", dataset="davis", split="val", temporal=False)
    with SHIPPED_SCORES.open() as handle:
        row = next(r for r in csv.DictReader(handle) if r["sequence"] == sequence)
    assert scores["frames"] == int(row["frames"]) == 40
    # Batches of 4 frames may straddle sequences in the full run: the network's float noise can move a rare
    # pixel by one 8-bit step, so the figures agree to 1e-4, not bit for bit.
    for key in ("mae", "s_measure", "max_f"):
        assert scores[key] == pytest.approx(float(row[key]), abs=1e-4), key
