"""Evaluate any method's saliency maps against ground truth (paper §IV-A figures, PySOD conventions).

    python -m scnn_lightning.evaluate --pred DIR --gt DIR --out DIR [--protocol pysod|davsod] [--no-temporal]
    python -m scnn_lightning.evaluate --pred DIR --gt DATASET_ROOT --dataset NAME [--split S] --out DIR

Maps are matched to ground truth by sequence and file stem. Accepted layouts, both sides:
`<seq>/<stem>.png` or a flat folder `<stem>.png`; the ground-truth side may also be a DAVSOD-style
dataset root, `<seq>/ground-truth/<stem>.png` (frames then come from `<seq>/Imgs/`, which enables
temporal consistency), or with `--dataset` the root of any dataset a reader of
`scnn_lightning.data.readers` knows (DAVIS, FBMS, SegTrackV2, ...): masks and frames are then found and
decoded by that reader, exactly as training and the runner's test step read them. A flat prediction
folder is matched by stem alone, and only against ground truth of one sequence. Sub-folders that hold
no map of their own (predict's `priors/<map>/...` trees) are not sequences and are not scored. Maps of
another size are resized (in memory) to the ground truth, and scored as the 8-bit values the files hold
(`metrics.functional.saved_map_scores`, the runner's scoring too). A ground-truth frame without a map
is an error; `--allow-missing` scores the frames that have one, and says so (`subset` in metrics.json).
Missing and extra maps are listed in `metrics.json` and on stderr. Writes `metrics.json`, `curves.json`,
`per_sequence.csv` and `pr_curve.png` under `--out`. Bad input (an unreadable map, an --out that cannot
be written, ...) ends with one line on stderr and exit status 2, before anything is scored.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from scnn_lightning.data.io import read_frame, read_mask
from scnn_lightning.data.readers import DATASETS, load_index
from scnn_lightning.data.readers.common import natural_key
from scnn_lightning.data.records import FrameRef
from scnn_lightning.errors import DataError, report_failure, writable_folder
from scnn_lightning.metrics.functional import saved_map_scores
from scnn_lightning.metrics.sod import PROTOCOLS, SODMetrics
from scnn_lightning.metrics.temporal import FlowFn, sequence_flickers
from scnn_lightning.utils import atomic_path, write_json

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
SCALAR_KEYS = ("mae", "max_f", "mean_f", "adp_f", "s_measure", "max_e", "mean_e", "adp_e", "w_f")
DAVSOD_GT, DAVSOD_FRAMES = "ground-truth", "Imgs"
FLAT = ""  # sequence name used for files that sit directly in the root
SHOWN_MISSING = 5  # missing frames quoted in messages
GroundTruth = Path | FrameRef  # a mask file, or a dataset frame whose mask files its reader knows


def _images_in(folder: Path) -> dict[str, Path]:
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    found: dict[str, Path] = {}
    for path in sorted(files):
        if path.stem not in found or path.suffix.lower() == ".png":  # a PNG wins over a lossy twin
            found[path.stem] = path
    return found


def index_maps(root: str | Path, inner: str | None = None) -> dict[str, dict[str, Path]]:
    """{sequence: {stem: path}} for `root/<seq>/[inner/]<stem>.*` plus flat `root/<stem>.*` files."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "is not a directory")
    found: dict[str, dict[str, Path]] = {}
    flat = _images_in(root)
    if flat:
        found[FLAT] = flat
    for seq_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        folder = seq_dir / inner if inner and (seq_dir / inner).is_dir() else seq_dir
        maps = _images_in(folder)
        if maps:
            found[seq_dir.name] = maps
    return found


def is_davsod_layout(root: Path) -> bool:
    return any((p / DAVSOD_GT).is_dir() for p in root.iterdir() if p.is_dir())


def index_dataset(root: str | Path, dataset: str, split: str | None) -> tuple[dict, dict]:
    """A dataset root through its reader: ({seq: {stem: labelled FrameRef}}, {seq: {stem: FrameRef}})."""
    index = load_index(dataset, root, split)
    labelled = {s.name: {f.name: f for f in s.frames if f.labelled} for s in index.sequences}
    frames = {s.name: {f.name: f for f in s.frames} for s in index.sequences}
    return {seq: found for seq, found in labelled.items() if found}, frames


@dataclass
class Matching:
    """Ground-truth frames per sequence (natural order) with their prediction, plus what did not match."""

    pairs: dict[str, list[tuple[str, Path, GroundTruth]]] = field(default_factory=dict)  # seq -> [(stem, pred, gt)]
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)


def _label(seq: str, stem: str) -> str:
    return f"{seq}/{stem}" if seq else stem


def _preview(names: list[str]) -> str:
    return ", ".join(names[:SHOWN_MISSING]) + (", ..." if len(names) > SHOWN_MISSING else "")


def match_maps(preds: dict[str, dict[str, Path]], gts: dict[str, dict[str, GroundTruth]]) -> Matching:
    """Pair predictions with ground truth by (sequence, stem); a flat prediction folder is one sequence's maps.

    A flat folder against several ground-truth sequences is refused: frame names repeat across sequences
    (00000.png in every DAVIS one), so matching by stem would score one sequence's maps against another's."""
    if set(preds) == {FLAT} and set(gts) != {FLAT}:
        folder = next(iter(preds[FLAT].values())).parent
        if len(gts) > 1:
            raise DataError(folder, f"maps lie directly in this folder, but the ground truth has {len(gts)} "
                                    f"sequences ({_preview(sorted(gts, key=natural_key))}): put each sequence's "
                                    f"maps in <pred>/<sequence>/, or evaluate against one sequence")
        preds = {next(iter(gts)): preds[FLAT]}
    result = Matching()
    for seq in sorted(gts, key=natural_key):
        pred_seq = preds.get(seq, {})
        pairs = []
        for stem in sorted(gts[seq], key=natural_key):
            if stem in pred_seq:
                pairs.append((stem, pred_seq[stem], gts[seq][stem]))
            else:
                result.missing.append(_label(seq, stem))
        if pairs:
            result.pairs[seq] = pairs
    for seq, frames in preds.items():
        result.extra += [_label(seq, stem) for stem in frames if stem not in gts.get(seq, {})]
    return result


def read_gray(path: Path) -> np.ndarray:
    """An 8-bit single-channel image (colour files are converted to luma, 16-bit ones scaled)."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise DataError(path, "cannot be decoded as an image")
    return image


def read_ground_truth(gt: GroundTruth) -> np.ndarray:
    """A mask file as 8-bit grey (foreground > 128), or a dataset frame's mask through its reader ({0, 1})."""
    return read_mask(gt) if isinstance(gt, FrameRef) else read_gray(gt)


def read_prediction(path: Path, size: tuple[int, int]) -> np.ndarray:
    """A map's 8-bit values, resized to `size` (H, W) when it differs (the file is untouched)."""
    pred = read_gray(path)
    if pred.shape != size:
        pred = cv2.resize(pred, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return pred


def score_pair(pred_path: Path, gt: GroundTruth) -> tuple[torch.Tensor, np.ndarray]:
    """Per-image score row and the (resized) float map; a bad pair raises `DataError` naming the file."""
    mask = read_ground_truth(gt)
    pred = read_prediction(pred_path, mask.shape)
    try:
        return saved_map_scores(pred, mask), pred.astype(np.float32) / 255
    except ValueError as err:
        where = gt.masks[0] if isinstance(gt, FrameRef) else gt
        raise DataError(pred_path, f"cannot be scored against {where}: {err}") from err


def frame_paths(frames_root: Path, seq: str) -> dict[str, FrameRef]:
    """Frame images of a sequence: `<root>/<seq>/Imgs/*` or `<root>/<seq>/*` (flat: `<root>/*`)."""
    folder = frames_root / seq if seq else frames_root
    if (folder / DAVSOD_FRAMES).is_dir():
        folder = folder / DAVSOD_FRAMES
    found = _images_in(folder) if folder.is_dir() else {}
    return {stem: FrameRef(sequence=seq, name=stem, image=path) for stem, path in found.items()}


def sequence_temporal(pairs, maps: dict[str, np.ndarray], frames: dict[str, FrameRef],
                      flow_fn: FlowFn | None) -> list[float]:
    """Flicker values of one sequence over runs of evaluated maps that are adjacent in the video."""
    order = sorted(frames, key=natural_key)
    position = {stem: i for i, stem in enumerate(order)}
    stems = [stem for stem, _, _ in pairs if stem in position]
    values: list[float] = []
    run: list[str] = []
    for stem in stems + [None]:
        if stem is not None and (not run or position[stem] == position[run[-1]] + 1):
            run.append(stem)
            continue
        if len(run) >= 2:
            images = [read_frame(frames[s]) for s in run]
            run_maps = [_fit(maps[s], img.shape[:2]) for s, img in zip(run, images)]
            values += sequence_flickers(run_maps, images, flow_fn)
        run = [stem] if stem is not None else []
    return values


def _fit(saliency: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return saliency if saliency.shape == size else cv2.resize(saliency, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def _figures(result: dict) -> dict:
    return {key: result[key] for key in SCALAR_KEYS}


def evaluate_folders(
    pred: str | Path,
    gt: str | Path,
    out: str | Path,
    protocol: str = "pysod",
    frames: str | Path | None = None,
    *,
    temporal: bool = True,
    flow_fn: FlowFn | None = None,
    dataset: str | None = None,
    split: str | None = None,
    allow_missing: bool = False,
) -> dict:
    """Evaluate the maps under `pred` against `gt`, write the reports under `out`, return metrics.json's dict.

    Ground-truth frames without a map are a `DataError` unless `allow_missing`: then the frames with a map
    are scored and metrics.json says `subset: true`.
    `dataset` (a reader name, with an optional `split`): `gt` is that dataset's root, read by its reader.
    `frames`: root of the video frames for temporal consistency (default: the dataset's own frames, or the
    GT root when it has the DAVSOD layout). `flow_fn(img0, img1) -> (H, W, 2)` defaults to
    `motion.flow.compute_flow`.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
    if split is not None and dataset is None:
        raise ValueError("a split needs the dataset it belongs to (--dataset)")
    pred_root, gt_root, out = Path(pred), Path(gt), writable_folder(out)
    davsod_layout = dataset is None and gt_root.is_dir() and is_davsod_layout(gt_root)
    dataset_frames: dict[str, dict[str, FrameRef]] = {}
    if dataset is not None:
        gts, dataset_frames = index_dataset(gt_root, dataset, split)
        if not gts:
            raise DataError(gt_root, f"the {dataset} reader found no frame with ground truth"
                                     + (f" in split {split}" if split else ""))
    else:
        gts = index_maps(gt_root, DAVSOD_GT if davsod_layout else None)
        if not gts:
            raise DataError(gt_root, "holds no ground-truth images (<seq>/<stem>.png, <stem>.png or "
                                     "<seq>/ground-truth/<stem>.png); for a dataset root give "
                                     "--dataset NAME [--split S]")
    matching = match_maps(index_maps(pred_root), gts)
    total = sum(map(len, gts.values()))
    if not matching.pairs:
        raise DataError(pred_root, f"no prediction map matches any of the {total} ground-truth frames under {gt_root}")
    if matching.missing and not allow_missing:
        raise DataError(pred_root, f"{len(matching.missing)} of the {total} ground-truth frames have no map "
                                   f"({_preview(matching.missing)}); --allow-missing scores the others")
    _warn_unmatched(matching)

    frames_root = Path(frames) if frames is not None else (gt_root if davsod_layout else None)
    has_frames = frames_root is not None or bool(dataset_frames)
    overall = SODMetrics(protocol=protocol)
    rows_out, all_flickers = [], []
    for seq, pairs in matching.pairs.items():
        per_seq = SODMetrics(protocol="pysod")
        maps = {}
        for index, (stem, pred_path, gt_path) in enumerate(pairs):
            row, maps[stem] = score_pair(pred_path, gt_path)
            overall.update(scores=row, sequence=seq, frame_index=index)
            # The per-sequence breakdown follows the chosen protocol's frame selection.
            if protocol == "pysod" or 0 < index < len(pairs) - 1:
                per_seq.update(scores=row)
        line = {"sequence": seq or ".", "frames": len(pairs)}
        if per_seq.images > 0:
            line.update(_figures(per_seq.compute()))
        if temporal and has_frames:
            seq_frames = frame_paths(frames_root, seq) if frames_root is not None else dataset_frames.get(seq, {})
            flickers = sequence_temporal(pairs, maps, seq_frames, flow_fn)
            all_flickers += flickers
            line["temporal_consistency"] = float(np.mean(flickers)) if flickers else None
        rows_out.append(line)

    result = overall.compute()
    metrics = {
        **_figures(result),
        "protocol": protocol,
        "frames": sum(len(p) for p in matching.pairs.values()),
        "ground_truth_frames": total,
        "subset": bool(matching.missing),  # only with allow_missing: the scores are of some frames only
        "sequences": len(matching.pairs),
        "missing_predictions": matching.missing,
        "extra_predictions": matching.extra,
    }
    if all_flickers:
        metrics["temporal_consistency"] = float(np.mean(all_flickers))
    write_json(out / "metrics.json", metrics)
    write_json(out / "curves.json", {k: result[k].tolist() for k in ("precision", "recall", "f_curve", "e_curve")})
    _write_csv(out / "per_sequence.csv", rows_out)
    _plot_pr(out / "pr_curve.png", result, label=pred_root.name, protocol=protocol)
    return metrics


def _warn_unmatched(matching: Matching) -> None:
    for kind, names in (("ground-truth frames have no prediction", matching.missing), ("predictions have no ground truth", matching.extra)):
        if names:
            print(f"warning: {len(names)} {kind}: {_preview(names)}", file=sys.stderr)


def _write_csv(path: Path, rows: list[dict]) -> None:
    columns = ["sequence", "frames", *SCALAR_KEYS] + (["temporal_consistency"] if any("temporal_consistency" in r for r in rows) else [])
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)


def _plot_pr(path: Path, result: dict, *, label: str, protocol: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot(result["recall"].numpy(), result["precision"].numpy(), label=f"{label} (max F {result['max_f']:.3f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=f"PR curve ({protocol} protocol)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scnn_lightning.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pred", required=True, help="folder of saliency maps (<seq>/<stem>.png or flat)")
    parser.add_argument("--gt", required=True,
                        help="ground truth (<seq>/<stem>.png, flat, a DAVSOD-layout root, "
                             "or a dataset root with --dataset)")
    parser.add_argument("--dataset", choices=sorted(DATASETS), default=None,
                        help="--gt is the root of this dataset; its reader finds masks and frames")
    parser.add_argument("--split", default=None, help="split of --dataset (e.g. val for DAVIS, test for FBMS)")
    parser.add_argument("--out", required=True, help="folder for metrics.json, per_sequence.csv, pr_curve.png")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="pysod",
                        help="pysod: mean over images; davsod: mean over sequences, first/last frame skipped")
    parser.add_argument("--frames", default=None, help="frames root for temporal consistency (default: GT root if DAVSOD layout)")
    parser.add_argument("--no-temporal", action="store_true", help="skip temporal consistency (needs optical flow)")
    parser.add_argument("--allow-missing", action="store_true",
                        help="score the ground-truth frames that have a map (default: a frame without one is an error)")
    args = parser.parse_args(argv)
    if args.split is not None and args.dataset is None:
        parser.error("--split needs --dataset")
    try:
        metrics = evaluate_folders(args.pred, args.gt, args.out, args.protocol, args.frames,
                                   temporal=not args.no_temporal, dataset=args.dataset, split=args.split,
                                   allow_missing=args.allow_missing)
    except (DataError, OSError) as err:
        return report_failure(err)
    shown = {k: metrics[k] for k in (*SCALAR_KEYS, "temporal_consistency") if k in metrics}
    subset = (f" (a subset: {metrics['frames']} of {metrics['ground_truth_frames']} ground-truth frames have a map, "
              f"--allow-missing)" if metrics["subset"] else "")
    print(f"{metrics['frames']} frames, {metrics['sequences']} sequences, protocol {metrics['protocol']}{subset}")
    print("  ".join(f"{k} {v:.4f}" for k, v in shown.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
