"""`python -m experiments.run ablation=X`: the paper's whole training schedule for one variant.

Stage 1 trains the FCN on still images; the temporal prior's region classifier is trained on the
labelled video frames with the stage-1 backbone (when the variant uses the superpixel prior);
stage 2 builds the variant's cascade from the stage-1 FCN and fine-tunes it on video, with the weak
label refresh of Algorithm 1 unless the variant turns it off; the test set is then evaluated (with the
dense CRF unless `crf=null`). Everything goes under `hydra.run.dir`:
  stage1/checkpoints/last.ckpt, temporal/region_classifier.pt, weak_labels/round_*/,
  checkpoints/last.ckpt (the final model), predictions/<seq>/<frame>.png, metrics.json.
"""

from __future__ import annotations

import time
from pathlib import Path

import hydra
import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from omegaconf import DictConfig, OmegaConf

from experiments.compare import build_report
from scnn_lightning.data.datamodule import SaliencyDataModule, apply_label_budget, load_sequences
from scnn_lightning.data.records import DatasetIndex
from scnn_lightning.data.synthetic import ensure_clips
from scnn_lightning.models.variants import get_variant
from scnn_lightning.motion.classifier import train_region_classifier
from scnn_lightning.motion.provider import MotionProvider
from scnn_lightning.training.checkpoints import checkpoint_stage, load_fcn
from scnn_lightning.training.module import ImageStageModule, create_module
from scnn_lightning.utils import write_json


def build_loggers(cfg: DictConfig, out: Path, name: str) -> list:
    loggers = []
    if "csv" in cfg.logger:
        loggers.append(CSVLogger(save_dir=str(out), name=f"csv/{name}"))
    if "wandb" in cfg.logger:
        w = cfg.logger.wandb
        loggers.append(WandbLogger(project=w.project, save_dir=str(out), offline=w.offline, group=w.group,
                                   name=f"{cfg.variant}-{name}-seed{cfg.seed}", log_model=False,
                                   job_type=name, config=OmegaConf.to_container(cfg, resolve=True)))
    return loggers


def build_trainer(cfg: DictConfig, out: Path, name: str, ckpt_dir: Path, callbacks=()) -> L.Trainer:
    # Every epoch (top_k=0 would write last.ckpt only when fit ends), after WeakLabelRefresh has published
    # the next round at train epoch end (a save at validation end would record the finished epoch's round).
    checkpoint = ModelCheckpoint(dirpath=str(ckpt_dir), save_last=True, save_top_k=1, save_on_train_epoch_end=True)
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    return L.Trainer(**trainer_cfg, default_root_dir=str(out), logger=build_loggers(cfg, out, name),
                     callbacks=[checkpoint, *callbacks], reload_dataloaders_every_n_epochs=1)


def module_kwargs(cfg: DictConfig, out: Path, lr: float) -> dict:
    m = cfg.model
    return dict(width=m.width, fc_channels=m.fc_channels, upsample=m.upsample, dropout=m.dropout,
                optimizer=m.optimizer, lr=lr, momentum=m.momentum, weight_decay=m.weight_decay,
                crf=OmegaConf.to_container(cfg.crf, resolve=True) if cfg.crf else None,
                protocol=cfg.protocol, predictions_dir=str(out / "predictions"), size=list(cfg.data.size))


def _plain(x) -> list:
    return OmegaConf.to_container(x, resolve=True) if OmegaConf.is_config(x) else list(x or [])


def datamodule(cfg: DictConfig, *, train, val=(), test=(), motion=None) -> SaliencyDataModule:
    d = cfg.data
    return SaliencyDataModule(train=_plain(train), val=_plain(val), test=_plain(test), size=tuple(d.size),
                              batch_size=d.batch_size, num_workers=d.num_workers,
                              augment=OmegaConf.to_container(d.augment) if d.augment else None,
                              label_every=d.label_every, motion=motion, seed=cfg.seed)


def generate_data(cfg: DictConfig) -> None:
    for spec in (cfg.data.get("generate") or {}).values():
        if spec is not None:  # a data config can switch off a set it inherits
            ensure_clips(**OmegaConf.to_container(spec, resolve=True))


def run_stage1(cfg: DictConfig, out: Path, resume: str | None) -> Path:
    """Train the FCN on still images; returns its checkpoint."""
    module = ImageStageModule(**module_kwargs(cfg, out / "stage1", cfg.stage1.lr))
    if cfg.model.backbone.pretrained and resume is None:
        module.init_from_imagenet(cfg.model.backbone.pretrained)
    dm = datamodule(cfg, train=cfg.data.images)
    ckpt_dir = out / "stage1" / "checkpoints"
    trainer = build_trainer(cfg, out / "stage1", "stage1", ckpt_dir)
    trainer.fit(module, datamodule=dm, ckpt_path=resume)
    return ckpt_dir / "last.ckpt"


def build_motion(cfg: DictConfig, out: Path, stage1_ckpt: Path, needed: bool):
    """The temporal prior provider; trains the region classifier first when none is given."""
    if not needed:
        return None

    m = cfg.motion
    classifier = m.classifier
    if m.prior == "superpixel" and classifier is None:
        classifier = out / "temporal" / "region_classifier.pt"
        if not classifier.exists():  # trained on the same budgeted ground truth stage 2 sees
            sequences = [apply_label_budget(s, cfg.data.label_every)
                         for s in load_sequences(OmegaConf.to_container(cfg.data.videos, resolve=True))]
            train_region_classifier(DatasetIndex("videos", out, sequences), backbone=load_fcn(stage1_ckpt).backbone,
                                    out=classifier, flow=m.flow, epochs=m.classifier_epochs, seed=cfg.seed)
    return MotionProvider(flow=m.flow, prior=m.prior, classifier=classifier, cache_dir=m.cache_dir)


def run(cfg: DictConfig) -> dict:
    """Run the schedule described in the module docstring; returns the test metrics."""
    started = time.time()
    out = Path(cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True)
    variant = get_variant(cfg.variant)
    generate_data(cfg)

    resume_stage = checkpoint_stage(cfg.ckpt_path) if cfg.ckpt_path else None
    stage1_ckpt = Path(cfg.stage1.ckpt) if cfg.stage1.ckpt else None
    if stage1_ckpt is None and resume_stage != "video":
        stage1_ckpt = run_stage1(cfg, out, cfg.ckpt_path if resume_stage == "image" else None)
    elif stage1_ckpt is None:
        stage1_ckpt = out / "stage1" / "checkpoints" / "last.ckpt"
    motion = build_motion(cfg, out, stage1_ckpt, variant.needs_motion or cfg.stage1_only)
    if cfg.stage1_only:  # stage 1 and the region classifier, shared by the variants of a study seed
        done = {"stage1_checkpoint": str(stage1_ckpt), "train_seconds": round(time.time() - started, 1)}
        write_json(out / "stage1.json", done)
        return done
    module = create_module(variant.code, **module_kwargs(cfg, out, cfg.stage2.lr))
    if resume_stage != "video":
        module.init_from_stage1(load_fcn(stage1_ckpt))
    dm = datamodule(cfg, train=cfg.data.videos, val=cfg.data.val, test=cfg.data.test, motion=motion)
    callbacks = []
    if variant.weak_labels:
        from scnn_lightning.weak.callback import WeakLabelRefresh

        callbacks.append(WeakLabelRefresh(root=str(out / "weak_labels"),
                                          sources=OmegaConf.to_container(cfg.weak.sources, resolve=True)))
    trainer = build_trainer(cfg, out, "stage2", out / "checkpoints", callbacks)
    trainer.fit(module, datamodule=dm, ckpt_path=cfg.ckpt_path if resume_stage == "video" else None)
    trainer.test(module, datamodule=dm)

    scores = {k: float(v) for k, v in module.test_scores.items() if _is_scalar(v)}
    metrics = {"variant": variant.code, "tag": cfg.tag, "protocol": cfg.protocol, "crf": bool(cfg.crf), "seed": cfg.seed,
               **scores, "checkpoint": str(out / "checkpoints" / "last.ckpt"), "stage1_checkpoint": str(stage1_ckpt),
               "train_seconds": round(time.time() - started, 1)}
    if trainer.is_global_zero:
        write_json(out / "metrics.json", metrics)
        write_json(out / "pr_curve.json", {k: module.test_scores[k].tolist() for k in ("precision", "recall")})
        if cfg.report:
            write_run_report(cfg, out)
    return metrics


def write_run_report(cfg: DictConfig, out: Path) -> Path:
    """The comparison report of this one run, with its first test source for the qualitative grid."""
    test = OmegaConf.to_container(cfg.data.test, resolve=True)
    first = test[0] if test else None
    return build_report([out], out / "report", gt=first and first["root"], dataset=first and first["dataset"],
                        split=first and first.get("split"), frames=4)


def _is_scalar(v) -> bool:
    return isinstance(v, (int, float)) or (torch.is_tensor(v) and v.numel() == 1)


@hydra.main(version_base="1.3", config_path="configs", config_name="run")
def main(cfg: DictConfig) -> float | None:
    try:
        metrics = run(cfg)
    finally:
        if "wandb" in cfg.logger:  # close the run even on failure, or the next sweep job inherits it
            import wandb

            wandb.finish()
    return metrics.get("mae")  # the objective a Hydra sweeper would minimise


if __name__ == "__main__":
    main()
