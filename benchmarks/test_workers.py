"""The test phase's per-frame work (frame-size map, dense CRF, scores) in the test process vs `test_workers`
worker processes, on real frames, in one run.

    python -m benchmarks.test_workers --davis DATA/davis-2016-half --maps DATA/saliency-maps/davis-2016-half/csnet-x2 \
        --frames 64 --workers 0 2 --out benchmarks/results/test_workers.json

The network's output is stood in for by a saliency map of the frame shrunk to the network size (120×216 for
`data=davis`): the CRF's cost depends on the frame size and the iterations, not on where the map came from.
Frames go in batches as the test loader gives them; every setting starts its own `FrameScorer`, so the
workers' start-up is counted (and also given apart: a test phase pays it once, whatever its length). The
JSON keeps frames per second per setting, the speed-up over 0 workers, whether every setting gave the same
maps and scores, and the machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from benchmarks.predict_fps import machine
from scnn_lightning.crf import CRFParams
from scnn_lightning.data.io import read_frame, read_mask
from scnn_lightning.data.readers import load_index
from scnn_lightning.errors import DataError
from scnn_lightning.training.test_scoring import FrameScorer
from scnn_lightning.utils import write_json


def load_frames(davis: Path, maps: Path, count: int, network_size: tuple[int, int]) -> list[tuple]:
    """(network-size map in [0, 1], frame, mask) for the first `count` labelled val frames, sequence by sequence."""
    items = []
    for seq in load_index("davis", davis, "val").sequences:
        for ref in seq.frames:
            path = maps / seq.name / f"{ref.name}.jpg"
            saliency = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if saliency is None:
                raise DataError(path, "no saliency map for this frame")
            small = cv2.resize(saliency, network_size[::-1], interpolation=cv2.INTER_AREA).astype(np.float32) / 255
            items.append((small, read_frame(ref), read_mask(ref)))
            if len(items) == count:
                return items
    raise DataError(davis, f"val holds {len(items)} frames, fewer than the {count} asked for")


def time_setting(items: list[tuple], workers: int, batch_size: int) -> tuple[float, float, list]:
    """Seconds to make and score every frame with `workers` processes (start-up included), seconds until the
    workers were up, and the outputs."""
    started = time.perf_counter()
    scorer = FrameScorer(CRFParams(), workers)
    if scorer.pool is not None:
        scorer.pool.submit(int).result()  # the workers are up
    startup = time.perf_counter() - started
    outputs = []
    for i in range(0, len(items), batch_size):
        maps, frames, masks = zip(*items[i:i + batch_size])
        outputs += scorer(np.stack(maps), list(frames), list(masks))
    scorer.close()
    return time.perf_counter() - started, startup, outputs


def same(a: list, b: list) -> bool:
    return all(np.array_equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b, strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--davis", type=Path, required=True, help="DAVIS-2016 root (official layout)")
    parser.add_argument("--maps", type=Path, required=True, help="saliency maps <seq>/<frame>.jpg of the val frames")
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--network-size", type=int, nargs=2, default=[120, 216])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        items = load_frames(args.davis, args.maps, args.frames, tuple(args.network_size))
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    rows, first = [], None
    for workers in args.workers:
        seconds, startup, outputs = time_setting(items, workers, args.batch_size)
        first = first or outputs
        rows.append({"workers": workers, "seconds": round(seconds, 3), "startup_seconds": round(startup, 3),
                     "fps": round(len(items) / seconds, 3),
                     "fps_after_startup": round(len(items) / (seconds - startup), 3),
                     "same_as_first": same(first, outputs)})
        print(f"workers {workers}: {rows[-1]['fps']:.2f} frames/s", flush=True)
    base = rows[0]["seconds"]
    for row in rows:
        row["speedup_over_first"] = round(base / row["seconds"], 3)
    frame = items[0][1].shape[:2]
    write_json(args.out, {"frames": len(items), "frame_size": list(frame), "network_size": args.network_size,
                          "batch_size": args.batch_size, "crf": vars(CRFParams()), "rows": rows,
                          "machine": {**machine(), "loadavg": list(os.getloadavg())},
                          "command": "python -m benchmarks.test_workers " + " ".join(sys.argv[1:] if argv is None else argv)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
