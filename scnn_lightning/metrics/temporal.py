"""Temporal consistency of a saliency video: how much the maps flicker along the motion.

No saliency toolbox reports this, so the definition is ours:

    TC = mean over consecutive pairs (t, t+1) of
         mean over valid pixels p of | S_t(p) − S_{t+1}(p + F_{t→t+1}(p)) |

`S_{t+1}(p + F(p))` is S_{t+1} warped back to frame t with the forward flow (bilinear sampling).
A pixel is valid when its flow target lies inside the frame and the flow is forward-backward
consistent (Sundaram et al., ECCV 2010): |F(p) + B(p + F(p))|² ≤ 0.01 (|F(p)|² + |B(p + F(p))|²) + 0.5,
where B is the flow t+1 → t. Occluded and disoccluded pixels fail that test, so changes the motion
explains away are not counted as flicker. Maps are used as given (no min-max normalisation): values
in [0, 1], lower is better, 0 means the maps move exactly with the video. Pairs with no valid
pixel are left out; each remaining pair weighs the same.
"""

from __future__ import annotations

from typing import Callable, Sequence

import cv2
import numpy as np

FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def default_flow_fn() -> FlowFn:
    """The project's optical flow (`motion.flow.compute_flow`, DIS), imported only when needed."""
    from scnn_lightning.motion.flow import compute_flow

    return compute_flow


def warp_back(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample `image` (of frame t+1) at p + flow(p), giving it frame t's pixel grid (bilinear)."""
    h, w = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(
        image.astype(np.float32), grid_x + flow[..., 0], grid_y + flow[..., 1],
        interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE,
    )


def valid_flow_mask(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Pixels of frame t whose forward flow lands inside the frame and is forward-backward consistent."""
    h, w = forward.shape[:2]
    xs = np.arange(w, dtype=np.float32)[None, :] + forward[..., 0]
    ys = np.arange(h, dtype=np.float32)[:, None] + forward[..., 1]
    inside = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
    back = np.stack([warp_back(backward[..., c], forward) for c in range(2)], axis=-1)
    round_trip = ((forward + back) ** 2).sum(-1)
    tolerance = 0.01 * ((forward**2).sum(-1) + (back**2).sum(-1)) + 0.5
    return inside & (round_trip <= tolerance)


def pair_flicker(map_t: np.ndarray, map_next: np.ndarray, forward: np.ndarray, backward: np.ndarray) -> float | None:
    """Mean |S_t − warp(S_{t+1})| over valid pixels of one pair; None when no pixel is valid."""
    valid = valid_flow_mask(forward, backward)
    if not valid.any():
        return None
    difference = np.abs(map_t.astype(np.float32) - warp_back(map_next, forward))
    return float(difference[valid].mean())


def sequence_flickers(maps: Sequence[np.ndarray], frames: Sequence[np.ndarray], flow_fn: FlowFn | None = None) -> list[float]:
    """Per-pair flicker values of one sequence (pairs without a valid pixel are left out)."""
    if len(maps) != len(frames):
        raise ValueError(f"got {len(maps)} maps but {len(frames)} frames")
    flow_fn = flow_fn or default_flow_fn()
    values = []
    for t in range(len(maps) - 1):
        if maps[t].shape != frames[t].shape[:2] or maps[t + 1].shape != frames[t + 1].shape[:2]:
            raise ValueError(f"map and frame sizes differ at pair {t}: {maps[t].shape} vs {frames[t].shape[:2]}")
        forward = flow_fn(frames[t], frames[t + 1])
        backward = flow_fn(frames[t + 1], frames[t])
        value = pair_flicker(maps[t], maps[t + 1], forward, backward)
        if value is not None:
            values.append(value)
    return values


def temporal_consistency(maps: Sequence[np.ndarray], frames: Sequence[np.ndarray], flow_fn: FlowFn | None = None) -> float:
    """Temporal consistency (module docstring) of float maps in [0, 1] over RGB uint8 frames; lower is better."""
    if len(maps) < 2:
        raise ValueError(f"temporal consistency needs at least two consecutive maps, got {len(maps)}")
    values = sequence_flickers(maps, frames, flow_fn)
    if not values:
        raise ValueError("no pixel has a valid (inside, forward-backward consistent) flow in any pair")
    return float(np.mean(values))
