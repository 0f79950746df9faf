"""Saliency maps for your own video: `python -m scnn_lightning.predict --input PATH [--ckpt CKPT] --out DIR`.

PATH is a video file (anything OpenCV decodes), a folder of frames, a folder of frame folders/videos,
or a dataset root with `--dataset NAME [--split S]`. One 8-bit PNG per frame is written at the frame's
resolution, named after the frame: `DIR/00000.png`… for one video or folder, `DIR/<seq>/<frame>.png`
for several sequences or a dataset (two frames of one name, such as 00001.jpg and 00001.png, are an
error, and so is a DIR inside PATH). `--overlay` adds `overlay.mp4` (the map as a red tint over the
frames) per sequence. `--maps ps,pt,p` adds the checkpoint's prior maps, what its cascade sees (Ps of
FCN1, the temporal prior Pt, P = Ps·Pt), 8-bit at the frame's size without the CRF, in a tree of the
saliency maps' layout: `DIR/priors/<map>/<frame>.png` or `DIR/priors/<map>/<seq>/<frame>.png`
(`evaluate --pred DIR/priors/ps` scores Ps alone; `evaluate --pred DIR` ignores them). `DIR/timings.json`
holds the paper's Table II for the run that made the maps: mean seconds per frame of flow, temporal
prior, network and CRF, and the wall-clock total. Without `--ckpt` the model shipped in the package is
used, `scnn_lightning/weights/scnn-davis.ckpt` (see `scnn_lightning.weights`).

Each variant gets exactly its own inputs (paper §IV-D): sFCN, OS and stage-1 checkpoints need no motion
(no flow is computed); FG gets the grey flow image; OT, FP, NA and SCNN get Pt. The superpixel Pt
(Eq. 6) needs the run's region classifier, found beside the checkpoint (`<run>/temporal/
region_classifier.pt`) or given with `--classifier`; a run trained with the magnitude prior predicts
with `--prior magnitude`. The dense CRF (Eq. 9–10) is on when the run was trained with one; `--no-crf`
is the paper's Fig. 9 comparison. Maps are made as the run's test step makes the maps it scores (the CRF
at the frame's size; see `inference/stream.py`). Defined edge cases (one-frame videos, frame sizes
changing mid-sequence): see `inference/motion.py`.

`DIR/predict.json` records the settings the maps were made with (the checkpoint's SHA-256, the CRF and
its parameters, the network size, the motion inputs, the prior maps written). A rerun into DIR with the
same settings resumes it (frames whose PNGs exist are skipped); with other settings it stops, naming what
differs, unless `--overwrite` deletes DIR's maps and recomputes them all (`inference/outputs.py`).

Bad input (unreadable video or frame, missing classifier, foreign or unreadable checkpoint, an output
folder that cannot be written, another run's settings) ends the command with one line on stderr and
exit status 2; all but an unreadable frame are found before any map is computed.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from scnn_lightning.crf import CRFParams
from scnn_lightning.data.readers import DATASETS, load_index
from scnn_lightning.errors import DataError, report_failure, writable_folder
from scnn_lightning.inference.checkpoint import LoadedCheckpoint, load_checkpoint
from scnn_lightning.inference.motion import MotionStep
from scnn_lightning.inference.outputs import (PRIOR_MAPS, TIMINGS, check_one_map_per_frame, check_outside_input,
                                              claim_folder, settings_record)
from scnn_lightning.inference.stream import Settings, stream_saliency, timing_summary
from scnn_lightning.inference.workers import default_workers
from scnn_lightning.motion.flow import FLOW_BACKENDS
from scnn_lightning.motion.provider import PRIORS, MotionProvider
from scnn_lightning.utils import write_json
from scnn_lightning.weights import default_checkpoint


def motion_step(loaded: LoadedCheckpoint, *, prior: str | None = None, classifier: str | Path | None = None,
                flow: str | None = None) -> MotionStep | None:
    """The motion inputs the checkpoint's variant needs, or None when it needs none.

    Defaults come from the run's recorded config when there is one, else: DIS flow, superpixel prior
    with the classifier of the checkpoint's run directory.
    """
    needs = loaded.motion_inputs
    if not needs:
        return None
    flow = flow or loaded.recorded("motion.flow") or "dis"
    if "pt" not in needs:  # FG: only the flow image, no prior (and so no classifier) is needed
        return MotionStep(MotionProvider(flow=flow, prior="magnitude"), needs)
    prior = prior or loaded.recorded("motion.prior") or "superpixel"
    if prior != "superpixel":
        return MotionStep(MotionProvider(flow=flow, prior=prior), needs)
    if classifier:
        path = Path(classifier)
    else:  # the one the run's config names (if that path exists here), else the one the run trained
        recorded = loaded.recorded("motion.classifier")
        path = Path(recorded) if recorded and Path(recorded).is_file() else loaded.classifier_path()
    if not path.is_file():
        raise DataError(path, f"variant {loaded.code} needs the temporal prior's region classifier and there is none "
                              f"here; pass --classifier FILE (a run's temporal/region_classifier.pt), or "
                              f"--prior magnitude if {loaded.path} was trained with the magnitude prior")
    return MotionStep(MotionProvider(flow=flow, prior=prior, classifier=path), needs)


def checked_maps(loaded: LoadedCheckpoint, maps: tuple[str, ...]) -> tuple[str, ...]:
    """The prior maps asked for, in the order of `PRIOR_MAPS`, once the checkpoint's cascade has them all."""
    lacking = [name for name in maps if name not in loaded.prior_maps]
    if lacking:
        has = ", ".join(loaded.prior_maps) or "none (it sees the frame alone)"
        raise DataError(loaded.path, f"variant {loaded.code} has no prior map {', '.join(lacking)}; "
                                     f"its prior maps: {has}")
    return tuple(name for name in PRIOR_MAPS if name in maps)


def predict(source: str | Path, ckpt: str | Path, out: str | Path, *, crf: bool | None = None, overlay: bool = False,
            size: tuple[int, int] | None = None, device: str = "cpu", dataset: str | None = None,
            split: str | None = None, batch_size: int = 4, classifier: str | Path | None = None,
            prior: str | None = None, flow: str | None = None, progress: bool = True,
            workers: int | None = None, maps: tuple[str, ...] = (), overwrite: bool = False) -> dict:
    """Write a saliency map per frame of `source` (the CLI's --input) under `out`; returns this run's timings
    (written to timings.json when it made a map).

    `crf`: None = as the run was trained (on if its hyper-parameters hold CRF parameters), True = on
    (the run's parameters, else the defaults of `CRFParams`), False = off. `size`: network input (H, W);
    None = the training size when the run recorded it, else each frame's size rounded to a multiple of 8.
    `workers`: processes computing flow and the motion maps beside the network (0: none, in the reading
    thread; None: `default_workers()`); the maps do not depend on it. `maps`: prior maps written beside the
    saliency maps (of "ps", "pt", "p"). `overwrite`: delete the maps of another run's settings and recompute.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    check_outside_input(source, out)
    out = writable_folder(out)
    loaded = load_checkpoint(ckpt)
    maps = checked_maps(loaded, maps)
    step = motion_step(loaded, prior=prior, classifier=classifier, flow=flow)
    index = load_index(dataset or "frames", source, split)
    sequences = [s for s in index.sequences if s.frames]
    if not sequences:
        raise DataError(source, "no frames found")
    nested = dataset is not None or len(sequences) > 1
    check_one_map_per_frame(sequences, out, nested)
    crf_params = None if crf is False else (loaded.crf or (CRFParams() if crf else None))
    net_size = tuple(size) if size else loaded.trained_size
    record = settings_record(checkpoint=loaded.path, variant=loaded.code,
                             crf=asdict(crf_params) if crf_params else None, network_size=net_size,
                             motion=step.provider.cache_key if step else None, maps=maps)
    claim_folder(out, record, sequences, nested, overwrite)
    torch_device = torch.device(device)
    loaded.module.to(torch_device)
    settings = Settings(module=loaded.module, out=out, nested=nested, motion=step, crf=crf_params, size=net_size,
                        device=torch_device, batch_size=batch_size, overlay=overlay, progress=progress,
                        workers=default_workers() if workers is None else workers, maps=maps)
    result = stream_saliency(sequences, settings)
    timings = timing_summary(result, device=torch_device, variant=loaded.code, settings=settings)
    timings.update(prior=step.provider.prior if step and "pt" in step.needs else None,
                   skipped=sum(len(s.frames) for s in sequences) - timings["frames"])
    if timings["frames"]:  # a rerun that made no map keeps the timings of the run that made them
        write_json(out / TIMINGS, timings)
    return timings


def parse_size(text: str) -> tuple[int, int]:
    """'HxW' → (H, W)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 120x216 (HxW), got {text!r}") from None
    if h < 8 or w < 8:
        raise argparse.ArgumentTypeError(f"size must be at least 8x8, got {text!r}")
    return h, w


def parse_maps(text: str) -> tuple[str, ...]:
    """'ps,pt,p' → ("ps", "pt", "p")."""
    names = tuple(dict.fromkeys(name.strip().lower() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in PRIOR_MAPS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"maps are a comma-separated list of {', '.join(PRIOR_MAPS)}, got {text!r}")
    return names


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scnn_lightning.predict", description=__doc__.split("\n\n")[0])
    p.add_argument("--input", required=True, help="video file, folder of frames, or dataset root (with --dataset)")
    p.add_argument("--ckpt", help="a run's checkpoints/last.ckpt (any variant) or a stage-1 one "
                                  "(default: the shipped scnn_lightning/weights/scnn-davis.ckpt)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--crf", action=argparse.BooleanOptionalAction, default=None,
                   help="dense CRF refinement (default: as the run was trained)")
    p.add_argument("--overlay", action="store_true", help="also write overlay.mp4 per sequence")
    p.add_argument("--maps", type=parse_maps, default=(), metavar="ps,pt,p",
                   help="also write these prior maps of the checkpoint (comma-separated: ps = FCN1's spatial "
                        "prior, pt = the temporal prior, p = Ps*Pt) to OUT/priors/<map>/[<seq>/]<frame>.png")
    p.add_argument("--overwrite", action="store_true",
                   help="recompute every map when OUT holds maps made with other settings (see OUT/predict.json)")
    p.add_argument("--size", type=parse_size, help="network input HxW (default: training size, else frame size)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--dataset", choices=sorted(DATASETS), help="read --input as a dataset root of this layout")
    p.add_argument("--split", help="dataset split (with --dataset)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--classifier", help="region classifier for the superpixel prior (default: the run's)")
    p.add_argument("--prior", choices=PRIORS, help="temporal prior (default: the run's, else superpixel)")
    p.add_argument("--flow", choices=FLOW_BACKENDS, help="optical flow backend (default: the run's, else dis)")
    p.add_argument("--workers", type=int, help="processes computing flow and the temporal prior beside the network "
                                               "(default: one per CPU core beyond two, at most 8; "
                                               "0 = in the reading thread)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be >= 1")
    if args.workers is not None and args.workers < 0:
        parser.error("--workers must be >= 0")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available here")
    try:
        ckpt = args.ckpt or default_checkpoint()
        timings = predict(args.input, ckpt, args.out, crf=args.crf, overlay=args.overlay, size=args.size,
                          device=args.device, dataset=args.dataset, split=args.split, batch_size=args.batch_size,
                          classifier=args.classifier, prior=args.prior, flow=args.flow,
                          progress=not args.no_progress, workers=args.workers, maps=args.maps,
                          overwrite=args.overwrite)
    except (DataError, OSError) as error:
        return report_failure(error)
    print(f"{timings['frames']} maps written to {args.out} ({timings['skipped']} already there); "
          f"{timings['fps'] or 0:.2f} frames/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
