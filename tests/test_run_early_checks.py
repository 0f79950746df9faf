"""`python -m experiments.run` checks its run folder and the checkpoints it is given before any work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import experiments.run as runner
from scnn_lightning.errors import DataError
from tests.conftest import compose_run

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_work(monkeypatch):
    def started(cfg):
        raise AssertionError("the run started working before its paths were checked")

    monkeypatch.setattr(runner, "generate_data", started)


def test_an_unwritable_run_folder_stops_the_run_before_any_work(tmp_path, data_dir, no_work):
    taken = tmp_path / "taken"
    taken.write_text("x")
    for out in (taken, taken / "run"):
        with pytest.raises(DataError, match="output folder") as raised:
            runner.run(compose_run(out, data_dir))
        assert raised.value.path == out


def test_an_unreadable_given_checkpoint_stops_the_run_before_any_work(tmp_path, data_dir, no_work):
    not_a_ckpt = tmp_path / "stage1.ckpt"
    not_a_ckpt.write_bytes(b"\x89PNG\r\n\x1a\n not a checkpoint")
    for key in ("stage1.ckpt", "ckpt_path", "++stage2.ckpt"):
        with pytest.raises(DataError, match="not a readable torch checkpoint") as raised:
            runner.run(compose_run(tmp_path / "run", data_dir, [f"{key}={not_a_ckpt}"]))
        assert raised.value.path == not_a_ckpt and "\n" not in str(raised.value)


def test_a_resume_from_an_unreadable_checkpoint_is_one_line_and_exit_status_2(tmp_path, monkeypatch, capsys):
    not_a_ckpt = tmp_path / "last.ckpt"
    not_a_ckpt.write_bytes(b"\x89PNG\r\n\x1a\n not a checkpoint")
    monkeypatch.setattr(sys, "argv", ["experiments.run", f"ckpt_path={not_a_ckpt}"])
    with pytest.raises(SystemExit) as exited:
        runner.main()
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"experiments.run: {not_a_ckpt}: not a readable torch checkpoint (torch.load finds no pickle of tensors and "
        f"plain values in it)"]


@pytest.mark.slow
def test_the_command_ends_in_one_line_and_exit_status_2(tmp_path):
    """Through Hydra: the checks of `run` end the command as the resume check above does."""
    not_a_ckpt = tmp_path / "stage1.ckpt"
    not_a_ckpt.write_bytes(b"\x89PNG\r\n\x1a\n not a checkpoint")
    done = subprocess.run([sys.executable, "-m", "experiments.run", f"stage1.ckpt={not_a_ckpt}",
                           f"hydra.run.dir={tmp_path / 'run'}", f"paths.root_dir={tmp_path}"],
                          cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == [f"experiments.run: {not_a_ckpt}: not a readable torch checkpoint "
                                                f"(torch.load finds no pickle of tensors and plain values in it)"]
