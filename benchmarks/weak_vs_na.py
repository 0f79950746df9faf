"""Weak labels vs none under a label budget (paper §IV-D, Fig. 7c): SCNN against NA on synthetic clips.

    python -m benchmarks.weak_vs_na --seeds 0 1 2 --epochs 8 --matched-steps \
        --out benchmarks/results/weak_vs_na.json --work /tmp/weak_vs_na

Both variants are the same full cascade, built from the same randomly initialised stage-1 FCN (one per
seed) and trained with the same seed, data, label budget and number of epochs; only SCNN runs the
weak-label loop of Algorithm 1 (`WeakLabelRefresh`), so it also trains on the frames without a kept
ground truth. NA therefore takes fewer optimiser steps per epoch; the JSON records the steps of each.

The training clips have ground truth on every frame, but only every `--label-every`-th one is used for
training (the budget); the rest is kept hidden and used only to report how good each weak-label round
is (`iou_hidden_gt`). Of the kept ground truth, SCNN holds `--holdout-fraction` of each sequence out of
its loss to fit Eq. 8 on (README, Weak labels); NA trains on all of it. `weak_rounds` lists each round's
weights, held-out label quality and share of changed label pixels. With `--matched-steps` a third
model, NA_steps, is NA trained for as many optimiser steps as SCNN took (more epochs over its few
frames): it separates the effect of the weak labels from that of the extra steps. The test clips are
generated from other seeds. Test scores (MAE, max-F, S-measure; PySODMetrics protocol, no CRF) are per
seed, with the mean over seeds.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch

from scnn_lightning.data.datamodule import SaliencyDataModule
from scnn_lightning.data.io import read_mask
from scnn_lightning.data.synthetic import generate_clips
from scnn_lightning.metrics.sod import SODMetrics
from scnn_lightning.models.fcn import FCN
from scnn_lightning.motion.provider import MotionProvider
from scnn_lightning.training.module import NAModule, SCNNModule
from scnn_lightning.utils import write_json
from scnn_lightning.weak.callback import WeakLabelRefresh
from scnn_lightning.weak.store import WeakLabelStore

SCORES = ("mae", "max_f", "s_measure")
TRAIN_SEED, TEST_SEED = 100, 1000  # generator seeds: test clips never share a scene with training clips


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--out", type=Path, required=True, help="JSON file for the results")
    p.add_argument("--work", type=Path, default=None,
                   help="folder for the clips, motion cache and weak labels (default: --out without its suffix)")
    p.add_argument("--train-sequences", type=int, default=8)
    p.add_argument("--test-sequences", type=int, default=3)
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--height", type=int, default=64)
    p.add_argument("--width", type=int, default=96)
    p.add_argument("--label-every", type=int, default=10, help="label budget: keep every k-th ground truth")
    p.add_argument("--model-width", type=float, default=0.125, help="channel multiplier of the VGG16 FCNs")
    p.add_argument("--fc-channels", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--sources", nargs="+", default=["ft", "mbd", "rbd"])
    p.add_argument("--holdout-fraction", type=float, default=0.25,
                   help="share of each sequence's kept ground truth held out of SCNN's loss for the Eq. 8 fit")
    p.add_argument("--matched-steps", action="store_true", help="also train NA for as many steps as SCNN")
    return p.parse_args(argv)


def make_benchmark(args, work: Path) -> tuple[Path, Path]:
    size = dict(frames=args.frames, height=args.height, width=args.width, val_fraction=0.0)
    train = generate_clips(work / "train", sequences=args.train_sequences, seed=TRAIN_SEED, **size)
    test = generate_clips(work / "test", sequences=args.test_sequences, seed=TEST_SEED, **size)
    return train, test


def make_datamodule(args, train: Path, test: Path, work: Path) -> SaliencyDataModule:
    dm = SaliencyDataModule(train=[{"dataset": "davis", "root": str(train)}],
                            test=[{"dataset": "davis", "root": str(test)}],
                            size=(args.height, args.width), batch_size=args.batch_size, val_fraction=0.0,
                            augment={"flip": True, "max_scale": 1.2}, label_every=args.label_every,
                            motion=MotionProvider(flow="dis", prior="magnitude", cache_dir=work / "motion_cache"))
    dm.setup()
    return dm


def train_variant(module_cls, stage1: FCN, dm, args, seed: int, weak_root: Path | None,
                  max_steps: int | None = None) -> tuple[L.LightningModule, int, int]:
    """Fine-tune one cascade from `stage1` for `args.epochs` (or `max_steps`); returns it, its step count and
    the number of frames it trained on in its last epoch."""
    fcn_kwargs = dict(width=args.model_width, fc_channels=args.fc_channels, dropout=0.0)
    module = module_cls(**fcn_kwargs, optimizer="adam", lr=args.lr, weight_decay=1e-4)
    module.init_from_stage1(stage1)
    dm.use_weak_labels(None, None)  # the datamodule is shared: no variant may inherit another's weak labels
    dm.set_fusion_holdout([])  # ... or its held-out frames (SCNN's callback sets its own)
    callbacks = [WeakLabelRefresh(root=str(weak_root), sources=list(args.sources), seed=seed,
                                  holdout_fraction=args.holdout_fraction, cache_dir=str(weak_root.parent / "maps"))
                 ] if weak_root else []
    L.seed_everything(seed, verbose=False)  # same data order and augmentation draws for both variants
    length = dict(max_epochs=-1, max_steps=max_steps) if max_steps else dict(max_epochs=args.epochs)
    trainer = L.Trainer(**length, accelerator="cpu", devices=1, logger=False, callbacks=callbacks,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, limit_val_batches=0, reload_dataloaders_every_n_epochs=1)
    trainer.fit(module, datamodule=dm)
    return module, trainer.global_step, len(dm.active_train_entries())


def evaluate(module, dm) -> dict:
    metrics = SODMetrics(protocol="pysod")
    module.eval()
    with torch.no_grad():
        for batch in dm.test_dataloader():
            metrics.update(module.saliency(batch), batch["mask"][:, 0])
    scores = metrics.compute()
    return {k: float(scores[k]) for k in SCORES}


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def weak_label_quality(store: WeakLabelStore, dm) -> list[dict]:
    """Per round: fusion weights, the held-out label quality and share of changed label pixels (from the
    manifest) and IoU against the hidden ground truth of the frames the labels were made for."""
    frames = {(seq.name, seq.frames[i].name): seq.frames[i] for seq, i in dm.train_entries}
    rounds = []
    for r in store.rounds():
        manifest = store.manifest(r)
        ious = []
        for seq, name in store.frames(r):
            label = store.read_label(r, seq, name)
            truth = read_mask(frames[(seq, name)], label.shape)
            ious.append(_iou(label.astype(bool), truth.astype(bool)))
        rounds.append({"round": r, "weights": manifest["weights"], "labels": manifest["count"],
                       "iou_on_labelled": manifest["stats"]["iou_on_labelled"], "heldout": manifest["quality"],
                       "changed_fraction": manifest["stats"]["changed_fraction"],
                       "iou_hidden_gt": float(np.mean(ious)) if ious else None})
    return rounds


def run_seed(args, seed: int, dm, work: Path) -> dict:
    L.seed_everything(seed, verbose=False)
    stage1 = FCN(width=args.model_width, fc_channels=args.fc_channels, dropout=0.0)  # the shared random stage 1
    result = {"seed": seed}
    plan = [("NA", NAModule, False), ("SCNN", SCNNModule, True)] + [("NA_steps", NAModule, False)] * args.matched_steps
    for code, module_cls, weak in plan:
        started = time.time()
        weak_root = work / f"weak_seed{seed}" if weak else None
        max_steps = result["SCNN"]["steps"] if code == "NA_steps" else None
        module, steps, frames = train_variant(module_cls, stage1, dm, args, seed, weak_root, max_steps)
        result[code] = {**evaluate(module, dm), "steps": steps, "trained_frames": frames,
                        "seconds": round(time.time() - started, 1)}
        if weak_root is not None:
            result[code]["weak_rounds"] = weak_label_quality(WeakLabelStore(weak_root), dm)
    return result


def summarise(runs: list[dict]) -> dict:
    codes = [c for c in ("NA", "SCNN", "NA_steps") if c in runs[0]]
    summary = {code: {k: float(np.mean([r[code][k] for r in runs])) for k in SCORES} for code in codes}
    for code in codes[::2]:
        summary[f"scnn_lower_mae_than_{code}_seeds"] = sum(r["SCNN"]["mae"] < r[code]["mae"] for r in runs)
    return summary


def main(argv=None) -> dict:
    args = parse_args(argv)
    work = args.work or args.out.with_suffix("")
    torch.set_num_threads(1)
    train, test = make_benchmark(args, work)
    dm = make_datamodule(args, train, test, work)
    runs = [run_seed(args, seed, dm, work) for seed in args.seeds]
    budget = len(dm.labelled_train_entries()) / len(dm.train_entries)
    result = {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "label_budget": budget, "train_frames": len(dm.train_entries),
              "test_frames": len(dm.test_entries), "host": platform.node(), "runs": runs, "mean": summarise(runs)}
    write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
