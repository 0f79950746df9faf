"""Reference rows of the real-video study: what SCNN learns from, and trivial maps, scored on DAVIS-2016 val.

    python -m ablations.baselines --davis DAVIS --saliency MAPS --out ablations/results/davis \
        [--work runs/davis-baselines] [--label-every 10] [--fusion csnet-x1 csnet-x2 mbd]

DAVIS is a DAVIS-2016 root (official layout, e.g. the 427×240 copy), MAPS a folder of external saliency
maps `<model>/<sequence>/<frame>.jpg|png` (e.g. saliency-maps/davis-2016-half). Rows:

  <model>          every model folder under MAPS (the deep image models, e.g. csnet-x1, csnet-x2), as stored
  ft, mbd, rbd     the classical models of scnn_lightning/weak/classical.py, on the frames as stored
  centre           a Gaussian centre prior
  propagated       the val ground truth of every `--label-every`-th frame carried to the other frames by optical
                   flow (`weak.propagated.PropagatedSource`, DIS): what the propagated weak source makes of the
                   label budget on unseen sequences. It reads val ground truth (and equals it on those frames), so
                   it is a reference for the labels, not a competitor
  fused-round0     Eq. 7 before Otsu, Σ wᵢSᵢ of the static `--fusion` sources (what round 0 of Algorithm 1
                   thresholds), with w fitted by Eq. 8 on the budgeted ground truth of DAVIS *train*
                   (every `--label-every`-th frame of each train sequence); val is never used to fit anything

All rows are scored by one evaluator (`scnn_lightning.evaluate`, pysod protocol, no temporal term) against
the val ground truth at its stored size. Writes under --out: `baselines.csv` (one row per method),
`baselines_per_sequence.csv`, `baselines_curves.json` (PR curves) and `baselines.json` (the command,
the rows, the fusion weights and the frames they were fitted on). Maps we compute, and the evaluator's
own reports, go under --work; a computed map already there is kept (the folder is a resumable cache).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from scnn_lightning.data.datamodule import apply_label_budget
from scnn_lightning.data.io import read_frame, read_mask
from scnn_lightning.data.readers import load_index
from scnn_lightning.data.records import FrameRef
from scnn_lightning.errors import DataError
from scnn_lightning.evaluate import evaluate_folders
from scnn_lightning.record_paths import record_command, record_path
from scnn_lightning.utils import atomic_path, write_json, write_png_map
from scnn_lightning.weak.classical import CLASSICAL_MODELS, center_prior
from scnn_lightning.weak.fusion import GramAccumulator, fuse_maps
from scnn_lightning.weak.propagated import PropagatedSource
from scnn_lightning.weak.sources import ClassicalSource, SaliencySource, build_sources

log = logging.getLogger(__name__)

KEYS = ("mae", "s_measure", "max_f", "mean_f", "max_e", "mean_e", "w_f")
CENTRE, FUSED, PROPAGATED = "centre", "fused-round0", "propagated"
DEFAULT_FUSION = ("csnet-x1", "csnet-x2", "mbd")  # the static sources of `weak=davis`


def model_folders(saliency: Path) -> dict[str, Path]:
    """{model name: folder} for each non-hidden sub-folder of the external maps root."""
    if not saliency.is_dir():
        raise DataError(saliency, "saliency-map root is not a folder")
    folders = {p.name: p for p in sorted(saliency.iterdir()) if p.is_dir() and not p.name.startswith(".")}
    if not folders:
        raise DataError(saliency, "holds no model folder (<model>/<sequence>/<frame>.jpg)")
    return folders


def fusion_sources(names: list[str], folders: dict[str, Path]) -> list[SaliencySource]:
    """A saliency source per name: a model folder under the maps root, else a classical model."""
    specs = []
    for name in names:
        if name in folders:
            specs.append({"folder": str(folders[name]), "name": name})
        elif name in CLASSICAL_MODELS:
            specs.append(name)
        else:
            raise ValueError(f"fusion source {name!r} is neither a model folder ({', '.join(folders)}) "
                             f"nor a classical model ({', '.join(CLASSICAL_MODELS)})")
    return build_sources(specs)


def budgeted_frames(davis: Path, label_every: int, split: str = "train") -> list[FrameRef]:
    """The frames of `split` whose ground truth the study's label budget keeps (every k-th per sequence)."""
    index = load_index("davis", davis, split)
    frames = [f for seq in index.sequences for f in apply_label_budget(seq, label_every).frames if f.labelled]
    if not frames:
        raise DataError(davis, f"no {split} frame with ground truth within the label budget")
    return frames


def source_maps(sources: list[SaliencySource], frame: FrameRef, rgb: np.ndarray,
                known: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """(K, H, W) float32 maps of the sources for one frame, at the frame's size; the classical models'
    maps in `known` (by model name) are used as they are instead of being computed again."""
    known = known or {}

    def one(source: SaliencySource) -> np.ndarray:
        reuse = isinstance(source, ClassicalSource) and source.model in known
        return known[source.model] if reuse else source.map_for(frame, rgb)

    return np.stack([one(s) for s in sources]).astype(np.float32)


def fit_weights(sources: list[SaliencySource], frames: list[FrameRef]) -> np.ndarray:
    """Eq. 8 over `frames` (which carry ground truth), streamed frame by frame."""
    accumulator = GramAccumulator(len(sources))
    for frame in frames:
        rgb = read_frame(frame)
        accumulator.add(source_maps(sources, frame, rgb), read_mask(frame, rgb.shape[:2]))
    return accumulator.solve()


def write_val_maps(frames: list[FrameRef], work: Path, sources: list[SaliencySource],
                   weights: np.ndarray, propagated: PropagatedSource) -> dict[str, Path]:
    """PNG maps of the centre prior, each classical model, the fused static sources and the propagated ground
    truth for every val frame; a frame whose maps are all in `work` already is skipped."""
    folders = {name: work / "maps" / name for name in (CENTRE, *CLASSICAL_MODELS, FUSED, PROPAGATED)}
    for n, frame in enumerate(frames, 1):
        paths = {name: folder / frame.sequence / f"{frame.name}.png" for name, folder in folders.items()}
        if all(path.is_file() for path in paths.values()):
            continue
        rgb = read_frame(frame)
        maps = {name: model(rgb) for name, model in CLASSICAL_MODELS.items()}
        maps[FUSED] = fuse_maps(source_maps(sources, frame, rgb, known=maps), weights)
        maps[CENTRE] = center_prior(*rgb.shape[:2])
        maps[PROPAGATED] = propagated.map_for(frame, rgb)
        for name, saliency in maps.items():
            write_png_map(paths[name], saliency)
        if n % 200 == 0:
            log.info("val maps: %d / %d frames", n, len(frames))
    return folders


def sequence_view(folder: Path, sequences: list[str], view: Path) -> Path:
    """A folder of links to `folder/<seq>` for the given sequences only, so the evaluator sees no extra maps."""
    view.mkdir(parents=True, exist_ok=True)
    for seq in sequences:
        target = folder / seq
        if not target.is_dir():
            raise DataError(target, "no maps for this val sequence")
        link = view / seq
        if link.is_symlink() and link.resolve() != target.resolve():
            link.unlink()
        if not link.is_symlink():
            link.symlink_to(target.resolve(), target_is_directory=True)
    return view


def evaluate_methods(methods: dict[str, Path], davis: Path, work: Path) -> dict[str, dict]:
    """The evaluator's metrics.json (plus per-sequence rows and curves) of each method, against DAVIS val."""
    results = {}
    for name, folder in methods.items():
        out = work / "eval" / name
        metrics = evaluate_folders(folder, davis, out, temporal=False, dataset="davis", split="val")
        if metrics["missing_predictions"]:
            raise DataError(folder, f"{len(metrics['missing_predictions'])} val frames have no map "
                                    f"(e.g. {metrics['missing_predictions'][0]})")
        with (out / "per_sequence.csv").open() as handle:
            per_sequence = list(csv.DictReader(handle))
        curves = json.loads((out / "curves.json").read_text())
        results[name] = {"metrics": metrics, "per_sequence": per_sequence, "curves": curves}
        log.info("%s: %s", name, "  ".join(f"{k} {metrics[k]:.4f}" for k in KEYS))
    return results


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_outputs(out: Path, results: dict[str, dict], record: dict) -> list[dict]:
    """baselines.csv, baselines_per_sequence.csv, baselines_curves.json and baselines.json under `out`."""
    rows = [{"method": name, **{k: round(float(r["metrics"][k]), 4) for k in KEYS}, "frames": r["metrics"]["frames"]}
            for name, r in results.items()]
    write_csv(out / "baselines.csv", rows, ["method", *KEYS, "frames"])
    per_sequence = [{"method": name, **line} for name, r in results.items() for line in r["per_sequence"]]
    write_csv(out / "baselines_per_sequence.csv", per_sequence, ["method", "sequence", "frames", *KEYS])
    write_json(out / "baselines_curves.json", {name: {k: r["curves"][k] for k in ("precision", "recall")}
                                               for name, r in results.items()})
    write_json(out / "baselines.json", {**record, "rows": rows})
    return rows


def run_baselines(davis: Path, saliency: Path, out: Path, work: Path, *, label_every: int = 10,
                  fusion: list[str] = DEFAULT_FUSION, command: str = "") -> list[dict]:
    """Every baseline row on DAVIS val; returns the rows of baselines.csv."""
    started = time.time()
    folders = model_folders(saliency)
    clashes = sorted(set(folders) & {CENTRE, FUSED, PROPAGATED, *CLASSICAL_MODELS})
    if clashes:
        raise DataError(saliency, f"model folders named like our own rows: {', '.join(clashes)}; rename them")
    sources = fusion_sources(list(fusion), folders)
    fit_frames = budgeted_frames(davis, label_every)
    weights = fit_weights(sources, fit_frames)
    log.info("Eq. 8 weights on %d budgeted train frames: %s", len(fit_frames),
             ", ".join(f"{s.name} {w:.3f}" for s, w in zip(sources, weights)))
    val = load_index("davis", davis, "val")
    val_sequences = [seq.name for seq in val.sequences]
    carried = budgeted_frames(davis, label_every, "val")
    propagated = PropagatedSource(val.sequences, [(f.sequence, f.name) for f in carried])
    computed = write_val_maps(val.frames, work, sources, weights, propagated)
    views = {name: sequence_view(folder, val_sequences, work / "views" / name) for name, folder in folders.items()}
    results = evaluate_methods({**views, **computed}, davis, work)
    record = {
        "command": command,
        "davis": record_path(davis), "saliency": record_path(saliency),
        "protocol": "pysod", "temporal": False, "scored_at": "ground-truth size as stored",
        "val_sequences": len(val_sequences), "val_frames": len(val.frames),
        "fusion": {"sources": [s.name for s in sources], "weights": [round(float(w), 6) for w in weights],
                   "fitted_on": f"DAVIS train, every {label_every}-th frame of each sequence",
                   "fit_frames": len(fit_frames), "fit_size": "frames as stored"},
        "propagated": {"carried": f"DAVIS val ground truth, every {label_every}-th frame of each sequence",
                       "frames_with_gt": len(carried), "flow": propagated.flow,
                       "note": "reads val ground truth: a reference for the weak labels, not a competitor"},
        "seconds": round(time.time() - started, 1),
    }
    return write_outputs(out, results, record)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ablations.baselines", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--davis", type=Path, required=True, help="DAVIS-2016 root (official layout)")
    parser.add_argument("--saliency", type=Path, required=True, help="external maps: <model>/<seq>/<frame>.jpg")
    parser.add_argument("--out", type=Path, required=True, help="folder for baselines.csv/.json")
    parser.add_argument("--work", type=Path, default=Path("runs/davis-baselines"), help="computed maps and reports")
    parser.add_argument("--label-every", type=int, default=10, help="label budget of the Eq. 8 fit (train only)")
    parser.add_argument("--fusion", nargs="+", default=list(DEFAULT_FUSION),
                        help="static sources of the round-0 fusion: model folders or classical models")
    args = parser.parse_args(argv)
    if args.label_every < 1:
        parser.error("--label-every must be >= 1")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    command = record_command(["python", "-m", "ablations.baselines", *(argv if argv is not None else sys.argv[1:])])
    try:
        rows = run_baselines(args.davis, args.saliency, args.out, args.work, label_every=args.label_every,
                             fusion=args.fusion, command=command)
    except (DataError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{'method':<14}" + "".join(f"{k:>11}" for k in KEYS) + f"{'frames':>8}")
    for row in rows:
        print(f"{row['method']:<14}" + "".join(f"{row[k]:>11.4f}" for k in KEYS) + f"{row['frames']:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
