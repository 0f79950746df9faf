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
from scnn_lightning.models.losses import WeakLoss, get_loss
from scnn_lightning.models.variants import Variant, get_variant
from scnn_lightning.models.vgg import DEFAULT_FC6, load_imagenet_vgg16
from scnn_lightning.training.schedules import SCHEDULES, build_scheduler
from scnn_lightning.metrics.functional import saved_map_scores
from scnn_lightning.training.test_scoring import FrameScorer
from scnn_lightning.training.wandb_media import PANELS, log_wandb_media
from scnn_lightning.utils import write_png_map

VAL_KEYS = ("mae", "max_f", "s_measure")
PRIOR_MAPS = ("ps", "pt", "p")  # the prior maps a run scores alone (those its variant has): Ps, Pt, P = Ps·Pt
VALIDATED_PRIORS = ("ps", "p")  # ... and those it scores every validation epoch (Pt does not train)
FCN1_MODES = ("train", "frozen", "supervised")


class SaliencyModule(L.LightningModule):
    """Loss, optimiser, evaluation and map writing shared by every stage and variant."""

    stage: ClassVar[str]

    def __init__(self, *, width: float = 1.0, fc_channels: int = 1024, upsample: str = "last2",
                 dropout: float = 0.5, optimizer: str = "sgd", lr: float = 1e-3, momentum: float = 0.9,
                 weight_decay: float = 0.005, crf: dict | None = None, protocol: str = "pysod",
                 predictions_dir: str | None = None, size: list[int] | None = None,
                 fc6: str = DEFAULT_FC6, fcn2_init: str = "copy", schedule: str = "constant", warmup_steps: int = 0,
                 weak_target: str = "binary", weak_ignore_band: float = 0.0, weak_weight: float = 1.0,
                 loss: str = "balanced"):
        # fc6, fcn2_init, the schedule, the weak-label loss and `loss` came later: their defaults are what
        # checkpoints written before them used.
        super().__init__()
        self.save_hyperparameters()  # `size` (the training input size) is kept for inference only
        if fcn2_init not in FCN2_INITS:  # checked here so a typo stops the run before stage 1, not after
            raise ValueError(f"fcn2_init must be one of {', '.join(FCN2_INITS)}, got {fcn2_init!r}")
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
        self.fcn_kwargs = dict(width=width, fc_channels=fc_channels, upsample=upsample, dropout=dropout, fc6=fc6)
        self.crf_params = CRFParams(**crf) if crf else None
        self.weak_loss = WeakLoss(weak_target, weak_ignore_band, weak_weight)
        self.loss_fn = get_loss(loss)
        self.val_metrics = SODMetrics(protocol="pysod")
        self.val_prior_metrics = torch.nn.ModuleDict()  # prior maps scored alone every validation (stage 2)
        self.test_metrics = SODMetrics(protocol=protocol)
        self.predictions_dir = Path(predictions_dir) if predictions_dir else None
        self.test_workers = 0  # processes that make the test maps (`FrameScorer`): a machine setting, not the model's
        self.scorer: FrameScorer | None = None

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["scnn"] = {"stage": self.stage, "variant": getattr(self, "variant_code", "image")}

    # -- subclasses implement ---------------------------------------------------------------------
    def outputs(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The logits (B, 1, H, W) and the prior maps behind them (`Cascade.priors`; none for stage 1)."""
        raise NotImplementedError

    def forward(self, batch: dict) -> torch.Tensor:  # logits (B, 1, H, W)
        return self.outputs(batch)[0]

    def extra_loss(self, maps: dict[str, torch.Tensor], label_loss) -> torch.Tensor | None:
        """A loss on the prior maps beside the one on the output (stage 2's `fcn1=supervised`); None: none."""
        return None

    # -- training -----------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        target, pixel_weight, image_weight = self.weak_loss.terms(batch["mask"], batch["label_kind"])

        def label_loss(logits: torch.Tensor) -> torch.Tensor:  # the stage's loss against this batch's labels
            return self.loss_fn(logits, target, batch["labelled"], pixel_weight=pixel_weight, image_weight=image_weight)

        logits, maps = self.outputs(batch)
        loss = label_loss(logits)
        size = len(batch["mask"])
        extra = self.extra_loss(maps, label_loss)
        if extra is not None:
            self.log("train/prior_loss", extra, batch_size=size)
            loss = loss + extra
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log("train/weak_fraction", (batch["label_kind"] == LABEL_WEAK).float().mean(), batch_size=size)
        return loss

    def configure_optimizers(self):
        """SGD with momentum and weight decay as in §IV-B; Adam (decoupled decay) for from-scratch CPU runs,
        where a plain 16-layer ReLU stack without ImageNet weights barely moves under SGD in a few epochs.
        With a schedule other than the paper's constant rate (or a warm-up), its scheduler steps every step."""
        hp = self.hparams
        groups = self.parameter_groups()
        if hp.optimizer == "sgd":
            optimizer = torch.optim.SGD(groups, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
        elif hp.optimizer == "adam":
            optimizer = torch.optim.AdamW(groups, lr=hp.lr, weight_decay=hp.weight_decay)
        else:
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {hp.optimizer!r}")
        if hp.schedule == "constant" and not hp.warmup_steps:
            return optimizer
        scheduler = build_scheduler(optimizer, hp.schedule, total_steps=self.scheduled_steps(),
                                    warmup_steps=hp.warmup_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def parameter_groups(self) -> list[dict]:
        """The optimizer's parameter groups: every trainable parameter at the stage's rate."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

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
        logits, maps = self.outputs(batch)
        self.val_metrics.update(torch.sigmoid(logits)[:, 0], batch["mask"][:, 0])
        for name in self.val_prior_metrics:
            self.val_prior_metrics[name].update(maps[name][:, 0], batch["mask"][:, 0])

    def on_validation_epoch_end(self) -> None:
        """`val/<score>` of the output and `val/<prior>_<score>` of each recorded prior map scored alone."""
        for prefix, metric in [("", self.val_metrics), *((f"{n}_", m) for n, m in self.val_prior_metrics.items())]:
            scores = metric.compute()
            self.log_dict({f"val/{prefix}{k}": float(scores[k]) for k in VAL_KEYS})
            metric.reset()

    def on_test_epoch_start(self) -> None:
        """One metric per test set (`SaliencyDataModule.test_set_names`) beside the pooled `test_metrics`."""
        names = getattr(self.trainer.datamodule, "test_set_names", None)
        if not names:
            raise ValueError("test with a SaliencyDataModule that has test sources: its test sets name the scores")
        self.set_metrics = {name: SODMetrics(protocol=self.hparams.protocol).to(self.device) for name in names}
        self.test_metrics.reset()
        self.test_prior_metrics = {name: SODMetrics(protocol="pysod").to(self.device) for name in self.prior_names()}
        self.scorer = FrameScorer(self.crf_params, self.test_workers)
        self.sequence_rows: dict[tuple[str, str], list] = {}  # (set, sequence) -> [(frame index, score row)]
        self.panels = []  # a few (frame | ground truth | prediction) panels for the dashboards

    def test_step(self, batch: dict, batch_idx: int) -> None:
        """Each map is scored as `python -m scnn_lightning.evaluate` scores the PNG written here: at its frame's
        size, as 8-bit values, against the mask as read. `test_metrics` pools every set, keyed by set/sequence."""
        if "frame_full" not in batch or "dataset" not in batch:
            raise KeyError("test batches need `dataset`, `frame_full` and `mask_full` "
                           "(as SaliencyDataModule.test_dataloader gives them)")
        logits, priors = self.outputs(batch)
        maps = torch.sigmoid(logits)[:, 0].float().cpu().numpy()
        self.score_priors(priors, batch)
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

    def prior_names(self) -> list[str]:
        """The prior maps of `PRIOR_MAPS` this module's variant has (none for stage 1)."""
        return []

    def score_priors(self, priors: dict[str, torch.Tensor], batch: dict) -> None:
        """Each prior map alone, scored as a saliency map without the CRF (frame size, 8-bit): a report of what
        the cascade sees, never used to choose anything."""
        for name, metric in self.test_prior_metrics.items():
            maps = priors[name][:, 0].float().cpu().numpy()
            for saliency, frame, mask in zip(maps, batch["frame_full"], batch["mask_full"]):
                metric.update(scores=saved_map_scores(frame_size_map(saliency, frame, None), mask))

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
        self.test_prior_scores = {name: scalar_scores(m.compute()) for name, m in self.test_prior_metrics.items()}
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

    def init_from_stage1(self, stage1: FCN) -> None:
        """Start from another stage-1 FCN (`stage1.init`: fine-tune a finished one on other data or another loss)."""
        if stage1.backbone.fc6_name != self.hparams.fc6:
            raise ValueError(f"stage1.init has fc6={stage1.backbone.fc6_name!r}, this run fc6={self.hparams.fc6!r}")
        self.fcn.load_state_dict(stage1.state_dict())

    def outputs(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.fcn(batch["image"]), {}


class VariantModule(SaliencyModule):
    """Stage 2: a cascade variant fine-tuned on video frames."""

    stage = "video"
    variant_code: ClassVar[str]

    def __init__(self, *, fcn1: str = "train", fcn1_lr_scale: float = 1.0, fcn1_loss_weight: float = 1.0, **kwargs):
        """`fcn1`: how stage 2 treats FCN1 (the spatial prior's network; variants without it ignore this) —
        `train` (the paper: it learns only through the prior it feeds FCN2, at `fcn1_lr_scale` × the stage's
        rate), `frozen` (it keeps stage 1's weights) or `supervised` (it also learns from the stage's loss on
        Ps against the same labels, weighted `fcn1_loss_weight`, so Ps stays a saliency map: without its own
        signal a map trained only through Ps·Pt can drift to a constant)."""
        super().__init__(**kwargs)
        if fcn1 not in FCN1_MODES:
            raise ValueError(f"stage2.fcn1 must be one of {', '.join(FCN1_MODES)}, got {fcn1!r}")
        if not fcn1_lr_scale >= 0.0 or not fcn1_loss_weight >= 0.0:
            raise ValueError(f"stage2.fcn1_lr_scale and stage2.fcn1_loss_weight must be >= 0, got "
                             f"{fcn1_lr_scale!r} and {fcn1_loss_weight!r}")
        self.variant: Variant = get_variant(self.variant_code)
        self.model = Cascade(self.variant, **self.fcn_kwargs)
        self.val_prior_metrics.update({name: SODMetrics(protocol="pysod")
                                       for name in VALIDATED_PRIORS if name in self.prior_names()})
        self.freeze_fcn1()

    def init_from_stage1(self, stage1: FCN) -> None:
        """Build the cascade from the image-stage FCN (FCN1 copied, FCN2 by Eq. 2, conv1_1 per `fcn2_init`)."""
        if stage1.backbone.fc6_name != self.hparams.fc6:  # same weight shapes, so nothing else would notice
            raise ValueError(f"the stage-1 FCN has fc6={stage1.backbone.fc6_name!r}, this cascade "
                             f"fc6={self.hparams.fc6!r}: both stages need the same fc6 layout")
        self.model = Cascade.from_stage1(self.variant, stage1, fcn2_init=self.hparams.fcn2_init, **self.fcn_kwargs)
        self.freeze_fcn1()

    def freeze_fcn1(self) -> None:
        """`fcn1=frozen`: no gradient reaches FCN1 (it has no dropout or normalisation that training would change)."""
        if self.model.fcn1 is not None and self.hparams.fcn1 == "frozen":
            self.model.fcn1.requires_grad_(False)

    def prior_names(self) -> list[str]:
        names = {"p", "pt"} if "p" in self.variant.priors else set(self.variant.priors)
        names |= {"ps"} if self.model.fcn1 is not None else set()
        return [name for name in PRIOR_MAPS if name in names]

    def outputs(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.model(batch["image"], batch.get("pt"), batch.get("flow_gray"))

    def extra_loss(self, maps: dict[str, torch.Tensor], label_loss) -> torch.Tensor | None:
        if self.hparams.fcn1 != "supervised" or "ps_logits" not in maps:
            return None
        return self.hparams.fcn1_loss_weight * label_loss(maps["ps_logits"])

    def parameter_groups(self) -> list[dict]:
        """FCN1 at `fcn1_lr_scale` × the rate (its own group, so every schedule scales it too), the rest at the
        rate; a frozen FCN1 is in no group."""
        fcn1 = self.model.fcn1
        if fcn1 is None or self.hparams.fcn1 == "frozen":
            return super().parameter_groups()
        own = {id(p) for p in fcn1.parameters()}
        rest = [p for p in self.parameters() if id(p) not in own and p.requires_grad]
        return [{"params": rest}, {"params": list(fcn1.parameters()), "lr": self.hparams.lr * self.hparams.fcn1_lr_scale}]


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
