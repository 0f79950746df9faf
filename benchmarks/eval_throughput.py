"""Evaluation throughput: our torch SOD metrics vs PySODMetrics on the same generated maps.

    python -m benchmarks.eval_throughput --maps 50 --height 480 --width 854 --out runs/eval_throughput.json

Both sides compute the same nine figures (MAE, max/mean/adaptive F, S, max/mean/adaptive E,
weighted F) from the same 8-bit maps; the script prints maps/s for each, the ratio, and the largest
difference between the two sets of numbers (they must agree within `--tolerance`, else exit 1).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import warnings

import cv2
import numpy as np
import torch

from scnn_lightning.metrics import SODMetrics
from scnn_lightning.utils import write_json

KEYS = ("mae", "max_f", "mean_f", "adp_f", "s_measure", "max_e", "mean_e", "adp_e", "w_f")


def generate_maps(n: int, height: int, width: int, seed: int = 0):
    """n (uint8 prediction, uint8 0/255 mask) pairs: a moving ellipse and a blurred, noisy, offset guess."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    pairs = []
    for i in range(n):
        cy, cx = height * (0.3 + 0.4 * rng.random()), width * (0.3 + 0.4 * rng.random())
        ry, rx = height * (0.1 + 0.2 * rng.random()), width * (0.1 + 0.2 * rng.random())
        mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
        guess = np.roll(mask.astype(np.float32), (int(rng.integers(-15, 16)), int(rng.integers(-15, 16))), (0, 1))
        guess = cv2.GaussianBlur(guess, (0, 0), 4 + 8 * rng.random()) + 0.15 * rng.random((height, width))
        pred = np.round(np.clip(guess, 0, 1) * 255).astype(np.uint8)
        pairs.append((pred, mask.astype(np.uint8) * 255))
    return pairs


def run_ours(pairs, batch: int) -> dict:
    metric = SODMetrics()
    for start in range(0, len(pairs), batch):
        chunk = pairs[start : start + batch]
        pred = torch.from_numpy(np.stack([p for p, _ in chunk])).float() / 255
        gt = torch.from_numpy(np.stack([g for _, g in chunk]))
        metric.update(pred, gt)
    result = metric.compute()
    return {k: result[k] for k in KEYS}


def run_pysodmetrics(pairs) -> dict:
    import py_sod_metrics as sod

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its Fmeasure class announces a future deprecation
        fm, mae, sm, em, wfm = sod.Fmeasure(), sod.MAE(), sod.Smeasure(), sod.Emeasure(), sod.WeightedFmeasure()
        for pred, gt in pairs:
            for metric in (fm, mae, sm, em, wfm):
                metric.step(pred, gt)
        f, e = fm.get_results()["fm"], em.get_results()["em"]
    return {
        "mae": float(mae.get_results()["mae"]), "max_f": float(f["curve"].max()), "mean_f": float(f["curve"].mean()),
        "adp_f": float(f["adp"]), "s_measure": float(sm.get_results()["sm"]), "max_e": float(e["curve"].max()),
        "mean_e": float(e["curve"].mean()), "adp_e": float(e["adp"]), "w_f": float(wfm.get_results()["wfm"]),
    }


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.eval_throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--maps", type=int, default=50)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--batch", type=int, default=8, help="maps per SODMetrics.update call")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--out", default=None, help="JSON file for the figures")
    args = parser.parse_args(argv)
    if args.maps < 1 or args.height < 2 or args.width < 2 or args.batch < 1:
        parser.error("--maps and --batch must be >= 1, --height and --width >= 2")

    pairs = generate_maps(args.maps, args.height, args.width)
    run_ours(pairs[:1], 1)  # warm-up: first-call allocations and imports are not throughput
    ours, ours_s = timed(run_ours, pairs, args.batch)
    ref, ref_s = timed(run_pysodmetrics, pairs)
    diffs = {k: abs(ours[k] - ref[k]) for k in KEYS}
    report = {
        "maps": args.maps, "height": args.height, "width": args.width, "batch": args.batch,
        "torch_threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
        "ours_seconds": ours_s, "pysodmetrics_seconds": ref_s,
        "ours_maps_per_s": args.maps / ours_s, "pysodmetrics_maps_per_s": args.maps / ref_s,
        "speedup": ref_s / ours_s,
        "max_abs_difference": max(diffs.values()), "agree": max(diffs.values()) <= args.tolerance,
        "ours": ours, "pysodmetrics": ref,
    }
    print(f"{args.maps} maps of {args.height}x{args.width}, torch threads {report['torch_threads']}")
    print(f"  ours          {report['ours_maps_per_s']:8.2f} maps/s")
    print(f"  PySODMetrics  {report['pysodmetrics_maps_per_s']:8.2f} maps/s")
    print(f"  speed-up {report['speedup']:.2f}x; largest difference {report['max_abs_difference']:.2e} "
          f"({'agree' if report['agree'] else 'DISAGREE'} within {args.tolerance:g})")
    if args.out:
        write_json(args.out, report)
    return 0 if report["agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
