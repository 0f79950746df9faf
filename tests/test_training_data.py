"""What each part of a run trains on: `data.val_fraction` (0 for the paper: no validation loop at all),
and the temporal prior's region classifier, trained on stage 2's training frames only and only by the
variants that take Pt."""

from __future__ import annotations

import csv
import re
import threading
import warnings
from datetime import timedelta
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import experiments.run as runner
import scnn_lightning.motion.classifier as classifier_module
from scnn_lightning.data.records import FrameRef, SequenceRef
from scnn_lightning.errors import DataError
from scnn_lightning.inference.checkpoint import save_inference_checkpoint
from scnn_lightning.models.variants import VARIANTS
from scnn_lightning.models.vgg import VGG16Backbone
from scnn_lightning.motion.classifier import RegionClassifier, index_of_entries, train_on_rank_zero
from scnn_lightning.training.module import ImageStageModule
from tests.conftest import CONFIG_DIR, compose_run

PAPER_ROOTS = [f"data.root.{name}=/data/{name}" for name in ("msra10k", "segtrackv2", "fbms", "davis")]


def compose_plain(overrides: list[str]):
    """The real config without the tiny-run overrides (they name keys `data=paper` does not have)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="run", overrides=overrides)


def test_paper_data_trains_on_everything_and_names_its_davis_split():
    cfg = compose_plain(["data=paper", *PAPER_ROOTS])
    assert cfg.data.val_fraction == 0.0 and list(cfg.data.val) == []
    assert runner.datamodule(cfg, train=[]).val_fraction == 0.0
    davis = [t for t in cfg.data.test if t.dataset == "davis"]
    assert [t.split for t in davis] == ["val"]
    assert compose_plain(["data=paper", "data.davis_split=null", *PAPER_ROOTS]).data.test[0].split is None
    assert compose_plain(["data=paper", "data.davis_split=train", *PAPER_ROOTS]).data.test[0].split == "train"
    synthetic = compose_plain([])
    assert runner.datamodule(synthetic, train=[]).val_fraction == 0.2  # the synthetic runs keep their hold-out


def csv_columns(run_dir: Path) -> set[str]:
    columns: set[str] = set()
    for path in run_dir.rglob("metrics.csv"):
        with path.open() as f:
            columns |= set(next(csv.reader(f)))
    return columns


def test_without_validation_sources_and_val_fraction_0_no_stage_validates(tmp_path, data_dir):
    cfg = compose_run(tmp_path, data_dir, ["ablation=sFCN", "crf=null", "data.val=[]", "data.val_fraction=0"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics = runner.run(cfg)
    assert 0.0 <= metrics["mae"] <= 1.0
    columns = csv_columns(tmp_path / "stage1") | csv_columns(tmp_path / "csv")
    assert "test/mae" in columns and not [c for c in columns if c.startswith("val/")]
    about_val = [str(w.message) for w in caught if re.search(r"\bval\b|valid|val_dataloader|across ranks is zero",
                                                             str(w.message), re.IGNORECASE)]
    assert not about_val, about_val


def tiny_stage1(path: Path) -> Path:
    """A stage-1 checkpoint of the tiny runner width (its backbone gives the classifier's features)."""
    return save_inference_checkpoint(ImageStageModule(width=0.0625, fc_channels=64, dropout=0.0), path)


def test_region_classifier_learns_from_stage2_training_frames_only(tmp_path, monkeypatch):
    overrides = ["data.val=[]", "data.val_fraction=0.5", "data.label_every=2", "data.generate.train.sequences=4",
                 "data.generate.train.val_fraction=0.0"]
    cfg = compose_run(tmp_path / "run", tmp_path / "data", overrides)
    runner.generate_data(cfg)
    ckpt = tiny_stage1(tmp_path / "run" / "stage1.ckpt")
    seen = []

    def spy(index, *, backbone, out, **kwargs):
        seen.append(index)
        RegionClassifier.untrained(backbone).save(out)

    monkeypatch.setattr(runner, "train_region_classifier", spy)
    provider = runner.build_motion(cfg, tmp_path / "run", ckpt, True)
    assert provider.classifier is not None and len(seen) == 1

    dm = runner.datamodule(cfg, train=cfg.data.videos, val=cfg.data.val)
    dm.setup("fit")
    assert dm.val_entries, "precondition: this seed holds out a sequence"
    every = {(s.name, f.name) for s, _ in dm.train_entries + dm.val_entries for f in s.frames if f.labelled}
    wanted = {(s.name, s.frames[i].name) for s, i in dm.labelled_train_entries()}
    taught = {(s.name, f.name) for s in seen[0].sequences for f in s.frames if f.labelled}
    assert taught == wanted and wanted < every  # neither held-out sequences nor frames outside the budget
    assert not taught & {(s.name, s.frames[i].name) for s, i in dm.val_entries}


@pytest.mark.parametrize("code", list(VARIANTS))
def test_only_variants_that_take_pt_train_the_region_classifier(code, tmp_path, data_dir, monkeypatch):
    cfg = compose_run(tmp_path, data_dir, [f"ablation={code}"])
    ckpt = tiny_stage1(tmp_path / "stage1.ckpt")
    trained = []

    def spy(cfg, stage1_ckpt, path):
        trained.append(path)
        RegionClassifier.untrained(runner.load_fcn(stage1_ckpt).backbone).save(path)

    monkeypatch.setattr(runner, "train_classifier_on_training_frames", spy)
    variant = VARIANTS[code]
    provider = runner.build_motion(cfg, tmp_path, ckpt, variant.needs_motion)
    takes_pt = code in {"FP", "OT", "NA", "SCNN"}
    assert bool(trained) == takes_pt and (tmp_path / "temporal").exists() == takes_pt
    assert (provider is None) == (code in {"sFCN", "OS"})  # FG still gets its grey flow image
    if code == "FG":
        assert provider.classifier is None


def test_index_of_entries_keeps_neighbour_frames_but_only_the_listed_labels():
    frames = [FrameRef("a", f"{i:05d}", Path(f"/a/{i}.jpg"), masks=(Path(f"/a/{i}.png"),)) for i in range(4)]
    seq, other = SequenceRef("a", frames), SequenceRef("b", frames[:1])
    index = index_of_entries([(seq, 0), (seq, 2)], "/videos")
    assert [s.name for s in index.sequences] == ["a"]  # a sequence without a listed frame is left out
    assert [f.labelled for f in index.sequences[0].frames] == [True, False, True, False]
    assert [f.image for f in index.sequences[0].frames] == [f.image for f in frames]  # flow needs them all
    assert all(f.labelled for f in other.frames)  # the caller's records are not changed


def test_a_rank_started_before_any_process_group_waits_for_rank_zeros_file(tmp_path, monkeypatch):
    """torchrun/SLURM start every rank at once; with stage 1 skipped no process group exists yet."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    monkeypatch.setattr(rank_zero_only, "rank", 1)
    monkeypatch.setattr(classifier_module, "POLL_SECONDS", 0.05)
    path = tmp_path / "temporal" / "region_classifier.pt"

    def must_not_train(_):
        raise AssertionError("only rank 0 trains")

    with pytest.raises(DataError, match="rank 1 waited"):
        train_on_rank_zero(path, must_not_train, wait=timedelta(seconds=0.2))
    writer = threading.Timer(0.3, lambda: RegionClassifier.untrained(VGG16Backbone(width=0.0625)).save(path))
    writer.start()
    assert train_on_rank_zero(path, must_not_train, wait=timedelta(seconds=30)) == path
    writer.join()
