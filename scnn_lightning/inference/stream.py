"""Streaming inference over sequences of any length: memory stays flat however long the video is.

Three stages connected by bounded queues, each frame passing once through each:

    reader thread   decode frame (and its flow partner) → flow → motion map → network inputs, computed in
                    this thread (`Settings.workers = 0`) or handed to motion worker processes
                    (`inference/workers.py`); either way the next frames' inputs are made while the network runs
    main thread     batches of `batch_size` frames through the network (one batch per network size)
    writer thread   map resized to the frame size → dense CRF (Eq. 9–10) there → PNG (atomic) → overlay video;
                    the prior maps asked for (`Settings.maps`) resized the same way, without the CRF, before it

Each map is made as the test step of training makes the map it scores (`predictions/<set>/<seq>/`):
the network inputs as a test item of `SaliencyDataModule` holds them (the frame and its motion maps,
computed at the frame's resolution, resized bilinearly by `data.transforms.resize`; the motion maps
rounded to 8 bits, as the motion cache serves them to training and testing), and the output through
`crf.frame_size_map`: the network-size map resized to the frame, refined there by the CRF against the
full-size frame, quantised to 8 bits. With the same frames in the same batches (the network's results
move by an ulp with the batch's composition) the PNGs equal the runner's byte for byte.

At most a few decoded frames live in the reader's window and `2 × batch_size` jobs in each queue, so
peak memory does not grow with the number of frames. A frame whose PNGs already exist is not processed
again (an interrupted run resumes; its saliency map is written last, so it marks a finished frame), but is
still decoded when it is another frame's flow partner or when the overlay video needs it; timings count
processed frames only. Where each file goes: `inference/outputs.py`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import defaultdict
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import torch
from tqdm import tqdm

from scnn_lightning.crf import CRFParams, frame_size_map
from scnn_lightning.data.io import read_frame
from scnn_lightning.data.records import SequenceRef
from scnn_lightning.data.transforms import resize, to_tensor_image, to_tensor_map
from scnn_lightning.errors import DataError
from scnn_lightning.inference.checkpoint import network_probability, prior_maps
from scnn_lightning.inference.motion import MotionStep
from scnn_lightning.inference.outputs import PRIOR_MAPS, SALIENCY, is_written, map_path, overlay_path
from scnn_lightning.inference.overlay import OverlayVideo, source_fps
from scnn_lightning.inference.workers import FramePool
from scnn_lightning.motion.cache import from_stored
from scnn_lightning.motion.flow import plan_flow
from scnn_lightning.training.module import SaliencyModule
from scnn_lightning.utils import to_uint8_map, write_png_map

STAGES = ("flow", "temporal_prior", "network", "crf")
_END = object()  # end of a queue's stream


@dataclass
class Settings:
    module: SaliencyModule
    out: Path
    nested: bool  # maps under <out>/<sequence>/ (datasets) rather than directly in <out>
    motion: MotionStep | None  # None for variants without motion inputs (sFCN, OS, stage 1)
    crf: CRFParams | None
    size: tuple[int, int] | None  # fixed network input (H, W); None = each frame's size rounded to 8
    device: torch.device
    batch_size: int = 4
    overlay: bool = False
    progress: bool = True
    workers: int = 0  # processes computing the motion inputs (0: the reader thread does)
    maps: tuple[str, ...] = ()  # prior maps written beside the saliency maps ("ps", "pt", "p")


@dataclass
class Job:
    """One frame on its way through the pipeline."""

    sequence: SequenceRef
    index: int
    png: Path
    prior_pngs: dict[str, Path]  # where its prior maps of `Settings.maps` go
    frame_size: tuple[int, int]
    done: bool  # its PNGs existed: only shown in the overlay
    last: bool  # last frame of its sequence (closes the overlay video)
    image: np.ndarray | None = None  # the frame, RGB uint8 (the CRF and the overlay use it; None if not decoded)
    net_size: tuple[int, int] | None = None
    inputs: dict[str, torch.Tensor] = field(default_factory=dict)  # "image" and motion maps, (C, H, W) at net_size
    pending: Future | None = None  # (inputs, seconds) on their way from `prepare_frame`
    saliency: np.ndarray | None = None  # network-size map in [0, 1]
    priors: dict[str, np.ndarray] = field(default_factory=dict)  # network-size prior maps in [0, 1]
    seconds: dict[str, float] = field(default_factory=dict)


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


def remove_stale_parts(sequences: list[SequenceRef], settings: Settings) -> None:
    """Delete the hidden temporary files a killed run left in the output folders (see `utils.atomic_path`)."""
    folders = {map_path(settings.out, s.frames[0], settings.nested, kind).parent
               for s in sequences for kind in (SALIENCY, *PRIOR_MAPS)}
    for folder in folders:
        if folder.is_dir():
            for part in folder.glob(".*.part.*"):
                part.unlink(missing_ok=True)


def rounded_size(frame_size: tuple[int, int], multiple: int = 8) -> tuple[int, int]:
    """The frame size rounded to the nearest multiple of 8 (the network's coarsest clean stride)."""
    return tuple(max(multiple, int(round(s / multiple)) * multiple) for s in frame_size)


def _resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if array.shape[:2] == tuple(size):
        return array
    return cv2.resize(array, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def network_inputs(image: np.ndarray, maps: dict[str, np.ndarray], size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """A frame's network inputs at `size`, made as `SaliencyDataModule` makes a test item: normalised and
    resized by torch (not cv2 on the uint8 frame, whose rounding would change the input), motion maps as
    the 8-bit values the motion cache gives training and testing (every run config caches them)."""
    sample = {"image": to_tensor_image(image)}
    sample.update({name: to_tensor_map(from_stored(to_uint8_map(m))) for name, m in maps.items()})
    return resize(sample, size)


def prepare_frame(motion: MotionStep | None, image: np.ndarray, partner: np.ndarray | None, rule: str,
                  size: tuple[int, int]) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """A frame's network inputs at `size` (as arrays: they may cross a process boundary) and the seconds of
    its motion steps; the work of the motion workers."""
    maps, seconds = motion(image, partner, rule) if motion is not None else ({}, {})
    return {name: t.numpy() for name, t in network_inputs(image, maps, size).items()}, seconds


class FrameWindow:
    """The decoded frames of one sequence around the current one; older frames are dropped."""

    def __init__(self, sequence: SequenceRef):
        self.sequence = sequence
        self.frames: dict[int, np.ndarray] = {}

    def get(self, index: int) -> np.ndarray:
        if index not in self.frames:
            self.frames[index] = read_frame(self.sequence.frames[index])
        return self.frames[index]

    def forget_before(self, index: int) -> None:
        for old in [i for i in self.frames if i < index]:
            del self.frames[old]


def _partner(sequence: SequenceRef, index: int) -> tuple[int | None, str]:
    """The flow partner's index and the pairing rule, exactly as the training pipeline pairs frames."""
    rule = plan_flow(sequence, index).rule
    return {"forward": index + 1, "backward-negated": index - 1}.get(rule), rule


def read_jobs(sequences: list[SequenceRef], settings: Settings, pool: FramePool) -> Iterator[Job]:
    """Reader stage: every frame in order, with its network inputs on their way (`Job.pending`) when its map
    is still to be made."""
    for sequence in sequences:
        window = FrameWindow(sequence)
        count = len(sequence.frames)
        for index, frame in enumerate(sequence.frames):
            window.forget_before(index - 1)  # t−1 may still be the last frame's partner
            png = map_path(settings.out, frame, settings.nested)
            priors = {name: map_path(settings.out, frame, settings.nested, name) for name in settings.maps}
            done = is_written(png) and all(map(is_written, priors.values()))
            job = Job(sequence, index, png, priors, (0, 0), done=done, last=index == count - 1)
            if job.done and not settings.overlay:
                yield job
                continue
            image = window.get(index)
            job.frame_size = image.shape[:2]
            job.image = image
            if not job.done:
                job.net_size = settings.size or rounded_size(job.frame_size)
                partner, rule = _partner(sequence, index) if settings.motion is not None else (None, "zero")
                partner_image = None if partner is None else window.get(partner)
                job.pending = pool.submit(image, partner_image, rule, job.net_size)
            yield job


def run_network(jobs: list[Job], settings: Settings) -> None:
    """Network stage: one batch of same-size frames; the time is shared equally among them. The prior maps
    asked for are computed after the timed pass, so `network` stays the time of the saliency maps alone."""
    for job in jobs:
        inputs, job.seconds = job.pending.result()
        job.inputs, job.pending = {name: torch.from_numpy(a) for name, a in inputs.items()}, None
    device = settings.device
    priors = {name: torch.stack([j.inputs[name] for j in jobs]).to(device) for name in jobs[0].inputs}
    image = priors.pop("image")
    start = time.perf_counter()
    maps = network_probability(settings.module, image, priors)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    share = (time.perf_counter() - start) / len(jobs)
    shown = {name: m.float().cpu().numpy() for name, m in prior_maps(settings.module, image, priors,
                                                                      settings.maps).items()}
    for i, (job, saliency) in enumerate(zip(jobs, maps.float().cpu().numpy())):
        job.saliency, job.seconds["network"] = saliency, share
        job.priors = {name: batch[i] for name, batch in shown.items()}
        job.inputs = {}


class Writer(threading.Thread):
    """Writer stage: CRF, PNG and overlay, in frame order; sums the per-frame timings."""

    def __init__(self, jobs: queue.Queue, settings: Settings, stop: threading.Event, bar: tqdm):
        super().__init__(daemon=True, name="saliency-writer")
        self.jobs, self.settings, self.stop, self.bar = jobs, settings, stop, bar
        self.error: BaseException | None = None
        self.sums: dict[str, float] = defaultdict(float)
        self.processed = 0
        self.first: Job | None = None
        self._video: OverlayVideo | None = None

    def run(self) -> None:
        try:
            while (job := _get(self.jobs, self.stop)) is not _END:
                if job is None:  # stopped from outside
                    break
                self.write(job)
        except BaseException as error:  # handed to the main thread, which re-raises it
            self.error = error
            self.stop.set()
        finally:
            if self._video is not None:
                # A finished sequence was closed in write(); what is open here was interrupted.
                self._video.abandon()

    def write(self, job: Job) -> None:
        s = self.settings
        if job.done:
            full = None
        else:
            for name, prior in job.priors.items():  # before the saliency map, which marks the frame done
                write_png_map(job.prior_pngs[name], frame_size_map(prior, job.image, None))
            start = time.perf_counter()
            saved = frame_size_map(job.saliency, job.image, s.crf)
            if s.crf is not None:  # the resize beside the CRF is a fraction of a millisecond
                job.seconds["crf"] = time.perf_counter() - start
            write_png_map(job.png, saved)
            full = saved.astype(np.float32) / 255.0  # the overlay shows what the PNG holds, as on a resumed run
            self.processed += 1
            self.first = self.first or job
            for key, value in job.seconds.items():
                self.sums[key] += value
        if s.overlay:
            if full is None:
                full = _read_map(job.png, job.frame_size)
            if self._video is None:
                seq = job.sequence
                video = seq.frames[0].image if seq.frames[0].video_index is not None else None
                self._video = OverlayVideo(overlay_path(s.out, seq, s.nested), source_fps(video))
            self._video.write(job.image, full)
            if job.last:
                self._video.close()
                self._video = None
        self.bar.update(1)


def _read_map(png: Path, size: tuple[int, int]) -> np.ndarray:
    gray = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
    if gray is None:
        raise DataError(png, "existing saliency map cannot be read (delete it to recompute it)")
    return _resize(gray.astype(np.float32) / 255.0, size)


def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
    """Blocking put that gives up when the pipeline is stopped."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event):
    """Blocking get that returns None when the pipeline is stopped."""
    while not stop.is_set():
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            continue
    return None


def _reader(sequences: list[SequenceRef], settings: Settings, pool: FramePool, out: queue.Queue,
            stop: threading.Event) -> None:
    try:
        for job in read_jobs(sequences, settings, pool):
            if not _put(out, job, stop):
                return
        _put(out, _END, stop)
    except BaseException as error:  # handed to the main thread, which re-raises it
        _put(out, _Failed(error), stop)


def stream_saliency(sequences: list[SequenceRef], settings: Settings) -> dict:
    """Run the pipeline over `sequences`; returns the summed timings (see `timing_summary`)."""
    remove_stale_parts(sequences, settings)
    stop = threading.Event()
    jobs: queue.Queue = queue.Queue(maxsize=2 * settings.batch_size)
    written: queue.Queue = queue.Queue(maxsize=2 * settings.batch_size)
    total = sum(len(s.frames) for s in sequences)
    started = time.perf_counter()
    pool = FramePool(prepare_frame, settings.motion, settings.workers if settings.motion is not None else 0)
    bar = tqdm(total=total, unit="frame", desc="saliency", disable=not settings.progress, dynamic_ncols=True)
    reader = threading.Thread(target=_reader, args=(sequences, settings, pool, jobs, stop), daemon=True,
                              name="saliency-reader")
    writer = Writer(written, settings, stop, bar)
    reader.start()
    writer.start()
    try:
        _network_loop(jobs, written, settings, stop, writer)
        _put(written, _END, stop)
        writer.join()
        if writer.error is not None:
            raise writer.error
    finally:
        stop.set()
        reader.join()
        writer.join()
        pool.close()
        bar.close()
    return {"sums": dict(writer.sums), "processed": writer.processed, "first": writer.first,
            "wall": time.perf_counter() - started}


def _network_loop(jobs: queue.Queue, written: queue.Queue, settings: Settings, stop: threading.Event,
                  writer: Writer) -> None:
    pending: list[Job] = []  # in frame order; done frames ride along so the writer keeps the order

    def flush() -> None:
        todo = [j for j in pending if not j.done]
        if todo:
            run_network(todo, settings)
        for job in pending:
            if not _put(written, job, stop):
                raise writer.error or RuntimeError("writer stopped")
        pending.clear()

    while True:
        item = _get(jobs, stop)
        if item is None:
            raise writer.error or RuntimeError("pipeline stopped")
        if item is _END:
            break
        if isinstance(item, _Failed):
            raise item.error
        todo = [j for j in pending if not j.done]
        if not item.done and todo and todo[0].net_size != item.net_size:
            flush()  # a batch holds one network size
        pending.append(item)
        if sum(not j.done for j in pending) >= settings.batch_size:
            flush()
    flush()


def timing_summary(result: dict, *, device: torch.device, variant: str, settings: Settings) -> dict:
    """Table II of the paper for this run: mean seconds per processed frame for each step.

    `flow`, `temporal_prior`, `network`, `crf` are the time spent in that step (null when the step does
    not run for this variant or option); `total` is wall-clock time of the whole run per processed frame
    (decoding, writing and overlay included; the stages overlap, so it is not their sum).
    """
    n = result["processed"]
    first: Job | None = result["first"]
    ran = {"flow": settings.motion is not None, "temporal_prior": settings.motion is not None,
           "network": True, "crf": settings.crf is not None}
    mean = {k: (round(result["sums"].get(k, 0.0) / n, 6) if n and ran[k] else None) for k in STAGES}
    total = result["wall"] / n if n else None
    return {**mean, "total": round(total, 6) if total else None, "fps": round(1 / total, 3) if total else None,
            "frames": n, "resolution": list(first.frame_size) if first else None,
            "network_size": list(first.net_size) if first else None, "device": str(device), "variant": variant,
            "batch_size": settings.batch_size, "torch_threads": torch.get_num_threads(),
            "motion_workers": settings.workers if settings.motion is not None else 0}
