"""A tiny SCNN training run with the weak-label loop of Algorithm 1, shared by the weak-callback tests
and the standalone DDP script (`tests/ddp_weak_run.py`)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from scnn_lightning.data.datamodule import LABEL_WEAK, SaliencyDataModule
from scnn_lightning.data.synthetic import generate_clips
from scnn_lightning.models.fcn import FCN
from scnn_lightning.motion.provider import MotionProvider
from scnn_lightning.training.module import SCNNModule
from scnn_lightning.weak.callback import WeakLabelRefresh

FCN_KWARGS = dict(width=0.125, fc_channels=64, dropout=0.0)  # dropout 0: the forward pass is deterministic
SIZE = (48, 64)
SOURCES = ["ft", "mbd", "rbd"]


def make_clips(root: Path, *, sequences: int = 2, frames: int = 6, seed: int = 7) -> Path:
    """Every frame has ground truth; the label budget (`label_every`) decides which ones count as manual."""
    return generate_clips(root, sequences=sequences, frames=frames, height=SIZE[0], width=SIZE[1], seed=seed,
                          val_fraction=0.0)


def make_datamodule(clips: Path, cache: Path, *, label_every: int = 3, batch_size: int = 4) -> SaliencyDataModule:
    source = [{"dataset": "davis", "root": str(clips)}]
    return SaliencyDataModule(train=source, val=source, size=SIZE, batch_size=batch_size, label_every=label_every,
                              motion=MotionProvider(flow="dis", prior="magnitude", cache_dir=cache))


def make_module(seed: int = 0) -> SCNNModule:
    L.seed_everything(seed)
    module = SCNNModule(**FCN_KWARGS, optimizer="adam", lr=1e-3, weight_decay=1e-4)
    module.init_from_stage1(FCN(**FCN_KWARGS))
    return module


class LabelSpy(Callback):
    """Records, per epoch, every training frame's label kind and label mask as the batches deliver them."""

    def __init__(self):
        self.seen: dict[int, dict[tuple[str, str], tuple[int, np.ndarray]]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        epoch = self.seen.setdefault(trainer.current_epoch, {})
        for seq, name, kind, mask in zip(batch["sequence"], batch["name"], batch["label_kind"], batch["mask"]):
            epoch[(seq, name)] = (int(kind), mask[0].cpu().numpy().astype(np.uint8))

    def weak_frames(self, epoch: int) -> set[tuple[str, str]]:
        return {key for key, (kind, _) in self.seen[epoch].items() if kind == LABEL_WEAK}


def make_trainer(out: Path, weak_root: Path, *, max_epochs: int, spy: Callback | None = None,
                 devices: int = 1, strategy: str = "auto", logger: bool = True,
                 checkpoint: ModelCheckpoint | None = None, check_val_every_n_epoch: int = 1,
                 ) -> tuple[L.Trainer, WeakLabelRefresh]:
    weak = WeakLabelRefresh(root=str(weak_root), sources=list(SOURCES))
    checkpoint = checkpoint or ModelCheckpoint(dirpath=str(out / "checkpoints"), save_last=True, save_top_k=0,
                                               save_on_train_epoch_end=True)
    callbacks = [checkpoint, weak] + ([spy] if spy is not None else [])
    trainer = L.Trainer(max_epochs=max_epochs, accelerator="cpu", devices=devices, strategy=strategy,
                        default_root_dir=str(out), callbacks=callbacks, reload_dataloaders_every_n_epochs=1,
                        logger=CSVLogger(str(out), name="csv") if logger else False, log_every_n_steps=1,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=1, check_val_every_n_epoch=check_val_every_n_epoch)
    return trainer, weak
