"""Pixel-wise saliency refinement with a fully connected CRF (paper §III-D, Eq. 9–10).

Energy (Eq. 9): E(S) = −Σ_i log Θ(s_i) + Σ_{i,j} φ_ij(s_i, s_j), with two labels (background,
salient) and Θ the saliency value of the chosen label. The pairwise term (Eq. 10) is a Potts model
µ(s_i ≠ s_j) times
    w1 · exp(−|p_i − p_j|² / 2θ_α² − |I_i − I_j|² / 2θ_β²)   (appearance kernel)
  + w2 · exp(−|p_i − p_j|² / 2θ_γ²)                           (smoothness kernel)
which is exactly the kernel pair of Krähenbühl & Koltun's dense CRF, solved by mean field
(`pydensecrf2`, imported as `pydensecrf.densecrf`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from scnn_lightning.utils import to_uint8_map


@dataclass
class CRFParams:
    """Kernel weights and widths of Eq. 10 (pixels for θ_α, θ_γ; 8-bit intensity units for θ_β).

    Defaults are the values of the dense-CRF post-processing that DSS (Hou et al., CVPR 2017)
    popularised for saliency maps and that later saliency works reuse: appearance w1 = 5,
    θ_α = 60, θ_β = 5; smoothness w2 = 3, θ_γ = 3; 5 mean-field iterations. The SCNN paper does
    not give its own values.
    """

    w1: float = 5.0
    theta_alpha: float = 60.0
    theta_beta: float = 5.0
    w2: float = 3.0
    theta_gamma: float = 3.0
    iterations: int = 5
    # Probabilities are clipped to [clip, 1 − clip] so log(0) never reaches the unary term.
    clip: float = 1e-6

    def __post_init__(self):
        for name in ("w1", "theta_alpha", "theta_beta", "w2", "theta_gamma"):
            if getattr(self, name) < 0 or (name.startswith("theta") and getattr(self, name) == 0):
                raise ValueError(f"CRFParams.{name} must be positive, got {getattr(self, name)}")
        if self.iterations < 1:
            raise ValueError(f"CRFParams.iterations must be >= 1, got {self.iterations}")
        if not 0 < self.clip < 0.5:
            raise ValueError(f"CRFParams.clip must lie in (0, 0.5), got {self.clip}")


def unary_energy(saliency: np.ndarray, clip: float) -> np.ndarray:
    """(2, H·W) float32 −log Θ of Eq. 9: row 0 background (1 − s), row 1 salient (s)."""
    s = np.clip(saliency.astype(np.float64), clip, 1 - clip).reshape(-1)
    return np.ascontiguousarray(-np.log(np.stack([1 - s, s])), dtype=np.float32)


def refine(image_rgb_uint8: np.ndarray, saliency_float01: np.ndarray, params: CRFParams | None = None) -> np.ndarray:
    """Refine a saliency map with the dense CRF of Eq. 9–10; returns the salient-label marginal.

    image_rgb_uint8: (H, W, 3) uint8; saliency_float01: (H, W) float in [0, 1]. Output: float32
    (H, W) in [0, 1].
    """
    import pydensecrf.densecrf as dcrf  # compiled extension: imported only when the CRF is used

    params = params or CRFParams()
    image, saliency = np.asarray(image_rgb_uint8), np.asarray(saliency_float01)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    if saliency.shape != image.shape[:2]:
        raise ValueError(f"saliency map {saliency.shape} does not match image {image.shape[:2]}")
    if not np.isfinite(saliency).all() or saliency.min() < 0 or saliency.max() > 1:
        raise ValueError("saliency map must hold finite values in [0, 1]")
    h, w = saliency.shape
    crf = dcrf.DenseCRF2D(w, h, 2)
    crf.setUnaryEnergy(unary_energy(saliency, params.clip))
    crf.addPairwiseGaussian(sxy=params.theta_gamma, compat=params.w2)
    rgb = np.require(image, requirements=["C", "W"])  # pydensecrf needs a writable buffer; decoded frames may not be
    crf.addPairwiseBilateral(sxy=params.theta_alpha, srgb=params.theta_beta, rgbim=rgb, compat=params.w1)
    marginals = np.asarray(crf.inference(params.iterations), dtype=np.float32).reshape(2, h, w)
    return np.clip(marginals[1], 0.0, 1.0)


def frame_size_map(saliency: np.ndarray, frame: np.ndarray, params: CRFParams | None) -> np.ndarray:
    """The 8-bit map saved for `frame`: a network-size map in [0, 1] brought to the frame's size (bilinear),
    refined there against the frame by the dense CRF when `params` is given, quantised as its PNG holds it.

    The one rule for every saved map: the test step of training (`SaliencyModule.frame_map`) and predict
    (`inference/stream.py`) both call it, so predict's PNGs are the runner's `predictions/`.
    """
    height, width = frame.shape[:2]
    if saliency.shape != (height, width):
        saliency = cv2.resize(saliency, (width, height), interpolation=cv2.INTER_LINEAR)
    if params is not None:
        saliency = refine(frame, np.clip(saliency, 0.0, 1.0), params)  # bilinear can overshoot [0, 1] by an ulp
    return to_uint8_map(saliency)
