"""`data=davis weak=davis`, the real-video study's configuration: roots from the command line, the paper's
two-stage scheme end to end on tiny DAVIS/DUTS/saliency-map layouts, and (when present) the real data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import InterpolationToMissingValueError

from ablations.fcn1_levers import main as fcn1_levers_main
from ablations.launch import command
from ablations.ship import select_run, ship, validation_score
from experiments.run import datamodule, run
from scnn_lightning.data.datamodule import load_sequences, split_train_val
from scnn_lightning.data.readers import load_index
from scnn_lightning.errors import DataError
from scnn_lightning.evaluate import evaluate_folders
from scnn_lightning.predict import main as predict_main
from scnn_lightning.weak.sources import FolderSource, build_sources
from scnn_lightning.weak.store import WeakLabelStore
from tests.conftest import CONFIG_DIR, SHARED
from tests.davis_fixture import blurred_truth, saliency_folders, tiny_davis, tiny_duts

REAL = SHARED / "data"
REAL_ROOTS = {"davis": REAL / "davis-2016-half", "duts": REAL / "duts-tr-5k",
              "saliency": REAL / "saliency-maps" / "davis-2016-half"}
CONFIG_FILES = [Path(CONFIG_DIR) / "data" / "davis.yaml", Path(CONFIG_DIR) / "weak" / "davis.yaml"]
TINY_RUN = [  # the label budget too: at 10, clips would need 11 frames to keep two labelled ones
    "stage1.ckpt=null", "motion.classifier=null",  # trained here: the shipped ones are the study's network size
    "stage2.max_epochs=null",  # trainer.max_epochs below, not the recipe's 8
    "data.label_every=2", "data.val_sequences=[syn0003]", "data.size=[32,48]", "data.batch_size=2", "data.num_workers=0",
    "model.width=0.0625", "model.fc_channels=32",
    "++trainer.max_epochs=2", "++trainer.limit_train_batches=2", "++trainer.limit_val_batches=1",
    "++trainer.limit_test_batches=1", "++trainer.enable_progress_bar=false", "++trainer.enable_model_summary=false",
    "++motion.classifier_epochs=2", "report=false",
]


def roots(davis, duts, saliency) -> list[str]:
    return [f"data.root.davis={davis}", f"data.root.duts={duts}", f"data.root.saliency={saliency}"]


def compose_davis(overrides: list[str], out: Path | None = None) -> DictConfig:
    """The real run config with data=davis weak=davis; with `out`, ready for `run` (outputs and caches there)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="run", overrides=["data=davis", "weak=davis", *overrides],
                      return_hydra_config=out is not None)
    if out is not None:
        HydraConfig().set_config(cfg)
        with open_dict(cfg):
            cfg.paths.output_dir = str(out)
            cfg.paths.data_dir = str(out / "data")
            cfg.paths.cache_dir = str(out / "cache")
            del cfg.hydra
    return cfg


def test_roots_come_from_the_command_line_and_nothing_points_into_shared():
    for path in CONFIG_FILES:
        assert "shared" not in path.read_text(), f"{path} names a local data folder"
    with pytest.raises(InterpolationToMissingValueError, match="data.root.davis"):
        OmegaConf.to_container(compose_davis([]).data.videos, resolve=True)
    cfg = compose_davis(roots("/d/davis", "/d/duts", "/d/maps"))
    data = OmegaConf.to_container(cfg.data, resolve=True)
    assert data["images"] == [{"dataset": "duts", "root": "/d/duts"}]
    assert data["videos"] == [{"dataset": "davis", "root": "/d/davis", "split": "train"}]
    assert data["test"] == [{"dataset": "davis", "root": "/d/davis", "split": "val"}]
    assert data["val"] == [] and 0 < data["val_fraction"] < 0.5  # validation: held-out *train* sequences
    assert data["val_sequences"] == ["flamingo", "surf", "swing"]  # the same for every seed
    assert cfg.stage2.schedule == "cosine" and cfg.stage2.ema_decay == 0.98 and cfg.test_ckpt == "best"
    assert cfg.stage1.ckpt.endswith("stage1-duts.ckpt") and cfg.motion.classifier.endswith("stage1-duts-davis.pt")
    assert data["label_every"] == 10
    assert OmegaConf.to_container(cfg.weak.sources, resolve=True) == [
        {"folder": "/d/maps/csnet-x1", "name": "csnet-x1"}, {"folder": "/d/maps/csnet-x2", "name": "csnet-x2"}, "mbd"]
    assert "holdout_fraction" in cfg.weak  # weak=davis changes the sources only


@pytest.fixture(scope="module")
def tiny_layouts(tmp_path_factory) -> dict[str, Path]:
    """3 train clips and 1 val clip of 5 frames (DAVIS layout), 6 DUTS images, two map folders."""
    root = tmp_path_factory.mktemp("davis_layouts")
    davis = tiny_davis(root / "davis", sequences=4, frames=5, height=40, width=56, val_fraction=0.25)
    return {"davis": davis, "duts": tiny_duts(root / "duts", davis, count=6),
            "saliency": saliency_folders(root / "maps", davis, {"csnet-x1": blurred_truth, "csnet-x2": blurred_truth})}


@pytest.fixture(scope="module")
def tiny_scnn_run(tmp_path_factory, tiny_layouts) -> tuple[Path, dict]:
    """A finished SCNN run on the tiny layouts, with the .hydra files Hydra would have written."""
    out = tmp_path_factory.mktemp("scnn_run")
    overrides = [*roots(**tiny_layouts), *TINY_RUN, "ablation=SCNN"]
    cfg = compose_davis(overrides, out=out)
    metrics = run(cfg)
    (out / ".hydra").mkdir()
    OmegaConf.save(cfg, out / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create(["data=davis", "weak=davis", *overrides]), out / ".hydra" / "overrides.yaml")
    return out, metrics


def test_the_study_runs_end_to_end_on_tiny_layouts(tiny_scnn_run, tiny_layouts):
    tmp_path, metrics = tiny_scnn_run
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert set(written["datasets"]) == {"davis-val"} and written["datasets"]["davis-val"]["frames"] == 2
    assert 0.0 <= metrics["mae"] <= 1.0
    assert (tmp_path / "stage1" / "checkpoints" / "last.ckpt").is_file()  # stage 1 on the DUTS images
    assert (tmp_path / "temporal" / "region_classifier.pt").is_file()
    train = {s.name for s in load_index("davis", tiny_layouts["davis"], "train").sequences}
    store = WeakLabelStore(tmp_path / "weak_labels")
    for round_, sources in ((0, ["csnet-x1", "csnet-x2", "mbd"]), (1, ["csnet-x1", "csnet-x2", "mbd", "prediction"])):
        assert store.manifest(round_)["sources"] == sources
        frames = store.frames(round_)
        assert frames and {seq for seq, _ in frames} <= train  # weak labels: train only
    assert not (tmp_path / "weak_labels" / "round_002").exists()  # no round after the last epoch
    val = load_index("davis", tiny_layouts["davis"], "val").sequences
    assert {p.parent.name for p in (tmp_path / "predictions").rglob("*.png")} <= {s.name for s in val}


def test_the_oracle_scored_after_a_run_equals_the_one_its_manifests_carry(tmp_path, tiny_scnn_run, tiny_layouts):
    """`ablations.weak_levers oracle` (for runs made before manifests carried it) scores the label files as the
    refresh did during the run."""
    from ablations.weak_levers import oracle

    run_dir, _ = tiny_scnn_run
    scored = oracle(run_dir, Path(tiny_layouts["davis"]), tmp_path / "oracle.json")["rounds"]
    manifests = [json.loads(p.read_text()) for p in sorted((run_dir / "weak_labels").glob("round_*/manifest.json"))]
    assert [r["round"] for r in scored] == [0, 1]
    for row, manifest in zip(scored, manifests):
        assert row["frames"] == manifest["oracle"]["frames"] > 0
        assert row["label_iou"] == pytest.approx(manifest["oracle"]["label_iou"], abs=1e-9)
        assert row["by_distance"].keys() == manifest["oracle"]["by_distance"].keys()
        for distance, bucket in row["by_distance"].items():
            assert bucket["frames"] == manifest["oracle"]["by_distance"][distance]["frames"]
            assert bucket["label_iou"] == pytest.approx(manifest["oracle"]["by_distance"][distance]["label_iou"])


def test_ship_writes_weights_card_and_scores_that_predict_and_evaluate_give(tmp_path, tiny_scnn_run, tiny_layouts):
    run_dir, _ = tiny_scnn_run
    weights, results = tmp_path / "weights", tmp_path / "results"
    shown = [s.name for s in load_index("davis", tiny_layouts["davis"], "val").sequences]
    card = ship([run_dir], tiny_layouts["davis"], weights, results, tmp_path / "work", figure=tmp_path / "fig.png",
                show=tuple(shown))
    assert list(card["selection"]["candidates"]) == [str(run_dir)]  # one run: shipped, with its validation S
    assert 0.0 <= card["selection"]["candidates"][str(run_dir)] <= 1.0
    assert cv2.imread(str(tmp_path / "fig.png")).shape == (40 * len(shown), 56 * 4, 3)  # frame|truth|map|overlay
    assert (weights / "scnn-davis.ckpt").is_file() and (weights / "temporal" / "region_classifier.pt").is_file()
    assert "optimizer_states" not in torch.load(weights / "scnn-davis.ckpt", weights_only=True)
    written = json.loads((weights / "scnn-davis.json").read_text())
    assert written == json.loads(json.dumps(card))
    val = written["metrics"]["davis_val"]
    assert {"mae", "s_measure", "max_f", "mean_e", "frames"} <= set(val) and val["frames"] == 5  # the whole val clip
    assert written["predict_defaults"]["crf"] is True and written["training"]["from_scratch"] is True
    assert "CC BY-NC 4.0" in written["licence"] and "CC BY-NC-SA 4.0" in written["licence"]
    with (results / "shipped_per_sequence.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:5] == ["sequence", "frames", "mae", "s_measure", "max_f"]
    assert sum(int(r["frames"]) for r in rows) == 5
    # Re-checking as a user would: predict with the shipped file + evaluate give the committed figures.
    assert predict_main(["--ckpt", str(weights / "scnn-davis.ckpt"), "--input", str(tiny_layouts["davis"]),
                         "--dataset", "davis", "--split", "val", "--out", str(tmp_path / "again"),
                         "--no-progress"]) == 0
    again = evaluate_folders(tmp_path / "again", tiny_layouts["davis"], tmp_path / "again_eval", dataset="davis",
                             split="val", temporal=False)
    assert again["mae"] == pytest.approx(val["mae"], abs=1e-12)


def write_validation_log(run: Path, version: int, scores: list[float]) -> None:
    log = run / "csv" / "stage2" / f"version_{version}" / "metrics.csv"
    log.parent.mkdir(parents=True)
    rows = [row for epoch, score in enumerate(scores)  # as Lightning writes it: training rows between validations
            for row in (f"{epoch},{epoch * 10},,0.5", f"{epoch},{epoch * 10 + 9},{score},")]
    log.write_text("epoch,step,val/s_measure,train/loss\n" + "\n".join(rows) + "\n")


def test_the_run_best_on_held_out_train_sequences_is_chosen(tmp_path):
    first, second, third = (tmp_path / f"seed{i}" / "SCNN" for i in range(3))
    write_validation_log(first, 0, [0.5, 0.9, 0.70])  # its best epoch is not its last: the last counts
    write_validation_log(second, 0, [0.9])  # an older, unfinished log
    write_validation_log(second, 10, [0.6, 0.72])  # version 10 is newer than version 0 (not an alphabetic sort)
    best, selection = select_run([first, second])
    assert best == second and selection["candidates"] == {str(first): 0.70, str(second): 0.72}
    assert "held-out DAVIS-train" in selection["rule"]
    assert select_run([third]) == (third, {"rule": selection["rule"], "candidates": {str(third): None}})
    with pytest.raises(DataError, match="no CSV log of stage 2"):  # choosing needs every candidate's score
        select_run([first, third])
    write_validation_log(third, 0, [])
    with pytest.raises(DataError, match="no val/s_measure"):
        validation_score(third)


needs_real = pytest.mark.skipif(not all(p.is_dir() for p in REAL_ROOTS.values()),
                                reason=f"the real data is not present under {REAL}")


@needs_real
def test_the_config_resolves_against_the_real_data():
    cfg = compose_davis(roots(**REAL_ROOTS))
    data = OmegaConf.to_container(cfg.data, resolve=True)
    train = load_sequences(data["videos"])
    test = load_sequences(data["test"])
    assert (len(train), sum(len(s.frames) for s in train)) == (30, 2079)
    assert (len(test), sum(len(s.frames) for s in test)) == (20, 1376)
    assert not {s.name for s in train} & {s.name for s in test}
    assert sum(len(s.frames) for s in load_sequences(data["images"])) == 5277
    folders = [s for s in build_sources(OmegaConf.to_container(cfg.weak.sources, resolve=True))
               if isinstance(s, FolderSource)]
    assert [s.name for s in folders] == ["csnet-x1", "csnet-x2"]
    frames = [f for s in train for f in s.frames]
    assert all(source.check(frames) == [] for source in folders)  # a map for every train frame
    for seed in (0, 1, 2):  # every seed validates on the same whole train sequences
        _, val = split_train_val(train, data["val_fraction"], seed, data["val_sequences"])
        assert {seq.name for seq, _ in val} == {"flamingo", "surf", "swing"} and len(val) == 195


def test_the_label_budget_leaves_stage1_images_whole(tmp_path, tiny_layouts):
    cfg = compose_davis([*roots(**tiny_layouts), *TINY_RUN, "data.val_fraction=0"], out=tmp_path)
    images = datamodule(cfg, train=cfg.data.images)
    images.setup()
    assert len(images.active_train_entries()) == len(images.train_entries) == 6


def test_the_launcher_continues_an_unfinished_run_from_its_last_checkpoint(tmp_path):
    run_dir = tmp_path / "seed0" / "SCNN"
    job = ["ablation=SCNN", "seed=0"]
    fresh = command(run_dir, job)
    assert fresh[-1] == f"hydra.run.dir={run_dir}" and not any("ckpt_path" in a for a in fresh)
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text("seed: 0\n")
    for ckpt in (run_dir / "stage1" / "checkpoints" / "last.ckpt", run_dir / "checkpoints" / "last.ckpt"):
        ckpt.parent.mkdir(parents=True)
        ckpt.write_bytes(b"")
        assert f"ckpt_path={ckpt}" in command(run_dir, job)  # the later stage wins
    assert command(run_dir, job)[3:5] == job


def test_the_fcn1_lever_table_scores_fcn1_against_stage1_on_held_out_sequences(tiny_scnn_run, tiny_layouts, tmp_path):
    run_dir, _ = tiny_scnn_run
    held = load_index("davis", tiny_layouts["davis"], "train").sequences[0]
    out = tmp_path / "fcn1"
    code = fcn1_levers_main([str(run_dir), "--stage1", str(run_dir / "stage1" / "checkpoints" / "last.ckpt"),
                             "--davis", str(tiny_layouts["davis"]), "--val-sequences", held.name, "--size", "32", "48",
                             "--out", str(out)])
    record = json.loads(out.with_suffix(".json").read_text())
    [row] = record["rows"]
    assert code == 0 and row["fcn1"] == "train" and row["variant"] == "SCNN"
    assert row["held_out_fcn1_ps"]["frames"] == len(held.frames) == record["stage1_held_out_ps"]["frames"]
    assert row["fcn1_still_a_prior"] == (row["held_out_fcn1_ps"]["s_measure"]
                                         >= record["stage1_held_out_ps"]["s_measure"] - record["ps_margin"])
    assert set(row["davis_val_priors_report_only"]) == {"ps", "pt", "p"}
    assert "| SCNN | train |" in out.with_suffix(".md").read_text()
