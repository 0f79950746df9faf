"""LightningModules for both training stages (paper §IV-B).

`ImageStageModule` trains the single FCN on still images (stage 1). Each variant of §IV-D has its own
subclass of `VariantModule` (stage 2); the only thing a subclass states is its variant code — what
differs between variants is the table in `models/variants.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger

from scnn_lightning.crf import CRFParams, refine
from scnn_lightning.data.transforms import to_uint8_image
from scnn_lightning.metrics.sod import SODMetrics
from scnn_lightning.models.cascade import Cascade
from scnn_lightning.models.fcn import FCN
from scnn_lightning.models.losses import balanced_bce
from scnn_lightning.models.variants import Variant, get_variant
from scnn_lightning.models.vgg import load_imagenet_vgg16
from scnn_lightning.training.wandb_media import PANELS, log_wandb_media
from scnn_lightning.utils import write_png_map


class SaliencyModule(L.LightningModule):
    """Loss, optimiser, evaluation and map writing shared by every stage and variant."""

    stage: ClassVar[str]

    def __init__(self, *, width: float = 1.0, fc_channels: int = 1024, upsample: str = "last2",
                 dropout: float = 0.5, optimizer: str = "sgd", lr: float = 1e-3, momentum: float = 0.9,
                 weight_decay: float = 0.005, crf: dict | None = None, protocol: str = "pysod",
                 predictions_dir: str | None = None, size: list[int] | None = None):
        super().__init__()
        self.save_hyperparameters()  # `size` (the training input size) is kept for inference only
        self.fcn_kwargs = dict(width=width, fc_channels=fc_channels, upsample=upsample, dropout=dropout)
        self.crf_params = CRFParams(**crf) if crf else None
        self.val_metrics = SODMetrics(protocol="pysod")
        self.test_metrics = SODMetrics(protocol=protocol)
        self.predictions_dir = Path(predictions_dir) if predictions_dir else None

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["scnn"] = {"stage": self.stage, "variant": getattr(self, "variant_code", "image")}

    # -- subclasses implement ---------------------------------------------------------------------
    def forward(self, batch: dict) -> torch.Tensor:  # logits (B, 1, H, W)
        raise NotImplementedError

    # -- training -----------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = balanced_bce(self(batch), batch["mask"], batch["labelled"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["mask"]))
        self.log("train/weak_fraction", (batch["label_kind"] == 2).float().mean(), batch_size=len(batch["mask"]))
        return loss

    def configure_optimizers(self):
        """SGD with momentum and weight decay as in §IV-B; Adam (decoupled decay) for from-scratch CPU runs,
        where a plain 16-layer ReLU stack without ImageNet weights barely moves under SGD in a few epochs."""
        hp = self.hparams
        if hp.optimizer == "sgd":
            return torch.optim.SGD(self.parameters(), lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
        if hp.optimizer == "adam":
            return torch.optim.AdamW(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {hp.optimizer!r}")

    # -- evaluation -----------------------------------------------------------------------------------
    def saliency(self, batch: dict, *, crf: bool = False) -> torch.Tensor:
        """Saliency maps (B, H, W) in [0, 1]; optionally refined by the dense CRF (Eq. 9–10)."""
        maps = torch.sigmoid(self(batch))[:, 0]
        if crf and self.crf_params is not None:
            refined = [refine(to_uint8_image(img), m.detach().cpu().numpy(), self.crf_params)
                       for img, m in zip(batch["image"], maps)]
            maps = torch.from_numpy(np.stack(refined)).to(maps)
        return maps

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.val_metrics.update(self.saliency(batch), batch["mask"][:, 0])

    def on_validation_epoch_end(self) -> None:
        scores = self.val_metrics.compute()
        self.log_dict({f"val/{k}": float(scores[k]) for k in ("mae", "max_f", "s_measure")})
        self.val_metrics.reset()

    def test_step(self, batch: dict, batch_idx: int) -> None:
        maps = self.saliency(batch, crf=True)
        self.test_metrics.update(maps, batch["mask"][:, 0], batch["sequence"], batch["index"])
        if batch_idx == 0:  # a few panels (frame | ground truth | prediction) for the dashboards
            self.panels = [np.concatenate([to_uint8_image(img), _gray3(gt[0]), _gray3(m)], axis=1)
                           for img, gt, m in list(zip(batch["image"], batch["mask"], maps))[:PANELS]]
        if self.predictions_dir is not None:
            for m, seq, name, size in zip(maps, batch["sequence"], batch["name"], batch["orig_size"]):
                write_png_map(self.predictions_dir / seq / f"{name}.png", m.cpu().numpy(), tuple(size.tolist()))

    def on_test_epoch_end(self) -> None:
        self.test_scores = self.test_metrics.compute()
        self.log_dict({f"test/{k}": float(v) for k, v in self.test_scores.items()
                       if isinstance(v, (float, int)) or (torch.is_tensor(v) and v.numel() == 1)})
        self.test_metrics.reset()
        for logger in self.loggers:
            if isinstance(logger, WandbLogger):
                log_wandb_media(logger, self.test_scores, getattr(self, "panels", []))

    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        return {"maps": self.saliency(batch, crf=True), "sequence": batch["sequence"], "name": batch["name"]}


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
        """Build the cascade from the image-stage FCN (FCN1 copied, FCN2 by Eq. 2)."""
        self.model = Cascade.from_stage1(self.variant, stage1, **self.fcn_kwargs)

    def forward(self, batch: dict) -> torch.Tensor:
        logits, _ = self.model(batch["image"], batch.get("pt"), batch.get("flow_gray"))
        return logits


def _gray3(m: torch.Tensor) -> np.ndarray:
    return np.repeat((m.detach().float().cpu().clamp(0, 1).numpy() * 255).round().astype(np.uint8)[..., None], 3, axis=2)


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
