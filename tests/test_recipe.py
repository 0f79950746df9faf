"""The training recipe: learning-rate schedules, weight averaging (EMA), the tested checkpoint, fixed validation
sequences and the records that explain a run (issue: "A study that decides")."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from omegaconf import open_dict
from torch.utils.data import DataLoader, Dataset

from experiments.run import build_trainer, load_best, run
from scnn_lightning.data.datamodule import SaliencyDataModule, split_train_val
from scnn_lightning.data.synthetic import generate_clips
from scnn_lightning.errors import DataError
from scnn_lightning.training.module import ImageStageModule
from scnn_lightning.training.records import read_curve, write_curve
from scnn_lightning.training.schedules import build_scheduler
from tests.conftest import compose_run

TINY_NET = dict(width=0.0625, fc_channels=16, dropout=0.0, optimizer="adam", lr=3e-3, weight_decay=1e-4)


def lrs(name: str, steps: int, warmup: int) -> list[float]:
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = build_scheduler(optimizer, name, total_steps=steps, warmup_steps=warmup)
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def test_schedules_warm_up_then_decay_over_the_whole_stage():
    assert lrs("constant", 6, 0) == [1.0] * 6
    ramp = lrs("cosine", 12, 4)
    assert ramp[0] == pytest.approx(1e-3) and ramp[:5] == sorted(ramp[:5]) and ramp[4] == pytest.approx(1.0)
    assert ramp[4:] == sorted(ramp[4:], reverse=True) and ramp[-1] < 0.05  # down to ~0 at the last step
    poly = lrs("poly", 10, 0)
    assert poly[0] == 1.0 and poly[5] == pytest.approx((1 - 5 / 10) ** 0.9) and poly[-1] < 0.2
    assert lrs("constant", 5, 2)[2:] == [1.0] * 3
    with pytest.raises(ValueError, match="constant, poly, cosine"):
        lrs("step", 5, 0)


class Tiles(Dataset):
    """Fixed random images with a bright square as the object: a deterministic, unshuffled stage-1 stand-in."""

    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.rand(n, 3, 32, 32, generator=g)
        self.masks = torch.zeros(n, 1, 32, 32)
        for i in range(n):
            y, x = torch.randint(0, 16, (2,), generator=g).tolist()
            self.masks[i, :, y:y + 12, x:x + 12] = 1.0
            self.images[i, :, y:y + 12, x:x + 12] += 0.8

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "mask": self.masks[i], "labelled": torch.tensor(True),
                "label_kind": torch.tensor(1)}


class StopAfterFirstEpoch(Callback):
    """Ends fit after epoch 0, as a kill after that epoch's checkpoint would (the schedule planned for all)."""

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        trainer.should_stop = True


def fit(cfg, out: Path, *, resume: Path | None = None, stop_early: bool = False) -> L.Trainer:
    L.seed_everything(0)
    module = ImageStageModule(**TINY_NET, schedule="cosine", warmup_steps=2)
    trainer = build_trainer(cfg, out, "stage1", out / "checkpoints", [StopAfterFirstEpoch()] if stop_early else [],
                            stage=cfg.stage1)
    trainer.fit(module, DataLoader(Tiles(8, 1), batch_size=2), DataLoader(Tiles(4, 2), batch_size=2),
                ckpt_path=str(resume) if resume else None)
    return trainer


def test_a_resumed_run_continues_the_schedule_and_the_averaged_weights_exactly(tmp_path, data_dir):
    cfg = compose_run(tmp_path, data_dir, ["stage1.ema_decay=0.9", "stage1.max_epochs=3",
                                           "++trainer.limit_train_batches=1.0", "++trainer.limit_val_batches=1.0"])
    fit(cfg, tmp_path / "whole")
    fit(cfg, tmp_path / "parts", stop_early=True)
    first = torch.load(tmp_path / "parts" / "checkpoints" / "last.ckpt", weights_only=True)
    assert first["epoch"] == 0 and "current_model_state" in first  # EMA in state_dict, raw weights beside
    fit(cfg, tmp_path / "parts", resume=tmp_path / "parts" / "checkpoints" / "last.ckpt")
    whole, parts = (torch.load(tmp_path / p / "checkpoints" / "last.ckpt", weights_only=True) for p in ("whole", "parts"))
    assert whole["epoch"] == parts["epoch"] == 2
    for key in ("state_dict", "current_model_state", "averaging_state"):
        assert whole[key].keys() == parts[key].keys()
        assert all(torch.equal(whole[key][k], parts[key][k]) for k in whole[key]), key
    assert whole["lr_schedulers"] == parts["lr_schedulers"]
    assert not all(torch.equal(whole["state_dict"][k], whole["current_model_state"][k]) for k in whole["state_dict"])
    curve = read_curve(tmp_path / "parts" / "val_curve.csv")
    assert [row["epoch"] for row in curve] == [0, 1, 2]  # epoch 0 from before the resume, kept once
    assert curve == read_curve(tmp_path / "whole" / "val_curve.csv")
    assert curve[0]["lr"] > curve[1]["lr"] > curve[2]["lr"] >= 0.0  # cosine over the 3 epochs, 12 steps


def test_weak_runs_plan_the_schedule_for_the_frames_that_join_later(tmp_path):
    clips = generate_clips(tmp_path / "clips", sequences=3, frames=6, height=40, width=56, seed=3, sparse_every=3,
                           val_fraction=0.0)
    dm = SaliencyDataModule(train=[{"dataset": "davis", "root": str(clips)}], size=(40, 56), batch_size=2,
                            val_fraction=0.0)
    dm.setup("fit")
    labelled = len(dm.active_train_entries())
    assert labelled < len(dm.train_entries) and dm.scheduled_train_frames() == labelled
    dm.weak_labels_expected = True
    assert dm.scheduled_train_frames() == len(dm.train_entries)


def test_fixed_validation_sequences_are_the_same_for_every_seed(tmp_path):
    clips = generate_clips(tmp_path / "clips", sequences=5, frames=3, height=24, width=32, seed=1, val_fraction=0.0)
    dm = SaliencyDataModule(train=[{"dataset": "davis", "root": str(clips)}], size=(24, 32), val_fraction=0.2)
    dm.setup()
    names = sorted({seq.name for seq, _ in dm.train_entries})
    chosen = names[1:3]
    held = []
    for seed in range(6):
        train, val = split_train_val([seq for seq, i in dm.train_entries if i == 0], 0.2, seed, chosen)
        held.append(sorted({seq.name for seq, _ in val}))
        assert not {seq.name for seq, _ in train} & set(chosen)
    assert held == [chosen] * 6
    by_hash = {tuple(sorted({s.name for s, _ in split_train_val([seq for seq, i in dm.train_entries if i == 0],
                                                                 0.4, seed)[1]})) for seed in range(6)}
    assert len(by_hash) > 1  # without the list the seed moves the validation set
    with pytest.raises(ValueError, match="nosuch"):
        split_train_val([seq for seq, i in dm.train_entries if i == 0], 0.2, 0, ["nosuch"])


def test_test_ckpt_best_tests_the_best_validation_epoch_and_records_it(tmp_path, data_dir):
    cfg = compose_run(tmp_path / "run", data_dir, ["ablation=NA", "motion=magnitude", "test_ckpt=best",
                                                   "stage2.max_epochs=3", "stage2.schedule=cosine",
                                                   "stage2.ema_decay=0.5", "stage2.lr=0.01"])
    metrics = run(cfg)
    curve = read_curve(tmp_path / "run" / "val_curve.csv")
    best = max(curve, key=lambda row: row["s_measure"])
    assert len(curve) == 3 and metrics["tested"]["epoch"] == best["epoch"]
    assert metrics["tested"]["val_s_measure"] == best["s_measure"]
    assert metrics["checkpoint"].endswith("best.ckpt")
    saved = torch.load(tmp_path / "run" / "checkpoints" / "best.ckpt", weights_only=True)
    assert saved["epoch"] == best["epoch"]
    assert "current_model_state" in saved  # state_dict holds the averaged weights, the ones validated
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    env = written["environment"]
    assert env["torch"] == torch.__version__ and env["torch_threads"] >= 1 and env["cpu"]
    assert read_curve(tmp_path / "run" / "stage1" / "val_curve.csv")  # each stage has its curve


def test_load_best_puts_the_saved_weights_in_and_names_a_missing_file(tmp_path):
    module = ImageStageModule(**TINY_NET)
    saved = {k: torch.randn_like(v) for k, v in module.state_dict().items()}
    (tmp_path / "checkpoints").mkdir()
    torch.save({"state_dict": saved}, tmp_path / "checkpoints" / "best.ckpt")
    write_curve(tmp_path / "val_curve.csv", [
        {"epoch": e, "step": 2 * e, "lr": 0.1, "s_measure": s, "max_f": 0.5, "mae": 0.1}
        for e, s in enumerate([0.5, 0.7, 0.6])])
    tested = load_best(module, tmp_path)
    assert (tested["epoch"], tested["last_epoch"]) == (1, 2)
    assert all(torch.equal(module.state_dict()[k], saved[k]) for k in saved)
    with pytest.raises(DataError, match="best.ckpt"):
        load_best(module, tmp_path / "elsewhere")


def test_unknown_test_ckpt_is_refused_before_training(tmp_path, data_dir):
    cfg = compose_run(tmp_path, data_dir, ["ablation=NA", "motion=magnitude"])
    with open_dict(cfg):
        cfg.test_ckpt = "final"
        cfg.stage1.ckpt = None
    with pytest.raises(ValueError, match="last, best"):
        run(cfg)
