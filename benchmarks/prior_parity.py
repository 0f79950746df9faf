"""Parity of the temporal prior Pt (Eq. 6) between this code and a reference copy of the package (issue 23).

    git archive fdc2235 scnn_lightning | tar -x -C /tmp/prior-ref
    python -m benchmarks.prior_parity --reference /tmp/prior-ref --davis DATA/davis-2016-half \
        --work /tmp/prior-parity --out benchmarks/results/prior_parity.json

Pt of every frame of the DAVIS split (`--split`, default val) is computed twice with the same region classifier
(default: the shipped one) and DIS flow, each in its own process: once importing `scnn_lightning` from
`--reference`, once from this checkout. The maps are kept as float32 under `--work/<code>/<sequence>.npz`
(a sequence already there is not recomputed). The JSON holds, per sequence and overall, the mean and the
largest per-frame mean |ΔPt| and the largest pixel |ΔPt|, in 1/255 units, and the frames over the limits
(per frame: mean ≤ 0.5/255 and max ≤ 4/255).

`--maps OLD NEW` compares instead two folders of predict's PNG maps (`<seq>/<frame>.png`) the same way,
every map NEW holds against OLD's (the issue's limit there: a mean change of at most 1/255 per frame).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MEAN_LIMIT, MAX_LIMIT = 0.5, 4.0  # per frame, in 1/255


# -- the worker: runs with whichever scnn_lightning PYTHONPATH names --------------------------------------
def compute(davis: Path, split: str, classifier: Path, into: Path) -> None:
    """Pt of every frame of the split, one float32 stack per sequence (written atomically)."""
    import scnn_lightning
    from scnn_lightning.data.io import read_frame
    from scnn_lightning.data.readers import load_index
    from scnn_lightning.motion.classifier import RegionClassifier
    from scnn_lightning.motion.flow import flow_for_frame
    from scnn_lightning.motion.temporal_prior import superpixel_prior
    from scnn_lightning.utils import atomic_path

    clf = RegionClassifier.load(classifier)
    into.mkdir(parents=True, exist_ok=True)
    (into / "code.txt").write_text(str(Path(scnn_lightning.__file__).resolve().parent) + "\n")
    for seq in load_index("davis", davis, split).sequences:
        target = into / f"{seq.name}.npz"
        if target.is_file():
            continue
        pts = [superpixel_prior(read_frame(seq.frames[i]), flow_for_frame(seq, i, "dis"), clf)
               for i in range(len(seq.frames))]
        with atomic_path(target) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, pt=np.stack(pts), names=np.array([f.name for f in seq.frames]))
        print(f"{seq.name}: {len(pts)} frames", flush=True)


def run_compute(code_root: Path, args: argparse.Namespace, into: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(code_root), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--compute", "--davis", str(args.davis),
           "--split", args.split, "--classifier", str(args.classifier), "--work", str(into)]
    subprocess.run(cmd, env=env, check=True)
    recorded = Path((into / "code.txt").read_text().strip())
    if recorded != (code_root / "scnn_lightning").resolve():
        raise RuntimeError(f"{into}: computed with {recorded}, expected the package under {code_root}")


# -- the comparison ------------------------------------------------------------------------------------
def frame_differences(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(mean, max) |a − b| of one frame, in 1/255 units."""
    d = np.abs(a.astype(np.float64) - b.astype(np.float64)) * 255
    return float(d.mean()), float(d.max())


def _sig(x: float) -> float:
    """Three significant digits (the differences span many orders of magnitude)."""
    return float(f"{float(x):.3g}")


def summarise(per_sequence: dict[str, list[tuple[float, float]]]) -> dict:
    def stats(rows: list[tuple[float, float]]) -> dict:
        means, maxes = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
        return {"frames": len(rows), "mean_abs": _sig(means.mean()), "worst_frame_mean_abs": _sig(means.max()),
                "max_abs": _sig(maxes.max()),
                "frames_over_limits": int(((means > MEAN_LIMIT) | (maxes > MAX_LIMIT)).sum())}

    everything = [r for rows in per_sequence.values() for r in rows]
    overall = stats(everything)
    return {"units": "1/255", "limits_per_frame": {"mean_abs": MEAN_LIMIT, "max_abs": MAX_LIMIT},
            "overall": {**overall, "holds": overall["frames_over_limits"] == 0},
            "sequences": {name: stats(rows) for name, rows in per_sequence.items()}}


def compare_priors(reference: Path, current: Path, names: list[str]) -> dict[str, list[tuple[float, float]]]:
    result = {}
    for name in names:
        with np.load(reference / f"{name}.npz") as ref, np.load(current / f"{name}.npz") as cur:
            if list(ref["names"]) != list(cur["names"]):
                raise RuntimeError(f"{name}: the two runs hold different frames")
            result[name] = [frame_differences(a, b) for a, b in zip(ref["pt"], cur["pt"])]
    return result


def compare_maps(old: Path, new: Path) -> dict[str, list[tuple[float, float]]]:
    """Every map of NEW (`<seq>/<frame>.png`; a partial run compares what it wrote) against OLD's."""
    import cv2

    result = {}
    for folder in sorted(p for p in new.iterdir() if p.is_dir()):
        rows = []
        for other in sorted(folder.glob("*.png")):
            png = old / folder.name / other.name
            a, b = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE), cv2.imread(str(other), cv2.IMREAD_GRAYSCALE)
            if a is None or b is None:
                raise RuntimeError(f"{png if a is None else other}: missing or unreadable map")
            rows.append(frame_differences(a / 255.0, b / 255.0))
        result[folder.name] = rows
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.prior_parity", description=__doc__.split("\n\n")[0])
    p.add_argument("--reference", type=Path, help="folder holding the reference copy of scnn_lightning/")
    p.add_argument("--davis", type=Path, help="DAVIS-2016 root (official layout)")
    p.add_argument("--split", default="val")
    p.add_argument("--classifier", type=Path, help="region classifier (default: the shipped one)")
    p.add_argument("--work", type=Path, help="where the maps of both codes are kept")
    p.add_argument("--maps", type=Path, nargs=2, metavar=("OLD", "NEW"), help="compare two folders of predict maps")
    p.add_argument("--out", type=Path, help="JSON file to write")
    p.add_argument("--compute", action="store_true", help=argparse.SUPPRESS)  # the per-code worker
    args = p.parse_args(argv)
    if args.classifier is None:
        from scnn_lightning.weights import default_checkpoint

        args.classifier = default_checkpoint().parent / "temporal" / "region_classifier.pt"
    if args.compute:
        compute(args.davis, args.split, args.classifier, args.work)
        return 0
    if args.out is None:
        p.error("--out is required")
    command = shlex.join(["python", "-m", "benchmarks.prior_parity", *(sys.argv[1:] if argv is None else argv)])
    from scnn_lightning.utils import write_json

    if args.maps:
        result = {"command": command, "compared": "predict maps (8-bit PNG)", **summarise(compare_maps(*args.maps))}
    else:
        if not (args.reference and args.davis and args.work):
            p.error("--reference, --davis and --work are required (or --maps OLD NEW)")
        run_compute(args.reference.resolve(), args, args.work / "reference")
        run_compute(ROOT, args, args.work / "current")
        names = sorted(f.stem for f in (args.work / "reference").glob("*.npz"))
        result = {"command": command, "compared": "Pt (float32) of every frame", "reference": str(args.reference),
                  "classifier": str(args.classifier), "split": args.split,
                  **summarise(compare_priors(args.work / "reference", args.work / "current", names))}
    write_json(args.out, result)
    print(json.dumps(result["overall"]))
    return 0 if result["overall"]["holds"] else 1


if __name__ == "__main__":
    sys.exit(main())
