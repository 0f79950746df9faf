"""Per-component run time of SCNN inference, seconds per frame (the paper's Table II).

    python -m benchmarks.runtime --height 480 --width 854 --frames 3 --out runs/runtime.json

Components, timed separately on the same synthetic frames (a textured scene with a camera pan and a
moving disc; random network weights — run time does not depend on their values):
  flow            DIS optical flow of frame t → t+1 (motion/flow.py)
  temporal_prior  Pt of Eq. 6 from that flow: superpixels, truncated-VGG region features, MLP
  network         FCN1 (RGB) then FCN2 (RGB + prior), both full dilated VGG16 (`--width-mult`)
  crf             dense-CRF refinement of the final map (scnn_lightning/crf.py)
The JSON also holds each component's share of the total and `motion_over_network`, the cost of
flow + Pt relative to the network (our acceptance target: at most 0.15).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from scnn_lightning.models.fcn import FCN, spatial_prior
from scnn_lightning.models.vgg import VGG16Backbone
from scnn_lightning.motion.classifier import RegionClassifier
from scnn_lightning.motion.flow import compute_flow
from scnn_lightning.motion.regions import DEFAULT_DEPTH, IMAGENET_MEAN, IMAGENET_STD
from scnn_lightning.motion.temporal_prior import superpixel_prior
from scnn_lightning.utils import write_json

COMPONENTS = ("flow", "temporal_prior", "network", "crf")
MOTION_TARGET = 0.15


def synthetic_frames(n: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    """n RGB frames: a smooth random texture panning 3 px/frame and a brighter disc moving 6 px/frame."""
    rng = np.random.default_rng(seed)
    pad = 3 * n + 8
    small = rng.integers(0, 256, ((height + pad) // 8 + 1, (width + pad) // 8 + 1, 3), dtype=np.uint8)
    canvas = cv2.resize(small, (width + pad, height + pad), interpolation=cv2.INTER_CUBIC)
    frames = []
    for t in range(n):
        img = canvas[t:t + height, 3 * t:3 * t + width].copy()
        cv2.circle(img, (width // 4 + 6 * t, height // 2), min(height, width) // 6, (255, 200, 40), -1)
        frames.append(img)
    return frames


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0
    return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def measure(*, height: int, width: int, frames: int, width_mult: float = 1.0, depth: int = DEFAULT_DEPTH) -> dict:
    torch.manual_seed(0)
    imgs = synthetic_frames(frames + 1, height, width)
    # The prior's backbone is the stage-1 FCN's, i.e. the same width as the network.
    classifier = RegionClassifier.untrained(VGG16Backbone(width=width_mult), depth=depth)
    fcn1 = FCN(in_channels=3, width=width_mult).eval()
    fcn2 = FCN(in_channels=4, width=width_mult).eval()
    try:
        from scnn_lightning.crf import CRFParams, refine
    except ImportError:  # the CRF needs pydensecrf2; without it the column is absent, not faked
        refine = None
    times: dict[str, list[float]] = {c: [] for c in COMPONENTS}
    with torch.no_grad():
        superpixel_prior(imgs[0], compute_flow(imgs[0], imgs[1]), classifier)  # warm-up (allocations, caches)
        fcn1(_to_tensor(imgs[0])[..., :64, :64])
        for t in range(frames):
            t0 = time.perf_counter()
            flow = compute_flow(imgs[t], imgs[t + 1])
            t1 = time.perf_counter()
            pt = superpixel_prior(imgs[t], flow, classifier)
            t2 = time.perf_counter()
            x = _to_tensor(imgs[t])
            ps = spatial_prior(fcn1(x))
            prior = ps * torch.from_numpy(pt)[None, None]  # Eq. 4: P = Ps ⊗ Pt
            sal = spatial_prior(fcn2(torch.cat([x, prior], 1)))[0, 0].numpy()
            t3 = time.perf_counter()
            if refine is not None:
                refine(imgs[t], sal, CRFParams())
            t4 = time.perf_counter()
            for name, dt in zip(COMPONENTS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                times[name].append(dt)
    result: dict = {c: float(np.mean(v)) for c, v in times.items() if c != "crf" or refine is not None}
    result["total"] = sum(result[c] for c in COMPONENTS if c in result)
    for c in COMPONENTS:
        if c in result:
            result[f"{c}_ratio"] = result[c] / result["total"]
    result["motion_over_network"] = (result["flow"] + result["temporal_prior"]) / result["network"]
    result["motion_target_met"] = result["motion_over_network"] <= MOTION_TARGET
    result["setup"] = {"height": height, "width": width, "frames": frames, "width_mult": width_mult,
                       "prior_backbone_depth": depth, "torch_threads": torch.get_num_threads(),
                       "machine": platform.processor() or platform.machine()}
    return result


def format_table(result: dict) -> str:
    rows = [f"{'component':<16}{'s/frame':>10}{'share':>9}"]
    for c in COMPONENTS:
        if c in result:
            rows.append(f"{c:<16}{result[c]:>10.3f}{100 * result[c + '_ratio']:>8.1f}%")
    rows.append(f"{'total':<16}{result['total']:>10.3f}")
    rows.append(f"(flow + temporal prior) / network = {result['motion_over_network']:.3f} "
                f"(target <= {MOTION_TARGET}: {'met' if result['motion_target_met'] else 'NOT met'})")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.runtime", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=854)
    p.add_argument("--frames", type=int, default=3)
    p.add_argument("--width-mult", type=float, default=1.0)
    p.add_argument("--depth", type=int, default=DEFAULT_DEPTH, help="VGG blocks used for region features")
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    result = measure(height=args.height, width=args.width, frames=args.frames, width_mult=args.width_mult,
                     depth=args.depth)
    print(format_table(result))
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
