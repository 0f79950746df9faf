"""The baseline temporal prior: how fast each pixel moves relative to the camera (paper §III-B baseline).

Camera motion is modelled as a 2-D affine flow field fitted by RANSAC (`cv2.estimateAffine2D`) to a
regular grid of flow samples. An affine model, not the median flow, because a camera that zooms or
rotates produces a flow that varies across the frame, and a median would leave that variation as
false "object motion"; RANSAC keeps the fit on the background even when a moving object covers a
large part of the frame. If the fit fails (too few distinct samples) the median flow is used.

The residual magnitude is divided by a high percentile (robust to a few outliers) and clipped to
[0, 1]. The divisor never drops below `min_motion` pixels, so sub-pixel flow noise on a static scene
stays dark instead of being stretched to full range; a scene with no independent motion at all
therefore gives the constant map 0 ("nothing moves on its own"), never NaN.
"""

from __future__ import annotations

import cv2
import numpy as np

GRID_STEP = 8  # pixels between flow samples used for the camera fit


def camera_flow(flow: np.ndarray, *, step: int = GRID_STEP, ransac_px: float = 1.0) -> np.ndarray:
    """The dominant (camera) motion as a dense (H, W, 2) affine flow field."""
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[step // 2:h:step, step // 2:w:step]
    if ys.size < 3:
        ys, xs = np.mgrid[0:h, 0:w]
    src = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    dst = src + flow[ys.ravel(), xs.ravel()]
    affine, _ = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=ransac_px,
                                     maxIters=500, confidence=0.99, refineIters=5)
    if affine is None or not np.isfinite(affine).all():
        return np.broadcast_to(np.median(flow.reshape(-1, 2), 0), flow.shape).astype(np.float32)
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    cam_u = affine[0, 0] * gx + affine[0, 1] * gy + affine[0, 2] - gx
    cam_v = affine[1, 0] * gx + affine[1, 1] * gy + affine[1, 2] - gy
    return np.stack([cam_u, cam_v], -1).astype(np.float32)


def residual_magnitude(flow: np.ndarray) -> np.ndarray:
    """|flow − camera flow| in pixels, (H, W) float32."""
    res = flow - camera_flow(flow)
    return np.hypot(res[..., 0], res[..., 1]).astype(np.float32)


def robust_scale(values: np.ndarray, *, percentile: float = 99.0, min_motion: float = 1.0) -> float:
    """The divisor that maps residual magnitudes to [0, 1]: a high percentile, at least `min_motion` px."""
    return max(float(np.percentile(values, percentile)), min_motion)


def magnitude_prior(flow: np.ndarray, *, percentile: float = 99.0, min_motion: float = 1.0) -> np.ndarray:
    """Baseline Pt: camera-compensated flow magnitude, robustly normalised; (H, W) float32 in [0, 1]."""
    if not np.isfinite(flow).all():
        raise ValueError("flow contains NaN or infinite values")
    mag = residual_magnitude(flow)
    return np.clip(mag / robust_scale(mag, percentile=percentile, min_motion=min_motion), 0, 1).astype(np.float32)
