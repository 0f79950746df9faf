"""`WeakLabelRefresh` under DDP (2 CPU processes, gloo): every rank trains on the same labels, and round 0
equals the single-process round 0 bit for bit (it depends on the data and the sources, not the model),
although each rank writes only its own shard's label files and only integer sums cross ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.weak_helpers import make_clips

pytestmark = pytest.mark.ddp
REPO = Path(__file__).resolve().parents[1]


def fit(tmp_path: Path, clips: Path, devices: int) -> list[dict]:
    out, reports = tmp_path / f"run{devices}", tmp_path / f"report{devices}"
    command = [sys.executable, "-m", "tests.ddp_weak_run", "--clips", str(clips), "--cache", str(tmp_path / "cache"),
               "--out", str(out), "--report", str(reports), "--devices", str(devices)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-4000:]
    return [json.loads((reports / f"rank{r}.json").read_text()) for r in range(devices)]


def test_ranks_train_on_identical_labels_and_round_0_matches_one_process(tmp_path):
    clips = make_clips(tmp_path / "clips")
    single, = fit(tmp_path, clips, devices=1)
    rank0, rank1 = fit(tmp_path, clips, devices=2)

    assert (rank0["world"], rank1["world"]) == (2, 2)
    assert list(rank0["rounds"]) == list(rank1["rounds"]) == ["0", "1", "2"]
    for report in (single, rank0, rank1):
        for info in report["rounds"].values():  # what each rank reads is what the manifest promises
            assert info["read_hash"] == info["manifest_hash"]
        for epoch, served in report["served"].items():  # and what each rank trained on
            assert served["weak_frames"] > 0 and served["equal_to_store"], (report["rank"], epoch)
    assert rank0["rounds"] == rank1["rounds"]
    assert rank0["state"] == rank1["state"]  # each rank's own copy of round, weights and hash
    assert rank0["state"]["round"] == 2 and rank0["state"]["labels_hash"] == rank0["rounds"]["2"]["read_hash"]
    # round 0 does not depend on the model or on how frames are sharded: identical to one process, weights,
    # Eq. 8 objective and held-out quality included (integer sums reduced across ranks are exact)
    assert rank0["rounds"]["0"] == single["rounds"]["0"]
    assert single["rounds"]["0"]["quality"]["frames"] == 2 and single["rounds"]["0"]["stats"]["labels"] == 8
