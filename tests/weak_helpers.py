"""A tiny SCNN training run with the weak-label loop of Algorithm 1, shared by the weak-callback tests
and the standalone DDP script (`tests/ddp_weak_run.py`)."""

from __future__ import annotations

import zlib
from pathlib import Path

import cv2
import lightning as L
import numpy as np
import torch
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


def make_datamodule(clips: Path, cache: Path | None, *, label_every: int = 3, batch_size: int = 4,
                    num_workers: int = 0) -> SaliencyDataModule:
    """Without a `cache` folder the datamodule has no motion provider (for models that use no motion cue)."""
    source = [{"dataset": "davis", "root": str(clips)}]
    motion = MotionProvider(flow="dis", prior="magnitude", cache_dir=cache) if cache is not None else None
    return SaliencyDataModule(train=source, val=source, size=SIZE, batch_size=batch_size, label_every=label_every,
                              num_workers=num_workers, motion=motion)


def make_module(seed: int = 0) -> SCNNModule:
    L.seed_everything(seed)
    module = SCNNModule(**FCN_KWARGS, optimizer="adam", lr=1e-3, weight_decay=1e-4)
    module.init_from_stage1(FCN(**FCN_KWARGS))
    return module


class LabelSpy(Callback):
    """Records, per epoch, every training frame's label kind and binary label as the batches deliver them (and
    in `confidence` the mask as delivered: a weak label's confidence, >= 0.5 foreground)."""

    def __init__(self):
        self.seen: dict[int, dict[tuple[str, str], tuple[int, np.ndarray]]] = {}
        self.confidence: dict[int, dict[tuple[str, str], np.ndarray]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        epoch = self.seen.setdefault(trainer.current_epoch, {})
        delivered = self.confidence.setdefault(trainer.current_epoch, {})
        for seq, name, kind, mask in zip(batch["sequence"], batch["name"], batch["label_kind"], batch["mask"]):
            values = mask[0].cpu().numpy()
            epoch[(seq, name)] = (int(kind), (values >= 0.5).astype(np.uint8))
            delivered[(seq, name)] = values

    def weak_frames(self, epoch: int) -> set[tuple[str, str]]:
        return {key for key, (kind, _) in self.seen[epoch].items() if kind == LABEL_WEAK}


def make_trainer(out: Path, weak_root: Path, *, max_epochs: int, spy: Callback | None = None,
                 devices: int = 1, strategy: str = "auto", logger: bool = True,
                 checkpoint: ModelCheckpoint | None = None, check_val_every_n_epoch: int = 1,
                 sources: list | None = None, **weak_kwargs) -> tuple[L.Trainer, WeakLabelRefresh]:
    weak = WeakLabelRefresh(root=str(weak_root), sources=list(sources or SOURCES), **weak_kwargs)
    checkpoint = checkpoint or ModelCheckpoint(dirpath=str(out / "checkpoints"), save_last=True, save_top_k=0,
                                               save_on_train_epoch_end=True)
    callbacks = [checkpoint, weak] + ([spy] if spy is not None else [])
    trainer = L.Trainer(max_epochs=max_epochs, accelerator="cpu", devices=devices, strategy=strategy,
                        default_root_dir=str(out), callbacks=callbacks, reload_dataloaders_every_n_epochs=1,
                        logger=CSVLogger(str(out), name="csv") if logger else False, log_every_n_steps=1,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=1, check_val_every_n_epoch=check_val_every_n_epoch)
    return trainer, weak


class OracleNetwork(L.LightningModule):
    """A stand-in for SCNN whose maps get better by a set schedule, so the weak-label loop can be tested in
    seconds: after its k-th epoch its logit is  s·6·(2·truth − 1) + (1 − s)·noise + `offset`  with s =
    `skill(k)`, where `offset` plays the class-balanced loss's push toward foreground (Eq. 3). It trains
    one dummy parameter, so a real Trainer runs it; `truth` maps (sequence, frame) to the mask at
    training size."""

    def __init__(self, truth: dict[tuple[str, str], np.ndarray], skill, *, offset: float = 2.0):
        super().__init__()
        self.truth, self.skill, self.offset = truth, skill, offset
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return (self.dummy ** 2).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def saliency(self, batch: dict) -> torch.Tensor:
        s = float(self.skill(self.current_epoch + 1))
        maps = []
        for seq, name in zip(batch["sequence"], batch["name"]):
            truth = self.truth[(seq, name)].astype(np.float64)
            noise = np.random.default_rng(zlib.crc32(f"{seq}/{name}".encode())).normal(0.0, 3.0, truth.shape)
            maps.append(1.0 / (1.0 + np.exp(-(s * 6.0 * (2 * truth - 1) + (1 - s) * noise + self.offset))))
        return torch.from_numpy(np.stack(maps)).float()


def write_folder_maps(root: Path, maps: dict[tuple[str, str], np.ndarray]) -> Path:
    """Maps in [0, 1] as `<root>/<sequence>/<frame>.png`, the layout of a folder source."""
    for (seq, name), values in maps.items():
        (root / seq).mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(root / seq / f"{name}.png"), np.round(np.clip(values, 0, 1) * 255).astype(np.uint8))
    return root
