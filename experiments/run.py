"""`python -m experiments.run ablation=X`: the paper's whole training schedule for one variant.

Stage 1 trains the FCN on still images; the temporal prior's region classifier is trained with the
stage-1 backbone on stage 2's labelled training frames (when the variant takes Pt from the superpixel
prior; rank 0 only under DDP);
stage 2 builds the variant's cascade from the stage-1 FCN and fine-tunes it on video, with the weak
label refresh of Algorithm 1 unless the variant turns it off; the test set is then evaluated (with the
dense CRF unless `crf=null`). Everything goes under `hydra.run.dir`:
  stage1/checkpoints/last.ckpt, temporal/region_classifier.pt, weak_labels/round_*/,
  checkpoints/last.ckpt (the final model), predictions/<test set>/<seq>/<frame>.png, metrics.json,
  per_sequence/<test set>.csv (the scores of each test sequence).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import hydra
import lightning as L
from lightning.pytorch.callbacks import EMAWeightAveraging, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from experiments.compare import build_report
from experiments.console import hide_known_noise
from experiments.resume import KILL_ENV, KillPoints, kill_point, resume_argv
from scnn_lightning.data.datamodule import SaliencyDataModule, SourceSpec, load_sequences
from scnn_lightning.data.synthetic import ensure_clips
from scnn_lightning.data.verify import verify_data
from scnn_lightning.errors import DataError, report_failure, writable_folder
from scnn_lightning.evaluate import SCALAR_KEYS
from scnn_lightning.models.variants import get_variant
from scnn_lightning.models.vgg import DEFAULT_FC6
from scnn_lightning.motion.classifier import index_of_entries, train_on_rank_zero, train_region_classifier
from scnn_lightning.motion.provider import MotionProvider
from scnn_lightning.training.checkpoints import (AtomicCheckpointIO, checkpoint_stage, checkpoint_variant, load_fcn,
                                                 read_checkpoint)
from scnn_lightning.metrics.sod import scalar_scores
from scnn_lightning.record_paths import record_path
from scnn_lightning.training.module import ImageStageModule, create_module
from scnn_lightning.training.records import ValidationCurve, environment, read_curve
from scnn_lightning.utils import atomic_path, write_json

log = logging.getLogger("experiments.run")  # not __name__: that is "__main__" under `python -m`
log.addFilter(lambda record: rank_zero_only.rank == 0)  # DDP: one copy of each line, from rank 0
DATA_SPLITS = ("images", "videos", "val", "test")
BEST_MONITOR = "val/s_measure"  # what test_ckpt=best maximises, on the held-out *train* sequences
TEST_CKPTS = ("last", "best")


def build_loggers(cfg: DictConfig, out: Path, name: str) -> list:
    """The loggers of stage `name`. W&B: the stage's own run, `<tag>-<stage>-seed<N>` of job type `<stage>` in the
    ablation's group, opened on rank 0 at its first log and ended by `finishing_loggers`."""
    loggers = []
    if "csv" in cfg.logger:
        loggers.append(CSVLogger(save_dir=str(out), name=f"csv/{name}"))
    if "wandb" in cfg.logger:
        w = cfg.logger.wandb
        loggers.append(WandbLogger(project=w.project, save_dir=str(out), offline=w.offline, group=w.group,
                                   name=f"{cfg.tag}-{name}-seed{cfg.seed}", log_model=False, job_type=name,
                                   config={**OmegaConf.to_container(cfg, resolve=True), "stage": name}))
    return loggers


@contextmanager
def finishing_loggers(trainer: L.Trainer) -> Iterator[None]:
    """End the stage's W&B run when the block ends, failed (exit code 1) or not: Lightning would hand a run still
    open to the next stage's logger (or to the next job of a Hydra sweep), which would then log into it."""
    failed = True
    try:
        yield
        failed = False
    finally:
        if any(isinstance(logger, WandbLogger) for logger in trainer.loggers):
            import wandb

            if wandb.run is not None:  # only rank 0 ever opens one
                wandb.finish(exit_code=int(failed))


def build_trainer(cfg: DictConfig, out: Path, name: str, ckpt_dir: Path, callbacks=(), stage: DictConfig | None = None,
                  keep_best: bool = False) -> L.Trainer:
    """The trainer of one stage. `stage` (cfg.stage1 or cfg.stage2) adds that stage's own epochs, weight averaging
    (EMA of the parameters, Lightning's callback) and validation curve; `keep_best` also keeps best.ckpt, the
    epoch with the best validation S."""
    # One file, ckpt_dir/last.ckpt, replaced atomically every epoch: the single top-1 checkpoint is named
    # "last" (save_last would store the same weights a second time, top_k=0 would save only when fit ends).
    # Saved at train epoch end, after WeakLabelRefresh has published the next round (a save at validation
    # end would record the finished epoch's round).
    checkpoint = ModelCheckpoint(dirpath=str(ckpt_dir), filename="last", save_top_k=1, enable_version_counter=False,
                                 save_on_train_epoch_end=True)
    recipe = [ValidationCurve(out / "val_curve.csv")]
    if keep_best:  # a full checkpoint: with weights_only Lightning skips the EMA callback's hook, so it would
        # hold the raw weights rather than the averaged ones that were validated
        recipe.append(ModelCheckpoint(dirpath=str(ckpt_dir), filename="best", monitor=BEST_MONITOR, mode="max",
                                      save_top_k=1, enable_version_counter=False))
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    if stage is not None and stage.get("ema_decay"):
        # The averaged weights are the ones validated, saved in state_dict (the raw ones beside them) and tested.
        recipe.append(EMAWeightAveraging(decay=float(stage.ema_decay)))
    if stage is not None and stage.get("max_epochs"):
        trainer_cfg["max_epochs"] = int(stage.max_epochs)
    test_hooks = [KillPoints(name)] if os.environ.get(KILL_ENV) else []
    return L.Trainer(**trainer_cfg, default_root_dir=str(out), logger=build_loggers(cfg, out, name),
                     callbacks=[checkpoint, *recipe, *callbacks, *test_hooks], plugins=[AtomicCheckpointIO()],
                     reload_dataloaders_every_n_epochs=1)


def module_kwargs(cfg: DictConfig, out: Path, stage: DictConfig) -> dict:
    """A stage's LightningModule arguments from its config (cfg.stage1 or cfg.stage2); the stage's weight decay
    falls back to model.weight_decay.

    Keys added after the first release are read with their old behaviour as default, so the saved
    config of an older run still resumes.
    """
    m = cfg.model
    lr, weight_decay = stage.lr, stage.get("weight_decay")
    return dict(schedule=stage.get("schedule", "constant"), warmup_steps=int(stage.get("warmup_steps", 0)),
                loss=stage.get("loss", "balanced"),
                width=m.width, fc_channels=m.fc_channels, upsample=m.upsample, dropout=m.dropout,
                fc6=m.get("fc6", DEFAULT_FC6), fcn2_init=m.get("fcn2_init", "copy"), optimizer=m.optimizer, lr=lr,
                momentum=m.momentum, weight_decay=m.weight_decay if weight_decay is None else weight_decay,
                crf=OmegaConf.to_container(cfg.crf, resolve=True) if cfg.crf else None,
                protocol=cfg.protocol, predictions_dir=str(out / "predictions"), size=list(cfg.data.size))


def weak_loss_kwargs(cfg: DictConfig) -> dict:
    """How stage 2's loss uses weak labels (`weak.target`, `weak.ignore_band`, `weak.weight`; read with the
    paper's behaviour as default, so older saved configs still resume)."""
    w = cfg.weak
    return dict(weak_target=w.get("target", "binary"), weak_ignore_band=float(w.get("ignore_band", 0.0)),
                weak_weight=float(w.get("weight", 1.0)))


def fcn1_kwargs(cfg: DictConfig) -> dict:
    """How stage 2 treats FCN1 (`stage2.fcn1`, `fcn1_lr_scale`, `fcn1_loss_weight`; the paper's `train` at the
    stage's rate when absent, so older saved configs still resume)."""
    s = cfg.stage2
    return dict(fcn1=s.get("fcn1", "train"), fcn1_lr_scale=float(s.get("fcn1_lr_scale", 1.0)),
                fcn1_loss_weight=float(s.get("fcn1_loss_weight", 1.0)))


def _plain(x) -> list:
    return OmegaConf.to_container(x, resolve=True) if OmegaConf.is_config(x) else list(x or [])


def datamodule(cfg: DictConfig, *, train, val=(), test=(), motion=None, stage2: bool = False) -> SaliencyDataModule:
    """Without `val` sources, the videos named in `data.val_sequences` (else `data.val_fraction` of the videos, by
    a hash of the seed) and `data.val_fraction` of the still images are held out (0: no validation at all).
    Stage 2 (`stage2`) mixes `data.image_mix` still images of `data.images` per video frame into each epoch;
    stage 1 and the region classifier mix nothing. Each epoch draws `weak.frames_per_epoch` of
    the weak-labelled frames. Both keys are read with their old behaviour as default, so old configs still load."""
    d = cfg.data
    image_mix = d.get("image_mix", 0.0) if stage2 else 0.0
    return SaliencyDataModule(train=_plain(train), val=_plain(val), test=_plain(test), size=tuple(d.size),
                              batch_size=d.batch_size, num_workers=d.num_workers,
                              augment=OmegaConf.to_container(d.augment) if d.augment else None,
                              label_every=d.label_every, val_fraction=d.get("val_fraction", 0.2), motion=motion,
                              seed=cfg.seed, val_sequences=_plain(d.get("val_sequences")) or None,
                              mix_images=_plain(d.get("images")) if image_mix else (), image_mix=image_mix,
                              weak_share=cfg.weak.get("frames_per_epoch", 1.0))


def generate_data(cfg: DictConfig) -> None:
    for spec in (cfg.data.get("generate") or {}).values():
        if spec is not None:  # a data config can switch off a set it inherits
            ensure_clips(**OmegaConf.to_container(spec, resolve=True))


def run_stage1(cfg: DictConfig, out: Path, resume: str | None) -> Path:
    """Train the FCN on still images; returns its checkpoint."""
    module = ImageStageModule(**module_kwargs(cfg, out / "stage1", cfg.stage1))
    if cfg.model.backbone.pretrained and resume is None:
        module.init_from_imagenet(cfg.model.backbone.pretrained)
    if cfg.stage1.get("init") and resume is None:
        module.init_from_stage1(load_fcn(cfg.stage1.init))
    dm = datamodule(cfg, train=cfg.data.images)
    ckpt_dir = out / "stage1" / "checkpoints"
    trainer = build_trainer(cfg, out / "stage1", "stage1", ckpt_dir, stage=cfg.stage1)
    with finishing_loggers(trainer):
        trainer.fit(module, datamodule=dm, ckpt_path=resume)
    return ckpt_dir / "last.ckpt"


def build_motion(cfg: DictConfig, out: Path, stage1_ckpt: Path, needed: bool):
    """The motion provider of stage 2. The region classifier of Pt is trained first (once, by rank 0)
    when the variant takes Pt (or a study's shared stage 1 asks for it) and none is given."""
    if not needed:
        return None
    m = cfg.motion
    if not (cfg.stage1_only or get_variant(cfg.variant).needs_temporal_prior):
        # FG takes only the grey flow image: nothing to train; the cheap magnitude prior fills the unused `pt`
        return MotionProvider(flow=m.flow, prior="magnitude", cache_dir=m.cache_dir)
    classifier = m.classifier
    if m.prior == "superpixel" and classifier is None:
        classifier = train_on_rank_zero(out / "temporal" / "region_classifier.pt",
                                        lambda path: train_classifier_on_training_frames(cfg, stage1_ckpt, path))
    return MotionProvider(flow=m.flow, prior=m.prior, classifier=classifier, cache_dir=m.cache_dir)


def train_classifier_on_training_frames(cfg: DictConfig, stage1_ckpt: Path, path: Path) -> None:
    """Train the region classifier on the frames stage 2 trains on with ground truth: its datamodule's
    train split (after the validation hold-out) within the label budget; never validation or test frames."""
    dm = datamodule(cfg, train=cfg.data.videos, val=cfg.data.val)
    dm.setup("fit")
    roots = ", ".join(str(source["root"]) for source in _plain(cfg.data.videos))
    train_region_classifier(index_of_entries(dm.labelled_train_entries(), roots),
                            backbone=load_fcn(stage1_ckpt).backbone, out=path, flow=cfg.motion.flow,
                            epochs=cfg.motion.classifier_epochs, seed=cfg.seed)


def run_tested(run_dir: Path) -> str:
    """Which checkpoint a finished run tested ('last' or 'best'), from its metrics.json."""
    path = run_dir / "metrics.json"
    if not path.is_file():
        raise DataError(path, "missing: stage2.ckpt=RUN/checkpoints names a finished run's tested weights")
    tested = json.loads(path.read_text()).get("tested", {}).get("checkpoint")
    return "best" if tested == "best" else "last"  # runs from before `tested`, or that tested given weights


def tested_checkpoint(cfg: DictConfig, code: str) -> Path | None:
    """`stage2.ckpt`: a finished stage-2 model of this variant to test instead of training one (the study's
    SCNN-noCRF re-scores the weights its seed's SCNN tested with `crf=null`; a run's `checkpoints` folder stands
    for those); None when stage 2 is to be trained."""
    if not cfg.stage2.get("ckpt"):
        return None
    path = Path(cfg.stage2.ckpt)
    if path.is_dir():  # a run's checkpoints folder: the weights that run tested (last or best)
        path = path / f"{run_tested(path.parent)}.ckpt"
    held = checkpoint_variant(path)
    if held != code:
        raise DataError(path, f"holds a {held} model, but this run's variant is {code} (ablation={held}?)")
    return path


def check_paths(cfg: DictConfig, code: str) -> None:
    """Stop before any work when the run folder cannot be written, or a checkpoint the run is given cannot be
    read (or, for stage2.ckpt, holds another variant): one line naming the path beats a failure an hour in."""
    writable_folder(cfg.paths.output_dir)
    for key in ("ckpt_path", "stage1.ckpt"):
        if OmegaConf.select(cfg, key):
            checkpoint_stage(OmegaConf.select(cfg, key))
    tested_checkpoint(cfg, code)


def run(cfg: DictConfig) -> dict:
    """Run the schedule described in the module docstring; returns the test metrics."""
    started = time.time()
    out = Path(cfg.paths.output_dir)
    variant = get_variant(cfg.variant)
    check_paths(cfg, variant.code)
    L.seed_everything(cfg.seed, workers=True)
    test_ckpt = cfg.get("test_ckpt", "last")
    if test_ckpt not in TEST_CKPTS:
        raise ValueError(f"test_ckpt must be one of {', '.join(TEST_CKPTS)}, got {test_ckpt!r}")
    generate_data(cfg)
    verify_data(cfg.data, cfg.paths.cache_dir)  # every frame and mask, all problems at once
    log_data_summary(cfg)

    resume_stage = checkpoint_stage(cfg.ckpt_path) if cfg.ckpt_path else None
    if resume_stage:
        log.info("resuming %s from %s", "stage 1" if resume_stage == "image" else "stage 2", cfg.ckpt_path)
    stage1_ckpt = Path(cfg.stage1.ckpt) if cfg.stage1.ckpt else None
    if stage1_ckpt is None and resume_stage != "video":
        log.info("stage 1: the FCN on still images, checkpoint %s", out / "stage1" / "checkpoints" / "last.ckpt")
        stage1_ckpt = run_stage1(cfg, out, cfg.ckpt_path if resume_stage == "image" else None)
        log.info("stage 1 finished: %s", stage1_ckpt)
    elif stage1_ckpt is None:
        stage1_ckpt = out / "stage1" / "checkpoints" / "last.ckpt"
    else:
        log.info("stage 1: the given checkpoint %s", stage1_ckpt)
    kill_point("classifier")  # test hook (experiments/resume.py): stage 1 done, region classifier not yet
    motion = build_motion(cfg, out, stage1_ckpt, variant.needs_motion or cfg.stage1_only)
    if (out / "temporal" / "region_classifier.pt").is_file():
        log.info("region classifier: %s", out / "temporal" / "region_classifier.pt")
    if cfg.stage1_only:  # stage 1 and the region classifier, shared by the variants of a study seed
        done = {"stage1_checkpoint": record_path(stage1_ckpt), "train_seconds": round(time.time() - started, 1),
                "environment": environment()}
        write_json(out / "stage1.json", done)
        return done
    trained = tested_checkpoint(cfg, variant.code)
    module = create_module(variant.code, **module_kwargs(cfg, out, cfg.stage2), **weak_loss_kwargs(cfg),
                           **fcn1_kwargs(cfg))
    if resume_stage != "video" and trained is None:
        module.init_from_stage1(load_fcn(stage1_ckpt))
    dm = datamodule(cfg, train=cfg.data.videos, val=cfg.data.val, test=cfg.data.test, motion=motion, stage2=True)
    callbacks = []
    if variant.weak_labels and trained is None:
        from scnn_lightning.weak.callback import WeakLabelRefresh

        w = cfg.weak
        callbacks.append(WeakLabelRefresh(root=str(out / "weak_labels"),
                                          sources=OmegaConf.to_container(w.sources, resolve=True),
                                          holdout_fraction=w.holdout_fraction, every_n_epochs=w.every_n_epochs,
                                          seed=cfg.seed, cache_dir=w.cache_dir, network=w.get("network", "current"),
                                          propagated_weight=w.get("propagated_weight", "fit")))
    keep_best = test_ckpt == "best" and trained is None
    trainer = build_trainer(cfg, out, "stage2", out / "checkpoints", callbacks, stage=cfg.stage2, keep_best=keep_best)
    with finishing_loggers(trainer):  # the test scores and media belong to the stage-2 run
        if trained is None:
            log.info("stage 2: the %s cascade on video, checkpoint %s%s", variant.code,
                     out / "checkpoints" / "last.ckpt",
                     f", weak labels {out / 'weak_labels'}/round_NNN" if variant.weak_labels else "")
            trainer.fit(module, datamodule=dm, ckpt_path=cfg.ckpt_path if resume_stage == "video" else None)
            log.info("stage 2 finished: %s", out / "checkpoints" / "last.ckpt")
        else:
            log.info("stage 2: not trained; testing the given %s checkpoint %s", variant.code, trained)
        log.info("test: predictions %s", out / "predictions")
        tested = {"checkpoint": "given"} if trained else {"checkpoint": "last"}
        if keep_best:
            tested = load_best(module, out)
            log.info("test: the best validation epoch (%s), %s", tested["epoch"], out / "checkpoints" / "best.ckpt")
        module.test_workers = cfg.get("test_workers", 0)
        trainer.test(module, datamodule=dm, ckpt_path=str(trained) if trained else None)

    # Top level: every test frame pooled (the protocol's average over all sets); `datasets`: each test set alone.
    metrics = {"variant": variant.code, "tag": cfg.tag, "protocol": cfg.protocol, "crf": bool(cfg.crf), "seed": cfg.seed,
               **scalar_scores(module.test_scores),
               "datasets": {name: scalar_scores(s) for name, s in module.test_set_scores.items()},
               # each prior map alone, no CRF, every test frame pooled: a report of what the cascade sees
               "priors": module.test_prior_scores,
               "checkpoint": record_path(trained or out / "checkpoints" / f"{tested['checkpoint']}.ckpt"),
               "tested": tested, "stage1_checkpoint": record_path(stage1_ckpt),
               "train_seconds": round(time.time() - started, 1), "environment": environment()}
    if trainer.is_global_zero:
        write_json(out / "metrics.json", metrics)
        write_sequence_scores(out / "per_sequence", module.test_sequence_scores)
        write_json(out / "pr_curve.json", {**_pr(module.test_scores),
                                           "datasets": {n: _pr(s) for n, s in module.test_set_scores.items()}})
        if cfg.report:
            write_run_report(cfg, out)
    return metrics


def load_best(module, out: Path) -> dict:
    """Put the weights of checkpoints/best.ckpt (the averaged ones under EMA, as validated) into `module`;
    returns which epoch they are, from the stage's validation curve. Loaded here rather than by
    `trainer.test(ckpt_path=)`, where the EMA callback would restore the raw weights instead."""
    path = out / "checkpoints" / "best.ckpt"
    if not path.is_file():
        raise DataError(path, "missing: test_ckpt=best needs a validation set (data.val_sequences or val_fraction)")
    module.load_state_dict(read_checkpoint(path)["state_dict"])
    curve = read_curve(out / "val_curve.csv")
    best = max(curve, key=lambda row: row["s_measure"])  # ModelCheckpoint keeps the first of equal scores too
    return {"checkpoint": "best", "epoch": best["epoch"], "val_s_measure": best["s_measure"],
            "last_epoch": curve[-1]["epoch"], "last_val_s_measure": curve[-1]["s_measure"]}


def write_sequence_scores(folder: Path, by_set: dict[str, list[dict]]) -> None:
    """`per_sequence/<test set>.csv`: each sequence's scores, in the columns `scnn_lightning.evaluate` writes."""
    for name, rows in by_set.items():
        with atomic_path(folder / f"{name}.csv") as tmp, tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["sequence", "frames", *SCALAR_KEYS], restval="")
            writer.writeheader()
            writer.writerows(rows)


def _pr(scores: dict) -> dict:
    return {k: scores[k].tolist() for k in ("precision", "recall")}


def write_run_report(cfg: DictConfig, out: Path) -> Path:
    """The comparison report of this one run, with its first test source for the qualitative grid."""
    test = OmegaConf.to_container(cfg.data.test, resolve=True)
    first = test[0] if test else None
    return build_report([out], out / "report", gt=first and first["root"], dataset=first and first["dataset"],
                        split=first and first.get("split"), frames=4)


def log_data_summary(cfg: DictConfig) -> None:
    """One line per data split: its sequences, frames and frames with ground truth, and its sources."""
    if rank_zero_only.rank != 0:
        return
    for split in DATA_SPLITS:
        specs = [SourceSpec.parse(spec) for spec in _plain(cfg.data.get(split))]
        if not specs:
            named = _plain(cfg.data.get("val_sequences"))
            held_out = "" if split != "val" else (f"; the training sequences {', '.join(named)} are held out" if named
                                                  else f"; {cfg.data.get('val_fraction', 0.2)} of the videos are held out")
            log.info("data %s: none listed%s", split, held_out)
            continue
        sequences = load_sequences(specs)  # as training reads them: label budgets and teacher maps applied
        frames = [frame for seq in sequences for frame in seq.frames]
        sources = "; ".join(f"{spec.dataset} {spec.root}" + (f" [{spec.split}]" if spec.split else "")
                            for spec in specs)
        taught = sum(f.teacher is not None for f in frames)
        log.info("data %s: %d sequences, %d frames, %d labelled%s (%s)", split, len(sequences), len(frames),
                 sum(f.labelled for f in frames), f", {taught} with a teacher's map" if taught else "", sources)


def log_outputs(cfg: DictConfig, metrics: dict) -> None:
    """The final scores and where the outputs are; the last line names metrics.json and the report."""
    out = Path(cfg.paths.output_dir)
    if cfg.stage1_only:
        log.info("done: stage 1 %s (summary %s)", metrics["stage1_checkpoint"], out / "stage1.json")
        return
    log.info("test scores (all test frames): %s", _scores_text(metrics))
    for name, scores in (metrics.get("datasets") or {}).items():
        log.info("test scores %s: %s", name, _scores_text(scores))
    weak = f", weak labels {out / 'weak_labels'}" if (out / "weak_labels").is_dir() else ""
    log.info("outputs: checkpoint %s, predictions %s%s, PR curve %s", metrics["checkpoint"], out / "predictions",
             weak, out / "pr_curve.json")
    report = out / "report" / "report.md"
    log.info("done: metrics %s, %s", out / "metrics.json",
             f"report {report}" if report.is_file() else "no report (report=false)")


def _scores_text(scores: dict) -> str:
    return ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in scores.items()
                     if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("seed", "train_seconds"))


@hydra.main(version_base="1.3", config_path="configs", config_name="run")
def app(cfg: DictConfig) -> float | None:
    """The Hydra task: the schedule of `run`, then the final scores and where the outputs went."""
    hide_known_noise()
    log.info("run directory: %s", cfg.paths.output_dir)
    try:
        metrics = run(cfg)
    except DataError as exc:  # bad input: the message names every file; a traceback would bury it
        sys.exit(report_failure(exc, prefix="experiments.run"))
    finally:
        if "wandb" in cfg.logger:  # close the run even on failure, or the next sweep job inherits it
            import wandb

            wandb.finish()
    log_outputs(cfg, metrics)
    return metrics.get("mae")  # the objective a Hydra sweeper would minimise


def main() -> None:
    """`python -m experiments.run [overrides]`. With `ckpt_path=RUN/.../last.ckpt` the command resumes that run, in
    its own directory and with its own configuration (experiments/resume.py), before Hydra sets anything up."""
    try:
        sys.argv[1:] = resume_argv(sys.argv[1:])
    except DataError as exc:
        sys.exit(report_failure(exc, prefix="experiments.run"))
    app()


if __name__ == "__main__":
    main()
