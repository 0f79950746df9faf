"""`python -m scnn_lightning.predict` without `--ckpt`: the checkpoint shipped in scnn_lightning/weights/."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import pytest

import scnn_lightning
import scnn_lightning.weights as weights
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
