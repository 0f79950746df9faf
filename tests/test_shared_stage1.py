"""The study's shared start: a stage-1 run shipped as a package file, and its region classifier trained once,
validated on held-out train sequences (ablations.ship_stage1, ablations.temporal_prior)."""

from __future__ import annotations

import json
import shutil
from itertools import product
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from ablations.ship_stage1 import ship_stage1
from ablations.stage1_screen import main as stage1_screen_main
from ablations.temporal_prior import main as temporal_prior_main
from ablations.temporal_prior import region_auc
from experiments.run import run
from scnn_lightning.data.readers import load_index
from scnn_lightning.errors import DataError
from scnn_lightning.training.checkpoints import load_fcn
from tests.davis_fixture import tiny_davis
from tests.test_davis_config import TINY_RUN, compose_davis, roots, tiny_layouts  # noqa: F401 (a fixture)


def test_region_auc_counts_ordered_pairs_and_halves_ties():
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(60), 1)  # many ties
    labels = (rng.random(60) < 0.3).astype(np.float32)
    pos, neg = scores[labels > 0.5], scores[labels < 0.5]
    pairs = [1.0 if p > n else 0.5 if p == n else 0.0 for p, n in product(pos, neg)]
    assert region_auc(scores, labels) == pytest.approx(np.mean(pairs))
    with pytest.raises(ValueError, match="salient and background"):
        region_auc(scores, np.zeros(60))


@pytest.fixture(scope="module")
def stage1_run(tmp_path_factory, tiny_layouts) -> Path:
    out = tmp_path_factory.mktemp("stage1_run")
    cfg = compose_davis([*roots(**tiny_layouts), *TINY_RUN, "stage1_only=true", "stage1.ema_decay=0.5",
                         "stage1.schedule=cosine", "++trainer.max_epochs=2"], out=out)
    run(cfg)
    (out / ".hydra").mkdir()
    OmegaConf.save(cfg, out / ".hydra" / "config.yaml")
    return out


def test_a_stage1_run_ships_with_its_curve_and_the_averaged_weights(stage1_run, tmp_path):
    card = ship_stage1(stage1_run, tmp_path)
    written = json.loads((tmp_path / "stage1-duts.json").read_text())
    assert written == json.loads(json.dumps(card))
    assert [row["epoch"] for row in card["validation_curve"]] == [0, 1]
    assert card["settings"]["ema_decay"] == 0.5 and "retrain" in card["commands"] and "DUTS" in card["licence"]
    shipped, trained = load_fcn(tmp_path / "stage1-duts.ckpt"), load_fcn(stage1_run / "stage1" / "checkpoints" / "last.ckpt")
    assert all((a == b).all() for a, b in zip(shipped.state_dict().values(), trained.state_dict().values()))
    with pytest.raises(DataError, match="last.ckpt: missing"):
        ship_stage1(tmp_path / "nothing", tmp_path)


def test_the_stage1_screen_scores_held_out_data_and_the_ship_records_the_search(stage1_run, tiny_layouts, tmp_path):
    held = load_index("davis", tiny_layouts["davis"], "train").sequences[0]
    screen = tmp_path / "screen.json"
    code = stage1_screen_main([str(stage1_run), "--davis", str(tiny_layouts["davis"]), "--duts", str(tiny_layouts["duts"]),
                               "--val-sequences", held.name, "--size", "32", "48", "--report-val", "--out", str(screen)])
    record = json.loads(screen.read_text())
    only = record["candidates"][record["choice"]]
    assert code == 0 and record["ranking"] == [record["choice"]] and record["held_out_sequences"] == [held.name]
    assert only["held_out_ps"]["frames"] == len(held.frames) and only["duts_val"]["frames"] >= 1
    assert only["davis_val_ps_report_only"]["frames"] == 5  # the one val clip, reported beside, never chosen on
    assert only["choice_score"] == pytest.approx((only["duts_val"]["s_measure"] + only["held_out_ps"]["s_measure"]) / 2,
                                                 abs=1e-4)
    card = ship_stage1(stage1_run, tmp_path, [screen])
    assert card["search"][0]["choice"] == record["choice"] and card["from_scratch"] and card["settings"]["loss"]


def test_the_classifier_is_chosen_on_held_out_train_sequences_and_the_maps_are_scored(stage1_run, tmp_path):
    # larger frames than tiny_layouts': every clip here has superpixels on the object and off it
    davis = tiny_davis(tmp_path / "davis", sequences=4, frames=5, height=64, width=96, val_fraction=0.25, seed=5)
    out = tmp_path / "temporal" / "prior.pt"
    code = temporal_prior_main(["--davis", str(davis), "--stage1",
                                str(stage1_run / "stage1" / "checkpoints" / "last.ckpt"), "--out", str(out),
                                "--val-sequences", "syn0003", "--label-every", "2", "--epochs", "1", "3",
                                "--size", "32", "48", "--cache", str(tmp_path / "cache"), "--report-val"])
    assert code == 0 and out.is_file()
    record = json.loads(out.with_suffix(".json").read_text())
    aucs = {c["epochs"]: c["held_out"]["auc"] for c in record["candidates"]}
    assert set(aucs) == {1, 3} and aucs[record["chosen"]["epochs"]] == max(aucs.values())
    assert record["held_out_sequences"] == ["syn0003"] and record["held_out_frames"] == 5
    assert record["train_frames"] == 6  # frames 0, 2, 4 of the two other train clips: the budget
    for where, frames in (("held_out_train", 5), ("davis_val_report_only", 5)):
        for name in ("Pt", "Ps", "P"):
            scores = record["maps_alone"][where][name]
            assert scores["frames"] == frames and 0.0 <= scores["mae"] <= 1.0 and 0.0 <= scores["s_measure"] <= 1.0
    # --maps-only: the same classifier beside a stage 1 gives the same table, and trains nothing
    again = tmp_path / "maps.json"
    trained_at = out.stat().st_mtime_ns
    assert temporal_prior_main(["--davis", str(davis), "--stage1", str(stage1_run / "stage1" / "checkpoints" / "last.ckpt"),
                                "--out", str(out), "--val-sequences", "syn0003", "--label-every", "2", "--size", "32",
                                "48", "--cache", str(tmp_path / "cache"), "--maps-only", str(again)]) == 0
    assert json.loads(again.read_text())["maps_alone"]["held_out_train"] == record["maps_alone"]["held_out_train"]
    assert out.stat().st_mtime_ns == trained_at
    assert temporal_prior_main(["--davis", str(davis), "--stage1", str(out), "--out", str(tmp_path / "none.pt"),
                                "--maps-only", str(again)]) == 2


def test_a_stage1_fine_tuned_from_the_shipped_one_keeps_its_card(stage1_run, tmp_path):
    ship_stage1(stage1_run, tmp_path)  # the shipped stage 1 that the next one starts from
    tuned = tmp_path / "tuned"
    shutil.copytree(stage1_run, tuned)
    cfg = OmegaConf.load(tuned / ".hydra" / "config.yaml")
    cfg.stage1.init = str(tmp_path / "stage1-duts.ckpt")
    OmegaConf.save(cfg, tuned / ".hydra" / "config.yaml")
    card = ship_stage1(tuned, tmp_path)
    assert not card["from_scratch"] and card["init_card"]["source_run"] == str(stage1_run)
