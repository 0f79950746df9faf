"""Where the time of the temporal prior goes: milliseconds per frame of each step of Pt (Eq. 6), on real frames.

    python -m benchmarks.prior_profile --label after --out benchmarks/results/prior_profile.json \
        --input 427x240=DATA/davis-2016-half/JPEGImages/480p/blackswan \
        --input 854x480=DATA/davsod-format/DAVIS/blackswan/Imgs

Two configurations per input folder: `shipped` (the package's region classifier, width 1/8, as predict uses
it) and, with `--full-width LABEL`, an untrained classifier on a full-width VGG16 (same cost as a trained
one). The steps are run one after the other on one thread (`--threads`, the setting of predict's motion
workers), each timed on its own, then the whole `superpixel_prior` call as a check that they add up.
The JSON keeps one section per `--label` (written atomically; other labels already in the file stay),
with the load average: the CPU may be shared, so compare steps within one section. (The `before` section
of benchmarks/results/prior_profile.json was measured by this script at commit 5d44538, on the code of fdc2235.)
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from benchmarks.predict_fps import machine, parse_input
from scnn_lightning.data.io import read_frame
from scnn_lightning.data.readers import load_index
from scnn_lightning.errors import DataError
from scnn_lightning.models.vgg import VGG16Backbone
from scnn_lightning.motion.classifier import RegionClassifier
from scnn_lightning.motion.flow import compute_flow
from scnn_lightning.motion.clock import StepClock
from scnn_lightning.motion.temporal_prior import PRIOR_STEPS, superpixel_prior
from scnn_lightning.utils import write_json
from scnn_lightning.weights import default_checkpoint


def frames_of(folder: Path, count: int) -> list[np.ndarray]:
    sequences = [s for s in load_index("frames", folder).sequences if s.frames]
    if len(sequences) != 1 or len(sequences[0].frames) < count:
        raise DataError(folder, f"expected one folder of at least {count} frames")
    return [read_frame(f) for f in sequences[0].frames[:count]]


def profile(frames: list[np.ndarray], classifier: RegionClassifier) -> dict:
    """Mean milliseconds per frame of the flow and of each step of the prior (first frame: warm-up only)."""
    sums = dict.fromkeys(("flow", *PRIOR_STEPS, "prior_steps_sum", "prior_one_call"), 0.0)
    pairs = list(zip(frames[:-1], frames[1:]))
    for i, (image, partner) in enumerate(pairs):
        start = time.perf_counter()
        flow = compute_flow(image, partner)
        flow_seconds = time.perf_counter() - start
        clock = StepClock()
        superpixel_prior(image, flow, classifier, clock=clock)
        steps = clock.seconds
        start = time.perf_counter()
        superpixel_prior(image, flow, classifier)
        whole = time.perf_counter() - start
        if i == 0:
            continue
        sums["flow"] += flow_seconds
        for name, seconds in steps.items():
            sums[name] += seconds
        sums["prior_steps_sum"] += sum(steps.values())
        sums["prior_one_call"] += whole
    n = len(pairs) - 1
    return {name: round(1000 * s / n, 2) for name, s in sums.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.prior_profile", description=__doc__.split("\n\n")[0])
    p.add_argument("--input", type=parse_input, action="append", required=True, metavar="LABEL=FOLDER")
    p.add_argument("--full-width", action="append", default=[], metavar="LABEL",
                   help="also profile this input with a full-width (VGG16 width 1.0) untrained classifier")
    p.add_argument("--frames", type=int, default=11, help="frames per input (the first is a warm-up)")
    p.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads")
    p.add_argument("--label", required=True, help="section of the JSON to (re)write, e.g. before or after")
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    shipped = RegionClassifier.load(default_checkpoint().parent / "temporal" / "region_classifier.pt")
    torch.manual_seed(0)
    full = RegionClassifier.untrained(VGG16Backbone(width=1.0))
    load_before = os.getloadavg()
    rows = []
    try:
        for label, folder in args.input:
            frames = frames_of(folder, args.frames + 1)
            configs = [("shipped", shipped)] + ([("full_width", full)] if label in args.full_width else [])
            for name, classifier in configs:
                row = {"input": label, "folder": str(folder), "classifier": name,
                       "backbone_width": classifier.backbone_width, "resolution": list(frames[0].shape[:2]),
                       "ms_per_frame": profile(frames, classifier)}
                rows.append(row)
                print(f"{label} {name}: " + ", ".join(f"{k} {v}" for k, v in row["ms_per_frame"].items()))
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    sections = json.loads(args.out.read_text()) if args.out.is_file() else {}
    sections[args.label] = {
        "command": shlex.join(["python", "-m", "benchmarks.prior_profile", *(sys.argv[1:] if argv is None else argv)]),
        "frames": args.frames, "threads": args.threads,
        "machine": {**machine(), "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "rows": rows}
    write_json(args.out, sections)
    return 0


if __name__ == "__main__":
    sys.exit(main())
