"""Peak memory and speed of `python -m scnn_lightning.predict` (streaming claim; paper Table II).

    python -m benchmarks.predict_memory memory --frames 30 300 --size 240x320
    python -m benchmarks.predict_memory speed --size 480x854 --frames 12 --width 1.0

`memory` runs predict in a subprocess on generated videos of each length (same size, same random
network) and reads the child's peak RSS from `os.wait4`; streaming means the peaks stay level.
`speed` runs it on a generated video with a random-weight network of the given width (SCNN with the
superpixel prior and an untrained region classifier: the same cost as trained ones), with and without
the CRF, and reports timings.json (frames/s, seconds per step). Results are printed as JSON.
`python -m benchmarks.predict_fps` does the same with a real checkpoint on real frames (`with_and_without_crf`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

from benchmarks.measured_run import ROOT, run_measured
from scnn_lightning.data.synthetic import render_frame, sample_scene
from scnn_lightning.inference.checkpoint import save_inference_checkpoint
from scnn_lightning.motion.classifier import RegionClassifier
from scnn_lightning.predict import parse_size
from scnn_lightning.training.module import MODULES


def synthetic_video(path: Path, frames: int, size: tuple[int, int], seed: int = 0) -> Path:
    """A generated clip (moving camera, moving objects) written frame by frame as mp4v."""
    scene = sample_scene(np.random.default_rng(seed), frames=frames, height=size[0], width=size[1])
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (size[1], size[0]))
    for t in range(frames):
        writer.write(cv2.cvtColor(render_frame(scene, t)[0], cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def random_run(root: Path, *, width: float, fc_channels: int, seed: int = 0) -> Path:
    """An SCNN run directory with random weights and an untrained region classifier."""
    torch.manual_seed(seed)
    module = MODULES["SCNN"](width=width, fc_channels=fc_channels, dropout=0.0, crf={}).eval()
    (root / "checkpoints").mkdir(parents=True, exist_ok=True)
    RegionClassifier.untrained(module.model.fcn1.backbone).save(root / "temporal" / "region_classifier.pt")
    return save_inference_checkpoint(module, root / "checkpoints" / "last.ckpt")


def run_predict(args: list[str], threads: int | None) -> tuple[dict, float, float]:
    """(timings.json, peak RSS in MiB, wall seconds) of one predict subprocess (`threads`: its OMP_NUM_THREADS;
    None keeps this process's environment, so torch uses its default)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    out = Path(args[args.index("--out") + 1])
    run = run_measured([sys.executable, "-m", "scnn_lightning.predict", *args, "--no-progress"], env, "predict")
    return json.loads((out / "timings.json").read_text()), run.peak_rss_mib, run.wall_s


def memory(opts, work: Path) -> dict:
    ckpt = random_run(work / "run", width=opts.width, fc_channels=opts.fc_channels)
    rows = {}
    for frames in opts.frames:
        video = synthetic_video(work / f"clip{frames}.mp4", frames, opts.size)
        args = ["--input", str(video), "--ckpt", str(ckpt), "--out", str(work / f"out{frames}"), "--no-crf",
                "--batch-size", str(opts.batch_size)]
        timings, rss, wall = run_predict(args, opts.threads)
        rows[frames] = {"peak_rss_mib": round(rss, 1), "wall_s": round(wall, 1), "fps": timings["fps"]}
    peaks = [r["peak_rss_mib"] for r in rows.values()]
    return {"size": list(opts.size), "width": opts.width, "runs": rows,
            "max_over_min_peak": round(max(peaks) / min(peaks), 3)}


def with_and_without_crf(args: list[str], out: Path, threads: int | None) -> dict[str, dict]:
    """{"crf": …, "no-crf": …}: timings.json of one predict run with `args` (all but --out and the CRF
    option) under `out`/crf and `out`/no-crf, plus its peak RSS (MiB) and wall seconds (model loading included)."""
    rows = {}
    for crf in ("--crf", "--no-crf"):
        name = crf.strip("-")
        timings, rss, wall = run_predict([*args, "--out", str(out / name), crf], threads)
        rows[name] = {**timings, "peak_rss_mib": round(rss, 1), "wall_s": round(wall, 2)}
    return rows


def speed(opts, work: Path) -> dict:
    ckpt = random_run(work / "run", width=opts.width, fc_channels=opts.fc_channels)
    video = synthetic_video(work / "clip.mp4", opts.frames[0], opts.size)
    rows = with_and_without_crf(["--input", str(video), "--ckpt", str(ckpt), "--batch-size", str(opts.batch_size)],
                                work, opts.threads)
    return {"load_average": os.getloadavg(), "cpus": os.cpu_count(), "threads": opts.threads, "runs": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=("memory", "speed"))
    p.add_argument("--frames", type=int, nargs="+", default=[30, 300])
    p.add_argument("--size", type=parse_size, default=(240, 320), help="video HxW")
    p.add_argument("--width", type=float, default=0.25, help="VGG width multiplier of the random network")
    p.add_argument("--fc-channels", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the predict process")
    opts = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="predict_bench_") as tmp:
        result = (memory if opts.mode == "memory" else speed)(opts, Path(tmp))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
