"""Paths in records: repository-relative, `DATA/...` under the data folder, anything else as given."""

from __future__ import annotations

import json

import numpy as np
import pytest
from omegaconf import OmegaConf

from ablations.launch import plan, read_study, record_study
from experiments.report.records import copy_records
from scnn_lightning import record_paths
from scnn_lightning.record_paths import record_command, record_path, record_word
from scnn_lightning.weak.store import WeakLabelStore


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A repository and a data folder beside it, as on the machine that ran a study."""
    repo, data = tmp_path / "repo", tmp_path / "data"
    for folder in (repo / "runs", data / "davis-2016-half", data / "saliency-maps" / "davis-2016-half"):
        folder.mkdir(parents=True)
    monkeypatch.setattr(record_paths, "REPO", repo)
    monkeypatch.setenv(record_paths.DATA_ENV, str(data))
    monkeypatch.chdir(repo)
    return repo, data


def test_paths_take_their_record_form(machine, tmp_path):
    repo, data = machine
    assert record_path(data / "saliency-maps" / "davis-2016-half") == "DATA/saliency-maps/davis-2016-half"
    assert record_path(repo / "runs" / "study" / "best.ckpt") == "runs/study/best.ckpt"
    assert record_path("../data/davis-2016-half") == "DATA/davis-2016-half"  # relative to the working directory
    assert record_path("runs/study") == "runs/study"
    assert record_path(tmp_path / "elsewhere") == str(tmp_path / "elsewhere")
    assert record_word(f"data.root.davis={data / 'davis-2016-half'}") == "data.root.davis=DATA/davis-2016-half"
    for word in ("ablation=SCNN", "0.5", "weak.target=soft", "--seeds", "stage1.ckpt=${weights:stage1-duts.ckpt}"):
        assert record_word(word) == word
    assert record_command(["python", "-m", "x", "--out", str(repo / "runs" / "a b")]) == "python -m x --out 'runs/a b'"


def test_a_runs_records_hold_no_path_of_the_machine_and_one_frame_list(machine, tmp_path):
    repo, data = machine
    run_dir = repo / "runs" / "study" / "seed0" / "SCNN"
    davis = data / "davis-2016-half"
    overrides = ["ablation=SCNN", f"data.root.davis={davis}", f"stage1.ckpt={repo / 'runs' / 'stage1' / 'last.ckpt'}"]
    config = {"data": {"root": {"davis": str(davis)}, "test": [{"root": "${data.root.davis}"}]}, "seed": 0}
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(config), run_dir / ".hydra" / "config.yaml")  # as Hydra writes them
    OmegaConf.save(OmegaConf.create(overrides), run_dir / ".hydra" / "overrides.yaml")
    metrics = {"variant": "SCNN", "mae": 0.1, "checkpoint": str(run_dir / "checkpoints" / "best.ckpt")}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    store = WeakLabelStore(run_dir / "weak_labels")
    labels = {("bear", f"{i:05d}"): np.eye(4, dtype=np.uint8) for i in range(5)}
    held = store.keep_frame_list([("bear", "00009")])
    for round in range(3):
        store.write_round(round, labels, weights={"mbd": 1.0}, stats={}, extra={"holdout": {"frames_file": held}})

    records = tmp_path / "records" / "seed0" / "SCNN"
    written = copy_records(run_dir, records)
    assert all(str(tmp_path) not in path.read_text() for path in written)
    assert OmegaConf.to_container(OmegaConf.load(records / "config.yaml")) == {
        "data": {"root": {"davis": "DATA/davis-2016-half"}, "test": [{"root": "${data.root.davis}"}]}, "seed": 0}
    assert OmegaConf.to_container(OmegaConf.load(records / "overrides.yaml")) == [
        "ablation=SCNN", "data.root.davis=DATA/davis-2016-half", "stage1.ckpt=runs/stage1/last.ckpt"]
    assert json.loads((records / "metrics.json").read_text())["checkpoint"] == \
        "runs/study/seed0/SCNN/checkpoints/best.ckpt"
    # The three rounds' manifests and the two frame lists they name, each once.
    kept = WeakLabelStore(records / "weak_labels")
    assert len(list((records / "weak_labels").glob("frames-*.json"))) == 2
    assert [kept.frames(r) for r in kept.rounds()] == [sorted(labels)] * 3
    assert kept.read_frame_list(kept.manifest(2)["holdout"]["frames_file"]) == [("bear", "00009")]

    # The study's plan quotes the launch with its paths in record form too.
    study = repo / "runs" / "study"
    argv = ["--out", str(study), "--seeds", "0", "--", f"data.root.davis={davis}"]
    record_study(study, argv, plan(study, [0], ["SCNN"], [], [f"data.root.davis={davis}"]))
    assert read_study(study)[0]["command"] == ("python -m ablations.launch --out runs/study --seeds 0 -- "
                                               "data.root.davis=DATA/davis-2016-half")
