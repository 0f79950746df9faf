"""benchmarks/gpu_check: its `--tiny` CPU mode end to end (so the GPU script cannot rot), and its pieces."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from benchmarks.gpu_check import davis_subset, main
from scnn_lightning.data.readers import load_index
from tests.davis_fixture import tiny_davis

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"


@pytest.fixture(scope="module")
def tiny_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "gpu_check.json"
    assert main(["--tiny", "--out", str(out)]) == 0
    return json.loads(out.read_text())


def test_tiny_mode_measures_the_network(tiny_result):
    net = tiny_result["network"]
    assert tiny_result["tiny"] is True and tiny_result["environment"]["device"] == "cpu"
    assert net["precision"] == "bf16-mixed" and net["channels_last"] is True and net["variant"] == "SCNN"
    assert net["train_fps"] > 0 and net["infer_fps"] > 0 and net["parameters"] > 0
    assert net["train_peak_memory_gib"] is None  # GPU memory only


def test_tiny_mode_times_predict_with_the_shipped_model(tiny_result):
    part = tiny_result["predict"]
    assert part["checkpoint"].endswith("scnn-davis.ckpt") and part["frames"] == 3
    assert [row["crf"] for row in part["runs"]] == [True, False]
    for row in part["runs"]:
        assert row["frames"] == 3 and row["device"] == "cpu" and row["motion_over_network"] > 0


def test_tiny_mode_runs_one_stage2_epoch_with_the_weak_label_refresh(tiny_result):
    epoch = tiny_result["stage2_epoch"]
    assert epoch["weak_rounds"] == [0, 1]  # round 0 before the epoch, the refresh after it
    assert set(epoch["last_round"]["weights"]) == {"mbd", "prediction"}
    assert "frames" not in epoch["last_round"]  # the JSON stays small
    assert epoch["seconds_to_round0"] > 0 and epoch["seconds_epoch_and_refresh"] > 0
    assert 0.0 <= epoch["test_mae_untrained"] <= 1.0
    assert tiny_result["command"].startswith("python -m benchmarks.gpu_check --tiny")


def test_davis_subset_links_the_first_sequences_of_each_split(tmp_path):
    davis = tiny_davis(tmp_path / "davis", sequences=5, frames=3, height=24, width=32)
    subset = davis_subset(davis, tmp_path / "subset", train_sequences=2, val_sequences=1)
    for split, count in (("train", 2), ("val", 1)):
        full, linked = load_index("davis", davis, split), load_index("davis", subset, split)
        assert [s.name for s in linked.sequences] == [s.name for s in full.sequences[:count]]
        assert [len(s.frames) for s in linked.sequences] == [len(s.frames) for s in full.sequences[:count]]
        assert all(f.labelled for f in linked.frames)
    assert (subset / "JPEGImages" / "480p" / linked.sequences[0].name).is_symlink()  # linked, never copied


def test_shell_script_parses_and_prints_its_usage_without_arguments():
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 2 and "gpu_check.sh DAVIS_ROOT" in done.stderr
