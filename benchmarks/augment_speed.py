"""Training augmentation on the CPU, in one run: albumentations sample by sample (what `data.augment` runs, in the
loader's workers) against kornia on the collated batch (the alternative: one call per batch, on its device).

    python -m benchmarks.augment_speed --out benchmarks/results/augment_speed.json

Both apply `data=davis`'s `data.augment` (random resized crop, flip, colour jitter), and the same without the
colour jitter, to a batch of 8 samples of 5 maps (image, next_image, mask, pt, flow_gray) at DAVIS's stored
240×427, cropped to the network's 120×216, with the same alignment: one geometric draw per sample for every map,
frames and priors bilinear and the mask nearest on the same pixel centres, one colour draw for a frame and its
partner. albumentations gets each sample as the dataset holds it (uint8 RGB, float32 mask and priors;
`scnn_lightning.data.augment.SampleAugment`); kornia gets the float tensors the loader collates (ImageNet-
normalised frames, jittered on their [0, 1] values). Milliseconds per batch: median of `--batches` timed batches
after `--warmup`, on `--threads` threads (torch and OpenCV). The JSON also records each pipeline's share of mask
pixels off the frame's threshold (striped frames, as in tests/test_augment.py; 0 is aligned), with
albumentations' default nearest neighbour (`INTER_NEAREST`) beside it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import kornia
import kornia.augmentation as K
import numpy as np
import torch
import yaml

from benchmarks.predict_fps import machine
from scnn_lightning.data.augment import AugmentSpec, SampleAugment, parse_augment
from scnn_lightning.data.transforms import NEAREST_KEYS, RGB_KEYS, denormalise, normalise
from scnn_lightning.utils import write_json

DAVIS_CONFIG = Path(__file__).resolve().parents[1] / "experiments" / "configs" / "data" / "davis.yaml"
FRAME = (240, 427)  # DAVIS-2016 as the study stores it
MAPS = ("image", "next_image", "mask", "pt", "flow_gray")


class KorniaBatchAugment:
    """The same transforms on a collated batch: every map stacked channel-wise through one crop and flip per sample
    (the mask as kornia's mask, nearest-exact on the half-pixel grid), then the jitter replayed on both frames."""

    def __init__(self, spec: AugmentSpec, size: tuple[int, int], frame: tuple[int, int]):
        steps = []
        if spec.scale is not None:
            aspect = frame[1] / frame[0]  # kornia's ratio is the crop's own width/height
            steps.append(K.RandomResizedCrop(size, scale=spec.scale, ratio=tuple(r * aspect for r in spec.ratio),
                                             align_corners=False, cropping_mode="slice"))
        if spec.flip:
            steps.append(K.RandomHorizontalFlip(p=0.5))
        self.geometry = K.AugmentationSequential(*steps, data_keys=["input", "mask"])
        self.jitter = K.ColorJitter(**dict(spec.color_jitter), p=1.0) if spec.color_jitter else None

    def __call__(self, batch: dict, seed: int) -> dict:
        with torch.random.fork_rng(devices=[]):  # kornia draws from the global CPU generator
            torch.default_generator.manual_seed(seed)
            smooth = [key for key in MAPS if key not in NEAREST_KEYS]
            moved, mask = self.geometry(torch.cat([batch[k] for k in smooth], 1), batch["mask"])
            out = dict(zip(smooth, torch.split(moved, [batch[k].shape[1] for k in smooth], 1)), mask=mask)
            if self.jitter is not None:
                params = self.jitter.forward_parameters(out["image"].shape)
                out.update({k: normalise(self.jitter(denormalise(out[k]), params=params)) for k in RGB_KEYS})
        return out


def striped_samples(count: int, size: tuple[int, int], seed: int) -> list[dict]:
    """Grey frames of vertical stripes at two levels, the mask above 0.5 and the level as priors: a bilinear
    step crosses 0.5 where a centred nearest neighbour switches, so the mask must stay the prior's threshold."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(count):
        levels = np.where(rng.random(size[1] // 3 + 1) < 0.5, 0.25, 0.75).repeat(3)[:size[1]].astype(np.float32)
        grey = np.broadcast_to(levels, size).copy()
        rgb = np.repeat(np.round(grey * 255).astype(np.uint8)[..., None], 3, axis=2)
        samples.append({"image": rgb, "next_image": rgb.copy(), "mask": (grey > 0.5).astype(np.float32),
                        "pt": grey, "flow_gray": 1.0 - grey})
    return samples


def collate(samples: list[dict]) -> dict:
    """The tensor batch the loader would give kornia."""
    stacked = {key: torch.from_numpy(np.stack([s[key] for s in samples])) for key in MAPS}
    return {key: normalise(x.permute(0, 3, 1, 2).float() / 255) if key in RGB_KEYS else x[:, None]
            for key, x in stacked.items()}


def time_ms(step, batches: int, warmup: int) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(batches):
        started = time.perf_counter()
        step()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def off_threshold(mask: np.ndarray, pt: np.ndarray) -> float:
    """Share of mask pixels that differ from the prior above 0.5; ties (a prior of exactly 0.5) left out."""
    sure = np.abs(pt - 0.5) > 1e-4
    return float(np.mean(mask[sure] != (pt[sure] > 0.5)))


def albumentations_off_threshold(augment: SampleAugment, samples: list[dict]) -> float:
    outs = [augment(s, seed=i) for i, s in enumerate(samples)]
    return off_threshold(np.stack([o["mask"] for o in outs]), np.stack([o["pt"] for o in outs]))


def with_default_nearest(augment: SampleAugment) -> SampleAugment:
    """`augment` with albumentations' default mask interpolation (`INTER_NEAREST`) in its crop."""
    augment.crop.mask_interpolation = cv2.INTER_NEAREST
    return augment


def compare(config: dict, size: tuple[int, int], args: argparse.Namespace) -> dict:
    spec = parse_augment(config)
    albu = SampleAugment(spec, size)
    korn = KorniaBatchAugment(spec, size, FRAME)
    samples = striped_samples(args.batch_size, FRAME, seed=0)
    batch = collate(samples)
    seeds = iter(range(10**9))
    albu_ms = time_ms(lambda: [albu(s, seed=next(seeds)) for s in samples], args.batches, args.warmup)
    korn_ms = time_ms(lambda: korn(batch, seed=next(seeds)), args.batches, args.warmup)
    korn_out = korn(batch, seed=1)
    return {"augment": config,
            "ms_per_batch": {"albumentations": round(albu_ms, 2), "kornia": round(korn_ms, 2)},
            "kornia_over_albumentations": round(korn_ms / albu_ms, 2),
            "mask_off_threshold": {
                "albumentations": albumentations_off_threshold(albu, samples),
                "kornia": off_threshold(korn_out["mask"].numpy(), korn_out["pt"].numpy()),
                "albumentations_inter_nearest": albumentations_off_threshold(
                    with_default_nearest(SampleAugment(spec, size)), samples)}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)

    data = yaml.safe_load(DAVIS_CONFIG.read_text())["data"]
    size = tuple(data["size"])
    geometry_only = {key: value for key, value in data["augment"].items() if key != "color_jitter"}
    rows = [{"transforms": "crop+flip+colour jitter", **compare(data["augment"], size, args)},
            {"transforms": "crop+flip", **compare(geometry_only, size, args)}]
    for row in rows:
        ms = row["ms_per_batch"]
        print(f"{row['transforms']}: albumentations {ms['albumentations']:.1f} ms, kornia {ms['kornia']:.1f} ms "
              f"per batch of {args.batch_size} ({row['kornia_over_albumentations']:.1f}×)", flush=True)
    write_json(args.out, {
        "batch_size": args.batch_size, "frame_size": list(FRAME), "output_size": list(size), "maps": list(MAPS),
        "threads": args.threads,
        "batches": args.batches, "rows": rows,
        "versions": {"albumentations": importlib.metadata.version("albumentations"), "kornia": kornia.__version__,
                     "opencv": cv2.__version__},
        "machine": {**machine(), "loadavg": list(os.getloadavg())},
        "command": "python -m benchmarks.augment_speed " + " ".join(sys.argv[1:] if argv is None else argv),
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
