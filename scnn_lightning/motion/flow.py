"""Optical flow for the temporal prior (paper §III-B, Fig. 3): backends, `.flo` files, visualisation.

A flow map is `(H, W, 2) float32`: (u, v) in pixels, the displacement of each pixel of frame t
to frame t+1. Backends:
  - "dis":       OpenCV DIS flow, MEDIUM preset (a good speed/quality balance: ~20 ms at 854×480 on
                 one core, while ULTRAFAST misses thin structures and FAST is noticeably noisier);
  - "farneback": OpenCV Farneback (slower, smoother; kept as the classic reference);
  - a `FloFolder`: precomputed Middlebury `.flo` files (e.g. from a stronger flow network).

Last-frame rule (GUIDE §3.12: N frames give N−1 pairs): frame t = N−1 has no successor, so we use
the backward flow t → t−1, negated, which still points forward in time under locally constant
motion. A `FloFolder` holds forward flow only, so there the last frame reuses the forward flow of
frame N−2 (the same constant-motion assumption). A one-frame sequence (or a still image) gets zero
flow: there is no motion evidence at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from scnn_lightning.data.records import FrameRef, SequenceRef
from scnn_lightning.errors import DataError
from scnn_lightning.utils import atomic_path

FLO_MAGIC = np.float32(202021.25)
FLOW_BACKENDS = ("dis", "farneback")


# ---------------------------------------------------------------- computing flow

def _gray(img: np.ndarray) -> np.ndarray:
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {img.dtype} {img.shape}")
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)


def compute_flow(img0: np.ndarray, img1: np.ndarray, backend: str = "dis") -> np.ndarray:
    """Dense flow img0 → img1 (RGB uint8, same size) as (H, W, 2) float32 pixels."""
    if backend not in FLOW_BACKENDS:
        raise ValueError(f"unknown flow backend {backend!r}; valid: {', '.join(FLOW_BACKENDS)}")
    g0, g1 = _gray(img0), _gray(img1)
    if g0.shape != g1.shape:
        raise ValueError(f"frames differ in size: {g0.shape} vs {g1.shape}")
    if backend == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        flow = dis.calc(g0, g1, None)
    else:
        flow = cv2.calcOpticalFlowFarneback(g0, g1, None, pyr_scale=0.5, levels=4, winsize=15,
                                            iterations=3, poly_n=5, poly_sigma=1.1, flags=0)
    return np.ascontiguousarray(flow, dtype=np.float32)


# ---------------------------------------------------------------- Middlebury .flo files

def read_flo(path: str | Path) -> np.ndarray:
    """Read a Middlebury `.flo` file: float32 magic 202021.25, int32 W, int32 H, H×W×2 float32."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "flow file not found")
    raw = path.read_bytes()
    if len(raw) < 12:
        raise DataError(path, f"too short for a .flo header ({len(raw)} bytes)")
    magic = np.frombuffer(raw, "<f4", 1, 0)[0]
    if magic != FLO_MAGIC:
        raise DataError(path, f"bad .flo magic {magic!r} (expected {float(FLO_MAGIC)})")
    w, h = (int(x) for x in np.frombuffer(raw, "<i4", 2, 4))
    if w <= 0 or h <= 0:
        raise DataError(path, f"bad .flo size {w}x{h}")
    expected = 12 + 8 * w * h
    if len(raw) != expected:
        raise DataError(path, f"size {len(raw)} bytes does not match a {w}x{h} flow ({expected} bytes)")
    flow = np.frombuffer(raw, "<f4", 2 * w * h, 12).reshape(h, w, 2).astype(np.float32)
    if not np.isfinite(flow).all():
        raise DataError(path, "flow contains NaN or infinite values")
    return flow


def write_flo(path: str | Path, flow: np.ndarray) -> None:
    """Write (H, W, 2) flow as a Middlebury `.flo` file, atomically."""
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be (H, W, 2), got {flow.shape}")
    h, w = flow.shape[:2]
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(FLO_MAGIC.astype("<f4").tobytes())
            fh.write(np.array([w, h], "<i4").tobytes())
            fh.write(np.ascontiguousarray(flow, "<f4").tobytes())


class FloFolder:
    """Precomputed forward flow: `<root>/<sequence>/<stem>.flo` holds the flow of frame <stem> to the next."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, frame: FrameRef) -> Path:
        return self.root / frame.sequence / f"{frame.name}.flo"

    def __repr__(self) -> str:
        return f"FloFolder({str(self.root)!r})"


def _read(frame: FrameRef) -> np.ndarray:
    from scnn_lightning.data.io import read_frame  # the data package owns decoding

    return read_frame(frame)


@dataclass(frozen=True)
class FlowPlan:
    """Which inputs give the flow of one frame (the rule of the module docstring), so caches can key on them."""

    rule: Literal["forward", "backward-negated", "zero", "file"]
    frame: FrameRef
    partner: FrameRef | None = None  # the other frame of the pair ("forward", "backward-negated")
    flo: Path | None = None  # the precomputed file ("file")


def plan_flow(seq: SequenceRef, index: int, backend: str | FloFolder = "dis") -> FlowPlan:
    frames = seq.frames
    if not 0 <= index < len(frames):
        raise IndexError(f"frame {index} outside sequence {seq.name!r} of {len(frames)} frames")
    frame = frames[index]
    if len(frames) == 1 or not seq.temporal:
        return FlowPlan("zero", frame)
    if isinstance(backend, FloFolder):
        return FlowPlan("file", frame, flo=backend.path(frames[min(index, len(frames) - 2)]))
    if index + 1 < len(frames):
        return FlowPlan("forward", frame, frames[index + 1])
    return FlowPlan("backward-negated", frame, frames[index - 1])


def flow_for_frame(seq: SequenceRef, index: int, backend: str | FloFolder = "dis") -> np.ndarray:
    """Forward flow of frame `index` of `seq`, following the last-frame rule in the module docstring."""
    return run_plan(plan_flow(seq, index, backend), backend)


def run_plan(plan: FlowPlan, backend: str | FloFolder) -> np.ndarray:
    if plan.rule == "file":
        if not plan.flo.is_file():
            raise DataError(plan.flo, f"missing precomputed flow for frame {plan.frame.sequence}/{plan.frame.name}")
        return read_flo(plan.flo)
    img = _read(plan.frame)
    if plan.rule == "zero":
        return np.zeros(img.shape[:2] + (2,), np.float32)
    flow = compute_flow(img, _read(plan.partner), backend)
    return flow if plan.rule == "forward" else -flow


# ---------------------------------------------------------------- visualisation

# Hue segments of the Middlebury colour wheel (Baker et al., IJCV 2011), red → yellow → green → cyan →
# blue → magenta → back to red.
_WHEEL_SEGMENTS = ((15, (255, 0, 0), (255, 255, 0)), (6, (255, 255, 0), (0, 255, 0)),
                   (4, (0, 255, 0), (0, 255, 255)), (11, (0, 255, 255), (0, 0, 255)),
                   (13, (0, 0, 255), (255, 0, 255)), (6, (255, 0, 255), (255, 0, 0)))


def _colour_wheel() -> np.ndarray:
    """(55, 3) float RGB: each segment linearly interpolates between its two end colours."""
    parts = []
    for n, start, end in _WHEEL_SEGMENTS:
        t = np.arange(n)[:, None] / n
        parts.append((1 - t) * np.array(start) + t * np.array(end))
    return np.concatenate(parts).astype(np.float32)


_WHEEL = _colour_wheel()


def flow_to_color(flow: np.ndarray, max_radius: float | None = None) -> np.ndarray:
    """Middlebury colouring: hue = direction, saturation = magnitude / max_radius; RGB uint8 (H, W, 3).

    `max_radius` defaults to the largest magnitude in the map, so colours are relative to the frame.
    """
    u, v = flow[..., 0].astype(np.float32), flow[..., 1].astype(np.float32)
    rad = np.hypot(u, v)
    scale = float(rad.max()) if max_radius is None else float(max_radius)
    rad = rad / scale if scale > 0 else np.zeros_like(rad)
    n = len(_WHEEL)
    pos = (np.arctan2(-v, -u) / np.pi + 1) / 2 * (n - 1)  # angle mapped onto [0, n-1]
    k0 = np.floor(pos).astype(np.int64)
    k1 = (k0 + 1) % n
    frac = (pos - k0)[..., None]
    col = ((1 - frac) * _WHEEL[k0] + frac * _WHEEL[k1]) / 255.0
    r = rad[..., None]
    inside = r <= 1
    # Saturation grows with magnitude (white at rest); beyond max_radius the colour is darkened.
    col = np.where(inside, 1 - np.minimum(r, 1) * (1 - col), col * 0.75)
    return np.clip(np.round(col * 255), 0, 255).astype(np.uint8)


def flow_to_gray(flow: np.ndarray) -> np.ndarray:
    """The colour flow image converted to grey, (H, W) float32 in [0, 1] (the FG ablation's input, §IV-D)."""
    return cv2.cvtColor(flow_to_color(flow), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
