"""Train the study's one region classifier (Eq. 6) from the shipped stage 1, validate it, and record how good
the priors are alone.

    python -m ablations.temporal_prior --davis DATA/davis-2016-half --stage1 scnn_lightning/weights/stage1-duts.ckpt \
        --out scnn_lightning/weights/temporal/stage1-duts-davis.pt --epochs 30 100 --report-val

The classifier learns from the budgeted ground-truth frames (every `--label-every`-th) of the DAVIS train
sequences outside `--val-sequences`; each candidate setting (`--epochs`, `--balance`) is scored on the superpixels
of the held-out train sequences (AUC, balanced accuracy) and the best AUC is kept: DAVIS val never chooses.
The record (`--out` with .json) then scores the maps alone, as 8-bit maps at the stored frame size with the
project's evaluator (PySODMetrics conventions): Pt (the temporal prior), Ps (stage 1's map, up-sampled) and
P = Ps·Pt, on every frame of the held-out train sequences and, with `--report-val`, on DAVIS val (reported,
never used to choose). Pt goes through the motion cache (`--cache`), so the study's runs find it there.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from scnn_lightning.crf import frame_size_map
from scnn_lightning.data.datamodule import SaliencyDataModule
from scnn_lightning.data.io import read_frame, read_mask
from scnn_lightning.data.transforms import resize, to_tensor_image
from scnn_lightning.errors import DataError
from scnn_lightning.metrics.sod import SODMetrics, scalar_scores
from scnn_lightning.motion.classifier import RegionClassifier, collect_regions, fit_mlp, index_of_entries
from scnn_lightning.motion.provider import MotionProvider
from scnn_lightning.motion.regions import DEFAULT_DEPTH, RegionFeatureExtractor
from scnn_lightning.record_paths import record_command, record_path
from scnn_lightning.training.checkpoints import load_fcn, read_checkpoint
from scnn_lightning.training.records import environment
from scnn_lightning.utils import write_json

MAP_KEYS = ("s_measure", "max_f", "mae", "mean_e")


def region_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a salient region outscores a background one (ties half)."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), np.float64)
    sorted_scores = scores[order]
    start = 0
    for end in range(1, len(scores) + 1):  # average ranks over ties
        if end == len(scores) or sorted_scores[end] != sorted_scores[start]:
            ranks[order[start:end]] = (start + end + 1) / 2
            start = end
    positives = labels > 0.5
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs salient and background regions")
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def region_scores(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """How well the classifier separates the held-out superpixels (label: majority overlap with the mask)."""
    positives = labels > 0.5
    predicted = probabilities >= 0.5
    recall = float(predicted[positives].mean())
    specificity = float((~predicted[~positives]).mean())
    return {"auc": region_auc(probabilities, labels), "balanced_accuracy": (recall + specificity) / 2,
            "accuracy": float((predicted == positives).mean()), "recall": recall, "specificity": specificity,
            "regions": int(len(labels)), "salient_fraction": float(positives.mean())}


def train_candidates(train_index, val_index, backbone, *, epochs: list[int], balances: list[str], seed: int):
    """One classifier per (epochs, balance) on the same region features; each scored on the held-out regions."""
    extractor = RegionFeatureExtractor.from_backbone(backbone, depth=DEFAULT_DEPTH)
    features, labels = collect_regions(train_index, extractor)
    val_features, val_labels = collect_regions(val_index, extractor)
    for index, found in ((train_index, labels), (val_index, val_labels)):
        if found.min() == found.max():
            raise DataError(index.root, f"the {len(found)} superpixels of its labelled frames are all of one class: "
                                        "training and validating the region classifier need both")
    n_deep = 3 * backbone.block_channels[DEFAULT_DEPTH - 1]
    candidates = []
    for balance in balances:
        for n in epochs:
            mlp, transform = fit_mlp(features, labels, n_deep=n_deep, epochs=n, seed=seed, balanced=balance == "balanced")
            classifier = RegionClassifier(extractor, mlp, transform, backbone.width, "dis")
            scores = region_scores(classifier.predict(val_features), val_labels)
            candidates.append(({"epochs": n, "balance": balance, "held_out": scores,
                                "train": region_scores(classifier.predict(features), labels)}, classifier))
    return candidates, {"train_regions": int(len(labels)), "held_out_regions": int(len(val_labels))}


@torch.no_grad()
def spatial_map(stage1, frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Ps of one frame as its saved map would hold it: the network-size sigmoid brought to the frame's size,
    8-bit, as float32 in [0, 1]."""
    image = resize({"image": to_tensor_image(frame)}, size)["image"][None]
    ps_small = torch.sigmoid(stage1(image))[0, 0].numpy()
    return frame_size_map(ps_small, frame, None).astype(np.float32) / 255


def score_maps(entries, provider: MotionProvider, stage1, size: tuple[int, int]) -> dict:
    """Pt, Ps and P = Ps·Pt scored alone on `entries` (every frame with a mask), at the stored frame size."""
    metrics = {name: SODMetrics() for name in ("Pt", "Ps", "P")}
    for seq, index in entries:
        frame = read_frame(seq.frames[index])
        mask = read_mask(seq.frames[index], frame.shape[:2])
        ps = spatial_map(stage1, frame, size)
        pt = provider.maps(seq, index).pt
        gt = torch.from_numpy(mask.astype(np.float32))[None]
        for name, value in (("Pt", pt), ("Ps", ps), ("P", ps * pt)):
            quantised = np.round(np.clip(value, 0, 1) * 255) / 255  # as its PNG would hold it
            metrics[name].update(torch.from_numpy(quantised.astype(np.float32))[None], gt)
    return {name: {k: round(float(v), 4) for k, v in scalar_scores(m.compute()).items() if k in MAP_KEYS}
            | {"frames": len(entries)} for name, m in metrics.items()}


def davis_module(davis: Path, split: str, val_sequences: list[str], label_every: int) -> SaliencyDataModule:
    dm = SaliencyDataModule(train=[{"dataset": "davis", "root": str(davis), "split": split}], size=(16, 16),
                            label_every=label_every, val_sequences=val_sequences or None, val_fraction=0.0)
    dm.setup()
    return dm


def maps_alone(args, train: SaliencyDataModule) -> dict:
    """Pt of the classifier at `args.out`, Ps of `args.stage1` and P scored alone on the held-out train sequences
    (and DAVIS val with `--report-val`)."""
    provider = MotionProvider(flow="dis", prior="superpixel", classifier=args.out, cache_dir=args.cache)
    stage1 = load_fcn(args.stage1).eval()
    maps = {"held_out_train": score_maps(train.labelled_val_entries(), provider, stage1, tuple(args.size))}
    if args.report_val:
        val = davis_module(args.davis, "val", [], None)
        maps["davis_val_report_only"] = score_maps(val.train_entries, provider, stage1, tuple(args.size))
    return maps


def maps_only(args, argv: list[str] | None, started: float) -> int:
    """`--maps-only RECORD`: the maps-alone table of an existing classifier beside another stage 1."""
    try:
        if not args.out.is_file():
            raise DataError(args.out, "missing: --maps-only scores an existing classifier")
        maps = maps_alone(args, davis_module(args.davis, "train", args.val_sequences, args.label_every))
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_json(args.maps_only, {
        "command": record_command(["python", "-m", "ablations.temporal_prior", *(argv or sys.argv[1:])]),
        "classifier": record_path(args.out), "stage1": record_path(args.stage1), "maps_alone": maps,
        "seconds": round(time.time() - started, 1), "environment": environment()})
    print(f"wrote {args.maps_only}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ablations.temporal_prior", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--davis", type=Path, required=True, help="DAVIS-2016 root (official layout)")
    p.add_argument("--stage1", type=Path, required=True, help="the stage-1 checkpoint (its backbone, its Ps)")
    p.add_argument("--out", type=Path, required=True, help="classifier file; the record goes beside it (.json)")
    p.add_argument("--val-sequences", nargs="+", default=["flamingo", "surf", "swing"])
    p.add_argument("--label-every", type=int, default=10, help="the study's label budget")
    p.add_argument("--epochs", type=int, nargs="+", default=[30])
    p.add_argument("--balance", nargs="+", default=["balanced"], choices=["balanced", "plain"])
    p.add_argument("--size", type=int, nargs=2, default=[120, 216], help="the network input (H W) for Ps")
    p.add_argument("--cache", type=Path, default=Path(".cache/scnn"), help="motion cache (the study's default)")
    p.add_argument("--report-val", action="store_true", help="also score the maps on DAVIS val (report only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--maps-only", type=Path, metavar="RECORD",
                   help="train nothing: score the maps alone of the classifier at --out (it carries its own trunk, "
                        "so it serves any stage 1) with --stage1's Ps, and write RECORD")
    args = p.parse_args(argv)
    started = time.time()
    if args.maps_only:
        return maps_only(args, argv, started)
    try:
        train = davis_module(args.davis, "train", args.val_sequences, args.label_every)
        backbone = load_fcn(args.stage1).backbone
        candidates, counts = train_candidates(index_of_entries(train.labelled_train_entries(), args.davis),
                                              index_of_entries(train.labelled_val_entries(), args.davis), backbone,
                                              epochs=args.epochs, balances=args.balance, seed=args.seed)
        chosen, classifier = max(candidates, key=lambda c: c[0]["held_out"]["auc"])
        classifier.save(args.out)
        maps = maps_alone(args, train)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stage1_hp = read_checkpoint(args.stage1).get("hyper_parameters", {})
    record = {"command": record_command(["python", "-m", "ablations.temporal_prior", *(argv or sys.argv[1:])]),
              "classifier": args.out.name, "digest": classifier.digest, "stage1": args.stage1.name,
              "stage1_width": stage1_hp.get("width"), "train_frames": len(train.labelled_train_entries()),
              "held_out_sequences": args.val_sequences, "held_out_frames": len(train.labelled_val_entries()),
              "label_every": args.label_every, **counts, "chosen": {k: chosen[k] for k in ("epochs", "balance")},
              "chosen_by": "held-out train sequences, region AUC", "candidates": [c for c, _ in candidates],
              "maps_alone": maps, "seconds": round(time.time() - started, 1), "environment": environment()}
    write_json(args.out.with_suffix(".json"), record)
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}: chosen {record['chosen']}, "
          f"held-out AUC {chosen['held_out']['auc']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
