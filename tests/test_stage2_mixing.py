"""Stage 2's per-epoch draws: still images of the stage-1 sources mixed in (`data.image_mix`) and a share of the
weak-labelled frames (`weak.frames_per_epoch`), both seeded by (seed, epoch) so every rank and a resumed run
train on the same frames."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pytest
from omegaconf import open_dict

import experiments.run as runner
from scnn_lightning.data.datamodule import LABEL_MANUAL, SaliencyDataModule, frame_key
from scnn_lightning.data.synthetic import generate_clips
from scnn_lightning.errors import DataError
from scnn_lightning.inference.checkpoint import save_inference_checkpoint
from scnn_lightning.training.module import ImageStageModule
from scnn_lightning.weak.store import WeakLabelStore
from tests.conftest import compose_run

SIZE = (40, 56)
MANUAL, UNLABELLED = 9, 9  # 3 clips of 6 frames, ground truth on every 2nd
STILLS = 16  # 2 still-image "sequences" of 8 frames, all labelled


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    return generate_clips(root, sequences=3, frames=6, height=40, width=56, seed=3, sparse_every=2, val_fraction=0.0)


@pytest.fixture(scope="module")
def stills(tmp_path_factory):
    root = tmp_path_factory.mktemp("stills")
    return generate_clips(root, sequences=2, frames=8, height=40, width=56, seed=500, val_fraction=0.0)


def build(clips, stills=None, **kwargs) -> SaliencyDataModule:
    mix = [{"dataset": "davis", "root": str(stills), "as_images": True}] if stills else []
    dm = SaliencyDataModule(train=[{"dataset": "davis", "root": str(clips)}], val_fraction=0.0, size=SIZE,
                            batch_size=4, mix_images=mix, **kwargs)
    dm.setup("fit")
    return dm


def with_weak_labels(dm: SaliencyDataModule, root) -> SaliencyDataModule:
    """Round 0 labels every frame without ground truth, as `WeakLabelRefresh` does."""
    store = WeakLabelStore(root)
    label = np.zeros(SIZE, np.uint8)
    store.write_round(0, {frame_key(e): label for e in dm.unlabelled_train_entries()}, weights={"ft": 1.0}, stats={})
    dm.use_weak_labels(store, 0)
    return dm


def keys(entries) -> set:
    return {frame_key(e) for e in entries}


def stills_of(dm: SaliencyDataModule, epoch: int) -> list:
    return [e for e in dm.epoch_train_entries(epoch) if not e[0].temporal]


def test_image_mix_draws_a_seeded_subset_of_the_still_images_each_epoch(clips, stills):
    dm = build(clips, stills, image_mix=0.5, seed=7)
    assert len(dm.mix_entries) == STILLS and not dm.val_entries
    epoch0, epoch1 = stills_of(dm, 0), stills_of(dm, 1)
    assert len(epoch0) == len(epoch1) == 5  # round(0.5 × 9 manual video frames), halves up
    assert len(keys(epoch0)) == 5 and keys(epoch0) != keys(epoch1)
    assert len(dm.epoch_train_entries(0)) == MANUAL + 5
    again = build(clips, stills, image_mix=0.5, seed=7)  # another rank, or the run resumed
    assert keys(stills_of(again, 1)) == keys(epoch1)
    assert keys(stills_of(build(clips, stills, image_mix=0.5, seed=8), 1)) != keys(epoch1)
    assert len(dm.active_train_entries()) == MANUAL  # still "the frames with a label", images apart


def test_image_mix_is_capped_at_the_images_there_are(clips, stills):
    assert len(stills_of(build(clips, stills, image_mix=3.0), 0)) == STILLS


def test_mixed_images_are_served_as_manually_labelled_stills(clips, stills):
    dm = build(clips, stills, image_mix=0.5)
    dm.trainer = SimpleNamespace(current_epoch=1, is_global_zero=True)
    items = list(dm.train_dataloader().dataset)
    images = [item for item in items if not item["has_next"]]
    assert keys(stills_of(dm, 1)) == {(item["sequence"], item["name"]) for item in images}
    assert len(images) == 5 and all(item["label_kind"] == LABEL_MANUAL for item in items)
    assert all(item["image"].shape[1:] == SIZE and (item["image"] == item["next_image"]).all() for item in images)
    assert all(item["mask"].max() > 0 for item in images)


def test_weak_share_keeps_every_manual_frame_and_a_seeded_share_of_the_weak_ones(clips, tmp_path):
    dm = with_weak_labels(build(clips, weak_share=0.5, seed=3), tmp_path / "weak")
    manual = keys(dm.labelled_train_entries())
    epochs = [keys(dm.epoch_train_entries(epoch)) for epoch in range(3)]
    assert all(manual <= epoch and len(epoch - manual) == 5 for epoch in epochs)  # round(0.5 × 9) weak frames
    assert len({frozenset(epoch) for epoch in epochs}) > 1
    again = with_weak_labels(build(clips, weak_share=0.5, seed=3), tmp_path / "weak-again")
    assert [keys(again.epoch_train_entries(epoch)) for epoch in range(3)] == epochs
    assert len(dm.active_train_entries()) == MANUAL + UNLABELLED  # every frame with a label, drawn or not


def test_both_draws_together_take_images_per_drawn_video_frame(clips, stills, tmp_path):
    dm = with_weak_labels(build(clips, stills, image_mix=0.5, weak_share=0.5), tmp_path / "weak")
    entries = dm.epoch_train_entries(0)
    assert len(entries) == MANUAL + 5 + 7  # 9 manual, 5 of 9 weak, round(0.5 × 14) images
    assert dm.scheduled_train_frames() == len(entries)


def test_the_schedule_counts_what_an_epoch_holds_before_the_weak_labels_exist(clips, stills, tmp_path):
    dm = build(clips, stills, image_mix=0.5, weak_share=0.5)
    assert dm.scheduled_train_frames() == len(dm.epoch_train_entries(0)) == MANUAL + 5
    dm.weak_labels_expected = True  # WeakLabelRefresh's setup: round 0 is written after the plan
    planned = dm.scheduled_train_frames()
    assert planned == len(with_weak_labels(dm, tmp_path / "weak").epoch_train_entries(0)) == MANUAL + 5 + 7


@pytest.mark.parametrize("bad", [-0.5, "many", float("nan"), float("inf"), None, True])
def test_a_bad_image_mix_names_its_key(clips, stills, bad):
    with pytest.raises(ValueError, match="data.image_mix"):
        build(clips, stills, image_mix=bad)


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.5, "half", None])
def test_a_bad_weak_share_names_its_key(clips, bad):
    with pytest.raises(ValueError, match="weak.frames_per_epoch"):
        build(clips, weak_share=bad)


def test_image_mix_without_still_images_is_an_error(clips):
    with pytest.raises(ValueError, match="data.images is empty"):
        build(clips, image_mix=0.5)


def test_mixed_images_may_not_be_validation_frames(clips):
    dm = SaliencyDataModule(train=[{"dataset": "davis", "root": str(clips)}],
                            val=[{"dataset": "davis", "root": str(clips)}], size=SIZE,
                            mix_images=[{"dataset": "davis", "root": str(clips), "as_images": True}], image_mix=0.5)
    with pytest.raises(DataError, match="validation frame"):
        dm.setup("fit")


def test_the_runner_mixes_in_stage_2_only_and_reads_old_configs(tmp_path, data_dir):
    cfg = compose_run(tmp_path, data_dir, ["data.image_mix=0.5", "weak.frames_per_epoch=0.25"])
    stage1 = runner.datamodule(cfg, train=cfg.data.images)
    classifier = runner.datamodule(cfg, train=cfg.data.videos, val=cfg.data.val)  # the region classifier's
    stage2 = runner.datamodule(cfg, train=cfg.data.videos, val=cfg.data.val, stage2=True)
    assert (classifier.image_mix, classifier.mix_specs) == (0.0, [])
    assert (stage1.image_mix, stage1.mix_specs) == (0.0, [])
    assert stage2.image_mix == 0.5 and stage2.mix_specs == runner._plain(cfg.data.images)
    assert stage2.weak_share == 0.25
    with open_dict(cfg):  # a run saved before the keys existed
        del cfg.data.image_mix
        cfg.weak.pop("frames_per_epoch", None)
    old = runner.datamodule(cfg, train=cfg.data.videos, stage2=True)
    assert (old.image_mix, old.weak_share, old.mix_specs) == (0.0, 1.0, [])


@pytest.mark.slow  # minutes on 2 CPU cores: weak-label rounds and the test phase
def test_a_tiny_run_with_both_options_completes_stage_2(tmp_path, data_dir, caplog):
    stage1 = save_inference_checkpoint(ImageStageModule(width=0.0625, fc_channels=64, dropout=0.0),
                                       tmp_path / "stage1.ckpt")
    cfg = compose_run(tmp_path / "run", data_dir, ["ablation=SCNN", "motion=magnitude", "crf=null",
                                                   f"stage1.ckpt={stage1}", "stage2.max_epochs=2",
                                                   "data.image_mix=0.5", "weak.frames_per_epoch=0.5"])
    caplog.set_level(logging.INFO, logger="scnn_lightning.data.datamodule")
    metrics = runner.run(cfg)
    assert 0.0 <= metrics["mae"] <= 1.0
    draws = [r.getMessage() for r in caplog.records if r.name == "scnn_lightning.data.datamodule"]
    assert [line.split()[1] for line in draws] == ["0", "1"] and all("still images" in line for line in draws)
