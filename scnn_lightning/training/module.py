"""LightningModules for both training stages (paper §IV-B).

`ImageStageModule` trains the single FCN on still images (stage 1). Each variant of §IV-D has its own
subclass of `VariantModule` (stage 2); the only thing a subclass states is its variant code — what
differs between variants is the table in `models/variants.py`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger

from scnn_lightning.crf import CRFParams, frame_size_map
from scnn_lightning.data.datamodule import LABEL_WEAK
from scnn_lightning.metrics.sod import SODMetrics, scalar_scores, sequence_scores
from scnn_lightning.models.cascade import Cascade
from scnn_lightning.models.fcn import FCN, FCN2_INITS
from scnn_lightning.models.losses import WeakLoss, balanced_bce
from scnn_lightning.models.variants import Variant, get_variant
from scnn_lightning.models.vgg import DEFAULT_FC6, load_imagenet_vgg16
from scnn_lightning.training.schedules import SCHEDULES, build_scheduler
from scnn_lightning.training.test_scoring import FrameScorer
from scnn_lightning.training.wandb_media import PANELS, log_wandb_media
from scnn_lightning.utils import write_png_map


class SaliencyModule(L.LightningModule):
    """Loss, optimiser, evaluation and map writing shared by every stage and variant."""

    stage: ClassVar[str]

    def __init__(self, *, width: float = 1.0, fc_channels: int = 1024, upsample: str = "last2",
                 dropout: float = 0.5, optimizer: str = "sgd", lr: float = 1e-3, momentum: float = 0.9,
                 weight_decay: float = 0.005, crf: dict | None = None, protocol: str = "pysod",
                 predictions_dir: str | None = None, size: list[int] | None = None,
                 fc6: str = DEFAULT_FC6, fcn2_init: str = "copy", schedule: str = "constant", warmup_steps: int = 0,
                 weak_target: str = "binary", weak_ignore_band: float = 0.0, weak_weight: float = 1.0):
        # fc6, fcn2_init, the schedule and the weak-label loss came later: their defaults are what checkpoints
        # written before them used.
        super().__init__()
        self.save_hyperparameters()  # `size` (the training input size) is kept for inference only
        if fcn2_init not in FCN2_INITS:  # checked here so a typo stops the run before stage 1, not after
            raise ValueError(f"fcn2_init must be one of {', '.join(FCN2_INITS)}, got {fcn2_init!r}")
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
        self.fcn_kwargs = dict(width=width, fc_channels=fc_channels, upsample=upsample, dropout=dropout, fc6=fc6)
        self.crf_params = CRFParams(**crf) if crf else None
        self.weak_loss = WeakLoss(weak_target, weak_ignore_band, weak_weight)
        self.val_metrics = SODMetrics(protocol="pysod")
        self.test_metrics = SODMetrics(protocol=protocol)
        self.predictions_dir = Path(predictions_dir) if predictions_dir else None
        self.test_workers = 0  # processes that make the test maps (`FrameScorer`): a machine setting, not the model's
        self.scorer: FrameScorer | None = None

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["scnn"] = {"stage": self.stage, "variant": getattr(self, "variant_code", "image")}

    # -- subclasses implement ---------------------------------------------------------------------
    def forward(self, batch: dict) -> torch.Tensor:  # logits (B, 1, H, W)
        raise NotImplementedError

    # -- training -----------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        target, pixel_weight, image_weight = self.weak_loss.terms(batch["mask"], batch["label_kind"])
        loss = balanced_bce(self(batch), target, batch["labelled"], pixel_weight=pixel_weight, image_weight=image_weight)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["mask"]))
        self.log("train/weak_fraction", (batch["label_kind"] == LABEL_WEAK).float().mean(), batch_size=len(batch["mask"]))
        return loss

    def configure_optimizers(self):
        """SGD with momentum and weight decay as in §IV-B; Adam (decoupled decay) for from-scratch CPU runs,
        where a plain 16-layer ReLU stack without ImageNet weights barely moves under SGD in a few epochs.
        With a schedule other than the paper's constant rate (or a warm-up), its scheduler steps every step."""
        hp = self.hparams
        if hp.optimizer == "sgd":
            optimizer = torch.optim.SGD(self.parameters(), lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
        elif hp.optimizer == "adam":
            optimizer = torch.optim.AdamW(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        else:
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {hp.optimizer!r}")
        if hp.schedule == "constant" and not hp.warmup_steps:
            return optimizer
        scheduler = build_scheduler(optimizer, hp.schedule, total_steps=self.scheduled_steps(),
                                    warmup_steps=hp.warmup_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def scheduled_steps(self) -> int:
        """The stage's optimizer steps. Lightning counts them from the first epoch's loader; with weak labels the
        frames without ground truth join only once round 0 is written (at fit start, after this plan), so then
        the datamodule's count of a full epoch is used, with the trainer's batch limits applied as Lightning does."""
        trainer = self.trainer
        dm = trainer.datamodule
        if not getattr(dm, "weak_labels_expected", False):
            return int(trainer.estimated_stepping_batches)
        batches = math.ceil(math.ceil(dm.scheduled_train_frames() / trainer.world_size) / dm.batch_size)
        limit = trainer.limit_train_batches
        batches = min(batches, limit) if isinstance(limit, int) else int(batches * limit)
        return max(1, math.ceil(batches / trainer.accumulate_grad_batches)) * max(1, trainer.max_epochs)

    # -- evaluation -----------------------------------------------------------------------------------
    def saliency(self, batch: dict) -> torch.Tensor:
        """Saliency maps (B, H, W) in [0, 1] at the network size, before the CRF (which refines at frame
        size: `frame_map`)."""
        return torch.sigmoid(self(batch))[:, 0]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.val_metrics.update(self.saliency(batch), batch["mask"][:, 0])

    def on_validation_epoch_end(self) -> None:
        scores = self.val_metrics.compute()
        self.log_dict({f"val/{k}": float(scores[k]) for k in ("mae", "max_f", "s_measure")})
        self.val_metrics.reset()

    def on_test_epoch_start(self) -> None:
        """One metric per test set (`SaliencyDataModule.test_set_names`) beside the pooled `test_metrics`."""
        names = getattr(self.trainer.datamodule, "test_set_names", None)
        if not names:
            raise ValueError("test with a SaliencyDataModule that has test sources: its test sets name the scores")
        self.set_metrics = {name: SODMetrics(protocol=self.hparams.protocol).to(self.device) for name in names}
        self.test_metrics.reset()
        self.scorer = FrameScorer(self.crf_params, self.test_workers)
        self.sequence_rows: dict[tuple[str, str], list] = {}  # (set, sequence) -> [(frame index, score row)]
        self.panels = []  # a few (frame | ground truth | prediction) panels for the dashboards

    def test_step(self, batch: dict, batch_idx: int) -> None:
        """Each map is scored as `python -m scnn_lightning.evaluate` scores the PNG written here: at its frame's
        size, as 8-bit values, against the mask as read. `test_metrics` pools every set, keyed by set/sequence."""
        if "frame_full" not in batch or "dataset" not in batch:
            raise KeyError("test batches need `dataset`, `frame_full` and `mask_full` "
                           "(as SaliencyDataModule.test_dataloader gives them)")
        maps = self.saliency(batch).float().cpu().numpy()
        for i, (saved, row) in enumerate(self.scorer(maps, batch["frame_full"], batch["mask_full"])):
            frame, mask = batch["frame_full"][i], batch["mask_full"][i]
            name, seq, index = batch["dataset"][i], batch["sequence"][i], int(batch["index"][i])
            self.set_metrics[name].update(scores=row, sequence=seq, frame_index=index)
            self.test_metrics.update(scores=row, sequence=f"{name}/{seq}", frame_index=index)
            self.sequence_rows.setdefault((name, seq), []).append((index, row.cpu()))
            if self.predictions_dir is not None:
                write_png_map(self.predictions_dir / name / seq / f"{batch['name'][i]}.png", saved)
            if len(self.panels) < PANELS:
                self.panels.append(np.concatenate([frame, _gray3(mask * 255), _gray3(saved)], axis=1))

    def frame_map(self, saliency: np.ndarray, frame: np.ndarray) -> np.ndarray:
        """A network-size map brought to `frame`'s size (bilinear), refined there by the CRF when it is on,
        as the 8-bit values its PNG holds (`crf.frame_size_map`, which predict uses too)."""
        return frame_size_map(saliency, frame, self.crf_params)

    def on_test_epoch_end(self) -> None:
        """`test_scores`: every test frame pooled; `test_set_scores`: per test set (all ranks reduced)."""
        self.scorer.close()
        self.test_set_scores = {name: metric.compute() for name, metric in self.set_metrics.items()}
        self.test_sequence_scores = self._sequence_scores()
        self.test_scores = self.test_metrics.compute()
        logged = {f"test/{k}": float(v) for k, v in scalar_scores(self.test_scores).items()}
        for name, scores in self.test_set_scores.items():
            logged.update({f"test/{name}/{k}": float(v) for k, v in scalar_scores(scores).items()})
        self.log_dict(logged)
        for metric in (self.test_metrics, *self.set_metrics.values()):
            metric.reset()
        for logger in self.loggers:
            if isinstance(logger, WandbLogger):
                log_wandb_media(logger, self.test_scores, self.panels)

    def teardown(self, stage: str) -> None:
        if self.scorer is not None:  # a test phase stopped by an error still ends its worker processes
            self.scorer.close()

    def _sequence_scores(self) -> dict[str, list[dict]]:
        """{test set: [{sequence, frames, scores…}]}, as the evaluator's per_sequence.csv (rows of all ranks)."""
        gathered = [self.sequence_rows]
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, self.sequence_rows)
        merged: dict[tuple[str, str], list] = {}
        for part in gathered:
            for key, rows in part.items():
                merged.setdefault(key, []).extend(rows)
        out: dict[str, list[dict]] = {}
        for (name, seq), rows in sorted(merged.items()):
            out.setdefault(name, []).append({"sequence": seq, **sequence_scores(rows, self.hparams.protocol)})
        return out

    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        """`trainer.predict`: each frame's 8-bit map at its own size, CRF as trained: the PNG that the test
        step and `python -m scnn_lightning.predict` write for it."""
        maps = self.saliency(batch).float().cpu().numpy()
        return {"maps": [self.frame_map(m, f) for m, f in zip(maps, batch["frame_full"])],
                "dataset": batch["dataset"], "sequence": batch["sequence"], "name": batch["name"]}


class ImageStageModule(SaliencyModule):
    """Stage 1: the FCN fine-tuned on still images (MSRA10K in the paper)."""

    stage = "image"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.fcn = FCN(in_channels=3, **self.fcn_kwargs)

    def init_from_imagenet(self, path: str | Path) -> None:
        load_imagenet_vgg16(self.fcn.backbone, path)

    def forward(self, batch: dict) -> torch.Tensor:
        return self.fcn(batch["image"])


class VariantModule(SaliencyModule):
    """Stage 2: a cascade variant fine-tuned on video frames."""

    stage = "video"
    variant_code: ClassVar[str]

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.variant: Variant = get_variant(self.variant_code)
        self.model = Cascade(self.variant, **self.fcn_kwargs)

    def init_from_stage1(self, stage1: FCN) -> None:
        """Build the cascade from the image-stage FCN (FCN1 copied, FCN2 by Eq. 2, conv1_1 per `fcn2_init`)."""
        if stage1.backbone.fc6_name != self.hparams.fc6:  # same weight shapes, so nothing else would notice
            raise ValueError(f"the stage-1 FCN has fc6={stage1.backbone.fc6_name!r}, this cascade "
                             f"fc6={self.hparams.fc6!r}: both stages need the same fc6 layout")
        self.model = Cascade.from_stage1(self.variant, stage1, fcn2_init=self.hparams.fcn2_init, **self.fcn_kwargs)

    def forward(self, batch: dict) -> torch.Tensor:
        logits, _ = self.model(batch["image"], batch.get("pt"), batch.get("flow_gray"))
        return logits


def _gray3(m: np.ndarray) -> np.ndarray:
    """An (H, W) 8-bit map as an (H, W, 3) grey image."""
    return np.repeat(np.asarray(m, dtype=np.uint8)[..., None], 3, axis=2)


def _variant_class(code: str) -> type[VariantModule]:
    return type(f"{code}Module", (VariantModule,), {"variant_code": code, "__module__": __name__,
                                                    "__doc__": f"Variant {code}: {get_variant(code).summary}."})


SFCNModule = _variant_class("sFCN")
FGModule = _variant_class("FG")
FPModule = _variant_class("FP")
OSModule = _variant_class("OS")
OTModule = _variant_class("OT")
NAModule = _variant_class("NA")
SCNNModule = _variant_class("SCNN")

MODULES: dict[str, type[SaliencyModule]] = {
    "image": ImageStageModule,
    **{cls.variant_code: cls for cls in (SFCNModule, FGModule, FPModule, OSModule, OTModule, NAModule, SCNNModule)},
}


def create_module(name: str, **kwargs) -> SaliencyModule:
    if name not in MODULES:
        raise ValueError(f"unknown module {name!r}; valid: {', '.join(MODULES)}")
    return MODULES[name](**kwargs)
