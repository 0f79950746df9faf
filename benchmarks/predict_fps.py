"""Frames per second of `python -m scnn_lightning.predict` with a trained checkpoint on real frames, with and
without the dense CRF (issue 13; the paper's Table II for a user's video).

    python -m benchmarks.predict_fps --ckpt CKPT \
        --input 427x240=DATA/davis-2016-half/JPEGImages/480p/blackswan \
        --input 854x480=DATA/davsod-format/DAVIS/blackswan/Imgs \
        --frames 30 --out benchmarks/results/predict_fps.json

`--input LABEL=FOLDER` names a folder of frames (any folder predict reads as one sequence); only its first
`--frames` frames, in predict's order, are linked into a scratch folder and used. Without `--ckpt` the model
shipped in the package is measured. Each input runs predict twice in a fresh process (`--crf`, `--no-crf`;
`benchmarks.predict_memory.with_and_without_crf`), with the network input size predict picks for the
checkpoint (its training size) unless `--size` is given. The JSON (written atomically) holds, per input and
CRF setting, frames/s and seconds per frame of each stage (predict's timings.json: `flow`,
`temporal_prior`, `network`, `crf`, and `total`, the wall clock per frame, decoding and writing included),
the frame and network sizes, `motion_over_network` ((flow + temporal prior) / network, per frame: what the
motion inputs cost against the network), predict's motion workers, peak memory, and the machine (platform,
CPU count, torch threads of the predict process, load average) and command line.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.predict_memory import with_and_without_crf
from scnn_lightning.data.readers import load_index
from scnn_lightning.errors import DataError
from scnn_lightning.predict import parse_size
from scnn_lightning.utils import write_json
from scnn_lightning.weights import default_checkpoint

STAGE_KEYS = ("flow", "temporal_prior", "network", "crf", "total")


def parse_input(text: str) -> tuple[str, Path]:
    """'LABEL=FOLDER' → (LABEL, FOLDER)."""
    label, sep, folder = text.partition("=")
    if not sep or not label or not folder:
        raise argparse.ArgumentTypeError(f"--input must look like 427x240=path/to/frames, got {text!r}")
    return label, Path(folder)


def first_frames(folder: Path, count: int, into: Path) -> Path:
    """A folder of links to the first `count` frames of `folder`, in the order predict reads them."""
    sequences = [s for s in load_index("frames", folder).sequences if s.frames]
    if len(sequences) != 1 or sequences[0].frames[0].video_index is not None:
        raise DataError(folder, f"expected one folder of frame images, found {len(sequences)} sequence(s) "
                                f"or a video")
    frames = sequences[0].frames[:count]
    if len(frames) < count:
        raise DataError(folder, f"holds {len(frames)} frames, --frames asks for {count}")
    into.mkdir(parents=True)
    for frame in frames:
        (into / Path(frame.image).name).symlink_to(Path(frame.image).resolve())
    return into


def motion_over_network(timings: dict) -> float | None:
    """(flow + temporal prior) / network seconds per frame; None for a variant without motion inputs."""
    if timings.get("flow") is None or not timings.get("network"):
        return None
    return round((timings["flow"] + (timings.get("temporal_prior") or 0.0)) / timings["network"], 3)


def run_row(timings: dict) -> dict:
    """What the JSON keeps of one predict run."""
    return {"fps": timings["fps"], "seconds_per_frame": {k: timings[k] for k in STAGE_KEYS},
            "motion_over_network": motion_over_network(timings), "motion_workers": timings.get("motion_workers"),
            "frames": timings["frames"], "resolution": timings["resolution"],
            "network_size": timings["network_size"], "batch_size": timings["batch_size"],
            "torch_threads": timings["torch_threads"], "device": timings["device"], "variant": timings["variant"],
            "prior": timings.get("prior"), "peak_rss_mib": timings["peak_rss_mib"], "wall_s": timings["wall_s"]}


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "torch": torch.__version__, "cpu_count": os.cpu_count(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}


def measure(ckpt: Path, inputs: list[tuple[str, Path]], *, frames: int, batch_size: int, device: str,
            size: tuple[int, int] | None, threads: int | None, work: Path, workers: int | None = None) -> list[dict]:
    """One row per input and CRF setting, in the order given."""
    rows = []
    for i, (label, folder) in enumerate(inputs):
        clip = first_frames(folder, frames, work / f"input{i}" / folder.name)
        args = ["--input", str(clip), "--ckpt", str(ckpt), "--batch-size", str(batch_size), "--device", device]
        args += ["--size", f"{size[0]}x{size[1]}"] if size else []
        args += ["--workers", str(workers)] if workers is not None else []
        for crf, timings in with_and_without_crf(args, work / f"out{i}", threads).items():
            rows.append({"input": label, "folder": str(folder), "crf": crf == "crf", **run_row(timings)})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.predict_fps", description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", help="checkpoint to measure (default: the shipped scnn_lightning/weights/scnn-davis.ckpt)")
    p.add_argument("--input", type=parse_input, action="append", required=True, metavar="LABEL=FOLDER",
                   help="a folder of frames and the name its rows get (repeat for several)")
    p.add_argument("--frames", type=int, default=30, help="frames used from each folder (its first ones)")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--batch-size", type=int, default=4, help="predict's --batch-size")
    p.add_argument("--size", type=parse_size, help="predict's --size (default: the checkpoint's training size)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="OMP_NUM_THREADS of predict (default: as this process)")
    p.add_argument("--workers", type=int, help="predict's --workers (default: predict's own default)")
    args = p.parse_args(argv)
    if args.frames < 1:
        p.error("--frames must be >= 1")
    try:
        ckpt = Path(args.ckpt) if args.ckpt else default_checkpoint()
        if not ckpt.is_file():
            raise DataError(ckpt, "no such checkpoint")
        load_before = os.getloadavg()
        with tempfile.TemporaryDirectory(prefix="predict_fps_") as tmp:
            rows = measure(ckpt, args.input, frames=args.frames, batch_size=args.batch_size, device=args.device,
                           size=args.size, threads=args.threads, work=Path(tmp), workers=args.workers)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    result = {"command": shlex.join(["python", "-m", "benchmarks.predict_fps", *(sys.argv[1:] if argv is None
                                                                                 else argv)]),
              "checkpoint": str(ckpt), "frames": args.frames,
              "machine": {**machine(), "load_average_before": list(load_before),
                          "load_average_after": list(os.getloadavg())},
              "runs": rows}
    write_json(args.out, result)
    for row in rows:
        print(f"{row['input']:>12} crf={'on ' if row['crf'] else 'off'} {row['fps']:.3f} frames/s "
              f"(network {row['network_size'][0]}x{row['network_size'][1]}; flow + prior / network "
              f"{row['motion_over_network']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
