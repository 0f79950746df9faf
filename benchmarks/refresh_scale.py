"""Memory and time of one weak-label refresh round against the number of training frames (issue 12).

    python -m benchmarks.refresh_scale --frames 200 2000 --out benchmarks/results/refresh_scale.json

For each frame count a fresh subprocess generates (once, under --work) synthetic clips of 100 frames at
240×427 with ground truth on every 10th frame, and runs a real `Trainer.fit` of two one-batch epochs with
`WeakLabelRefresh` (K = 3 static sources ft, mbd, rbd; random SCNN, magnitude motion prior) and empty
caches: round 0 fuses the static sources (computing and caching their maps and the flow), the first epoch
trains one batch, and round 1 — the one measured — adds the network's map. The second epoch is there because
no round follows the last epoch; it trains one batch on round 1. Each subprocess reports its
peak RSS (`os.wait4`), so the peaks are per frame count; `seconds_per_frame` is round 1's wall time
divided by the number of training frames (`cpu_seconds_per_frame` its process CPU time, less sensitive
to other load on a shared machine). The measured processes run at niceness `--nice` (default -10, where
allowed), ahead of other work on a shared machine: at niceness 0 on two cores busy with training runs, round
1's wall time was 2.5 times its CPU time at 200 frames and 1.85 times at 2000, which alone put the
seconds-per-frame ratio at 0.66. Streaming means the peaks stay level (goal: ≤ 1.1× from 200 to 2000
frames) and seconds per frame constant (±20 %). Output keys: frames, peak_rss_mib, seconds_per_frame
(lists in --frames order), plus cpu_seconds_per_frame, round0_seconds_per_frame (round 0, which also
computes every cached map), last_over_first (the last count's peak RSS and seconds per frame over the
first's: the goals' ratios) and the settings (with each process's niceness and the load average).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.measured_run import ROOT, run_measured
from scnn_lightning.utils import write_json

FRAMES_PER_CLIP = 100
LABEL_EVERY = 10


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, nargs="+", default=[200, 2000], help="training frame counts (×100)")
    p.add_argument("--out", type=Path, required=True, help="JSON file for the results")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "scnn_refresh_scale",
                   help="clips and caches (reused by later runs)")
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--width", type=int, default=427)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads of each measured process")
    p.add_argument("--nice", type=int, default=-10,
                   help="niceness of each measured process (below 0 needs root; otherwise it keeps its own)")
    p.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # internal: measure one count
    return p.parse_args(argv)


class Stopwatch:
    """Times WeakLabelRefresh's fit-start hook (round 0) and its first epoch-end hook (round 1): a callback
    listed just before it and one just after. Later epoch ends are not timed: they make no round."""

    def __init__(self):
        self.marks: dict[str, tuple[float, float]] = {}  # (wall, process CPU) seconds

    def callbacks(self):
        from lightning.pytorch.callbacks import Callback

        marks = self.marks

        class Mark(Callback):
            def __init__(self, name):
                self.name = name

            def on_fit_start(self, trainer, pl_module):
                marks[f"fit_start_{self.name}"] = (time.perf_counter(), time.process_time())

            def on_train_epoch_end(self, trainer, pl_module):
                marks.setdefault(f"epoch_end_{self.name}", (time.perf_counter(), time.process_time()))

        return Mark("before"), Mark("after")


def take_priority(niceness: int) -> int:
    """Run this process at `niceness` where allowed (lowering it needs root); returns the niceness it runs at."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
    except PermissionError:
        pass
    return os.getpriority(os.PRIO_PROCESS, 0)


def measure_one(args) -> dict:
    """Inside the subprocess: one fit with round 0 and round 1 on `args.one` frames."""
    import lightning as L
    import torch

    from scnn_lightning.data.datamodule import SaliencyDataModule
    from scnn_lightning.data.synthetic import ensure_clips
    from scnn_lightning.models.fcn import FCN
    from scnn_lightning.motion.provider import MotionProvider
    from scnn_lightning.training.module import SCNNModule
    from scnn_lightning.weak.callback import WeakLabelRefresh

    niceness = take_priority(args.nice)
    torch.set_num_threads(args.threads)
    clips = ensure_clips(args.work / f"clips{args.one}", sequences=args.one // FRAMES_PER_CLIP,
                         frames=FRAMES_PER_CLIP, height=args.height, width=args.width, seed=0,
                         sparse_every=LABEL_EVERY, val_fraction=0.0)
    work = args.work / f"run-{args.one}-{time.time_ns()}"  # fresh caches: round 0 computes every map
    dm = SaliencyDataModule(train=[{"dataset": "davis", "root": str(clips), "split": "train"}],
                            size=(args.height, args.width), batch_size=args.batch_size, val_fraction=0.0,
                            motion=MotionProvider(flow="dis", prior="magnitude", cache_dir=work / "motion"))
    L.seed_everything(0, verbose=False)
    fcn = dict(width=0.125, fc_channels=128, dropout=0.0)
    module = SCNNModule(**fcn, optimizer="adam", lr=1e-3, weight_decay=1e-4)
    module.init_from_stage1(FCN(**fcn))
    stopwatch = Stopwatch()
    before, after = stopwatch.callbacks()
    weak = WeakLabelRefresh(root=str(work / "weak"), sources=["ft", "mbd", "rbd"], cache_dir=str(work / "maps"))
    # Two epochs: round 1 is made after the first only because another epoch will train on it.
    trainer = L.Trainer(max_epochs=2, limit_train_batches=1, accelerator="cpu", devices=1, logger=False,
                        callbacks=[before, weak, after], enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                        reload_dataloaders_every_n_epochs=1)
    trainer.fit(module, datamodule=dm)
    marks, frames, manifest = stopwatch.marks, len(dm.train_entries), weak.store.manifest(1)
    shutil.rmtree(work)
    round1 = [b - a for a, b in zip(marks["epoch_end_before"], marks["epoch_end_after"])]
    round0 = [b - a for a, b in zip(marks["fit_start_before"], marks["fit_start_after"])]
    return {"frames": frames, "seconds_per_frame": round1[0] / frames, "cpu_seconds_per_frame": round1[1] / frames,
            "round0_seconds_per_frame": round0[0] / frames, "labels": manifest["count"],
            "heldout": manifest["holdout"]["count"], "niceness": niceness}


def run_subprocess(args, frames: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "benchmarks.refresh_scale", "--one", str(frames), "--out", str(args.out),
               "--work", str(args.work), "--height", str(args.height), "--width", str(args.width),
               "--batch-size", str(args.batch_size), "--threads", str(args.threads), "--nice", str(args.nice)]
    run = run_measured(command, env, f"refresh of {frames} frames")
    return {**json.loads(run.stdout.strip().splitlines()[-1]), "peak_rss_mib": run.peak_rss_mib}


def last_over_first(rows: list[dict]) -> dict:
    """The streaming goals' ratios: the last --frames count's figures over the first's."""
    return {key: round(rows[-1][key] / rows[0][key], 3)
            for key in ("peak_rss_mib", "seconds_per_frame", "cpu_seconds_per_frame")}


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.one is not None:
        print(json.dumps(measure_one(args)))
        return {}
    if any(n < FRAMES_PER_CLIP or n % FRAMES_PER_CLIP for n in args.frames):
        raise SystemExit(f"--frames must be multiples of {FRAMES_PER_CLIP}, got {args.frames}")
    load_before = os.getloadavg()  # other work on the machine inflates the wall times: say how much there was
    rows = [run_subprocess(args, n) for n in args.frames]
    if any(r["niceness"] != args.nice for r in rows):
        print(f"warning: measured at niceness {[r['niceness'] for r in rows]}, not {args.nice} (needs root): "
              f"other work on the machine is in the wall times", file=sys.stderr)
    result = {"frames": [r["frames"] for r in rows],
              "peak_rss_mib": [round(r["peak_rss_mib"], 1) for r in rows],
              "seconds_per_frame": [round(r["seconds_per_frame"], 4) for r in rows],
              "cpu_seconds_per_frame": [round(r["cpu_seconds_per_frame"], 4) for r in rows],
              "round0_seconds_per_frame": [round(r["round0_seconds_per_frame"], 4) for r in rows],
              "labels_written": [r["labels"] for r in rows], "heldout_frames": [r["heldout"] for r in rows],
              "last_over_first": last_over_first(rows),
              "settings": {"size": [args.height, args.width], "frames_per_clip": FRAMES_PER_CLIP,
                           "label_every": LABEL_EVERY, "sources": ["ft", "mbd", "rbd", "prediction"],
                           "batch_size": args.batch_size, "threads": args.threads, "host": platform.node(),
                           "niceness": [r["niceness"] for r in rows],
                           "cpu_count": os.cpu_count(), "load_average_before": [round(x, 2) for x in load_before],
                           "load_average_after": [round(x, 2) for x in os.getloadavg()],
                           "command": "python -m benchmarks.refresh_scale --frames "
                                      + " ".join(map(str, args.frames))}}
    write_json(args.out, result)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
