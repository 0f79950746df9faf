"""Fusing saliency maps into weak labels: Eq. 7 (weighted sum), Eq. 8 (QP weights), Otsu (§III-C).

Eq. 8 fits w* = argmin ||G - Σ w_k S_k||² over the frames that have ground truth, subject to w >= 0 and
Σ w = 1 (the simplex, so the fused map stays in [0, 1]). Expanding the square gives
wᵀAw - 2bᵀw + c with A = S Sᵀ (K x K), b = S G and c = GᵀG summed over all labelled pixels, so the QP
has K variables however many frames there are. `GramAccumulator` streams frames into (A, b, c) in
bounded memory; `solve_simplex_qp` solves the reduced problem and is what DDP callers use after summing
A and b across ranks.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
from skimage.filters import threshold_otsu

# Pixels per float64 working chunk (K x this many doubles at once): memory stays flat in N.
CHUNK_PIXELS = 1 << 18
# Ridge added to the scaled Gram matrix (whose mean diagonal is 1): keeps A strictly PD when sources
# are duplicated or collinear, so the solver sees a well-posed problem, and moves the optimum by
# O(1e-9) — far below any meaningful weight difference. With exact duplicates it splits their weight
# evenly, which is as optimal as any other split.
RIDGE = 1e-9
# Maps whose fused range is below this are flat: they carry no object evidence.
FLAT_RANGE = 1e-6


def _check_maps(sources: np.ndarray, what: str) -> None:
    if not np.issubdtype(sources.dtype, np.number) or np.iscomplexobj(sources):
        raise ValueError(f"{what} must be real numbers, got dtype {sources.dtype}")
    if not np.isfinite(sources).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    if sources.size and (sources.min() < 0 or sources.max() > 1):
        raise ValueError(f"{what} must lie in [0, 1], got min {sources.min():.4g}, max {sources.max():.4g}")


def _check_gt(gt: np.ndarray) -> None:
    if gt.dtype != bool and not np.isin(gt, (0, 1)).all():
        raise ValueError(f"ground truth must be binary {{0, 1}}, got values {np.unique(gt)[:8].tolist()}")


class GramAccumulator:
    """Running A = Σ S Sᵀ, b = Σ S G, c = Σ G², pixel count of Eq. 8, fed frame chunks of any size."""

    def __init__(self, k: int, *, chunk_pixels: int = CHUNK_PIXELS):
        if k < 1:
            raise ValueError(f"need at least one saliency source, got k={k}")
        self.k = k
        self.chunk_pixels = chunk_pixels
        self.gram = np.zeros((k, k))
        self.cross = np.zeros(k)
        self.gt_energy = 0.0
        self.pixels = 0

    def add(self, sources: np.ndarray, gt: np.ndarray) -> None:
        """Add labelled frames: sources (K, N, H, W) with gt (N, H, W), or one frame (K, H, W) with (H, W)."""
        sources, gt = np.asarray(sources), np.asarray(gt)
        if gt.ndim == 2:
            sources, gt = sources[:, None], gt[None]
        if sources.ndim != 4 or gt.ndim != 3 or sources.shape[0] != self.k or sources.shape[1:] != gt.shape:
            raise ValueError(
                f"shape mismatch: expected sources (K={self.k}, N, H, W) and gt (N, H, W), "
                f"got {sources.shape} and {gt.shape}"
            )
        per_frame = max(1, gt.shape[1] * gt.shape[2])
        step = max(1, self.chunk_pixels // per_frame)
        # Sum into locals and commit at the end: a bad chunk leaves the accumulator untouched.
        gram, cross, energy = np.zeros_like(self.gram), np.zeros_like(self.cross), 0.0
        for start in range(0, gt.shape[0], step):
            chunk = sources[:, start : start + step]
            labels = gt[start : start + step]
            _check_maps(chunk, "saliency maps")
            _check_gt(labels)
            s = chunk.reshape(self.k, -1).astype(np.float64)
            g = labels.reshape(-1).astype(np.float64)
            gram += s @ s.T
            cross += s @ g
            energy += float(g @ g)
        self.gram += gram
        self.cross += cross
        self.gt_energy += energy
        self.pixels += gt.size

    def objective(self, weights: np.ndarray) -> float:
        """Mean squared error of Eq. 8 per labelled pixel for these weights."""
        if self.pixels == 0:
            raise ValueError("no labelled frames were added")
        w = np.asarray(weights, np.float64)
        return float(w @ self.gram @ w - 2 * self.cross @ w + self.gt_energy) / self.pixels

    def solve(self) -> np.ndarray:
        if self.pixels == 0:
            raise ValueError("no labelled frames were added: Eq. 8 needs frames with ground truth")
        return solve_simplex_qp(self.gram, self.cross)


def project_to_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection onto {w >= 0, Σ w = 1} (sort-based; Duchi et al., ICML 2008)."""
    u = np.sort(v)[::-1]
    cumulative = np.cumsum(u) - 1.0
    ranks = np.arange(1, v.size + 1)
    rho = np.nonzero(u - cumulative / ranks > 0)[0][-1]
    return np.maximum(v - cumulative[rho] / (rho + 1), 0.0)


def _projected_gradient(a: np.ndarray, b: np.ndarray, iterations: int = 20000) -> np.ndarray:
    """Accelerated projected gradient (FISTA) on the simplex: the fallback when the QP solver fails."""
    lipschitz = 2 * max(float(np.linalg.eigvalsh(a)[-1]), 1e-12)
    w = y = np.full(b.size, 1.0 / b.size)
    t = 1.0
    for _ in range(iterations):
        w_next = project_to_simplex(y - (2 * (a @ y) - 2 * b) / lipschitz)
        t_next = (1 + np.sqrt(1 + 4 * t * t)) / 2
        y = w_next + (t - 1) / t_next * (w_next - w)
        w, t = w_next, t_next
    return w


@dataclass(frozen=True)
class QPSolution:
    """Eq. 8 weights and how they were obtained: `solver` is cvxpy's name of the solver that produced them
    (e.g. "CLARABEL"), "projected_gradient" when the fallback did (`note` says why), or "uniform" when
    every source is blank on the labelled frames and any weights are optimal."""

    weights: np.ndarray
    solver: str
    status: str
    note: str = ""

    def describe(self) -> dict:
        return {"solver": self.solver, "status": self.status, "note": self.note}


def simplex_qp_solution(gram: np.ndarray, cross: np.ndarray) -> QPSolution:
    """Eq. 8 in reduced form: argmin wᵀAw - 2bᵀw subject to w >= 0, Σ w = 1, solved with cvxpy.

    A is symmetrised, scaled to unit mean diagonal (same minimiser, better conditioned) and given a
    `RIDGE`. If A is all zero (every source blank on the labelled frames) every w is optimal and
    uniform weights are returned. If the solver fails or returns a non-finite point, a warning is issued
    and the accelerated projected-gradient solution is returned instead; the result is never NaN.
    """
    a, b = np.asarray(gram, np.float64), np.asarray(cross, np.float64)
    k = b.shape[0] if b.ndim == 1 else -1
    if b.ndim != 1 or a.shape != (k, k) or k < 1:
        raise ValueError(f"expected A of shape (K, K) and b of shape (K,), got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("Gram matrix or cross term contains NaN or infinite values")
    a = (a + a.T) / 2
    scale = float(np.trace(a)) / k
    if scale <= 0:
        return QPSolution(np.full(k, 1.0 / k), "uniform", "degenerate", "every source is zero on the labelled frames")
    a, b = a / scale + RIDGE * np.eye(k), b / scale

    w = cp.Variable(k)
    problem = cp.Problem(cp.Minimize(cp.quad_form(w, cp.psd_wrap(a)) - 2 * b @ w), [w >= 0, cp.sum(w) == 1])
    try:
        problem.solve(solver=cp.CLARABEL)
        ok = problem.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) and w.value is not None
        solution = np.asarray(w.value, np.float64) if ok else None
        failure = f"solver status '{problem.status}'"
    except cp.SolverError as err:
        solution, failure = None, f"solver error: {err}"
    if solution is None or not np.isfinite(solution).all():
        warnings.warn(f"fusion QP (Eq. 8) failed ({failure}); using projected gradient instead", RuntimeWarning)
        return QPSolution(_projected_gradient(a, b), "projected_gradient", "fallback", f"cvxpy failed: {failure}")
    # Interior-point output sits within solver tolerance of the simplex; put it exactly on it.
    return QPSolution(project_to_simplex(solution), _solver_name(problem, cp.CLARABEL), str(problem.status))


def _solver_name(problem, requested: str) -> str:
    stats = getattr(problem, "solver_stats", None)
    return str(getattr(stats, "solver_name", None) or requested)


def solve_simplex_qp(gram: np.ndarray, cross: np.ndarray) -> np.ndarray:
    """The weights of `simplex_qp_solution` (Eq. 8 on the K×K system)."""
    return simplex_qp_solution(gram, cross).weights


def fit_fusion_weights(sources: np.ndarray, gt: np.ndarray, *, chunk_pixels: int = CHUNK_PIXELS) -> np.ndarray:
    """Eq. 8 on in-memory (or memory-mapped) arrays: sources (K, N, H, W) in [0, 1], gt (N, H, W) in {0, 1}.

    Returns weights (K,) on the simplex. Frames are reduced to the K x K Gram system chunk by chunk, so
    the extra memory does not grow with N.
    """
    sources = np.asarray(sources)
    if sources.ndim != 4 or sources.shape[1] == 0:
        raise ValueError(f"sources must have shape (K, N, H, W) with N >= 1, got {sources.shape}")
    accumulator = GramAccumulator(sources.shape[0], chunk_pixels=chunk_pixels)
    accumulator.add(sources, gt)
    return accumulator.solve()


def fuse_maps(maps: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Eq. 7: S = Σ w_k S_k for maps (K, H, W) in [0, 1] and weights (K,) on the simplex -> (H, W) float32."""
    maps, weights = np.asarray(maps), np.asarray(weights, np.float64)
    if maps.ndim != 3 or weights.shape != (maps.shape[0],):
        raise ValueError(f"expected maps (K, H, W) and weights (K,), got {maps.shape} and {weights.shape}")
    _check_maps(maps, "saliency maps")
    if not np.isfinite(weights).all() or weights.min() < 0 or abs(weights.sum() - 1) > 1e-6:
        raise ValueError(f"fusion weights must be >= 0 and sum to 1, got {weights.tolist()}")
    fused = np.tensordot(weights, maps.astype(np.float64), axes=1)
    return np.clip(fused, 0.0, 1.0).astype(np.float32)


def trust_by_distance(weights: np.ndarray, source: int, distance: int | None, reach: float) -> np.ndarray:
    """Eq. 7's weights for one frame when the propagated source (index `source`) is trusted by distance.

    Eq. 8 can judge the propagated source only on the held-out frames, about `reach` frames from the nearest
    label it carries; at distance 0 its map is that label itself. Between the two its weight rises linearly,
    w'_p = w_p + (1 - w_p)·α with α = max(0, 1 - distance/reach), and the other weights shrink by (1 - α), so
    they stay on the simplex; at `reach` and beyond (or with no label within reach) Eq. 8's weights are kept.
    """
    weights = np.asarray(weights, np.float64)
    if reach <= 0:
        raise ValueError(f"reach must be positive (frames from the held-out frames to their labels), got {reach!r}")
    alpha = 0.0 if distance is None else max(0.0, 1.0 - distance / reach)
    trusted = weights * (1.0 - alpha)
    trusted[source] += alpha
    return trusted


def weak_label(maps: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Binary weak label (H, W) uint8 in {0, 1}: the Eq. 7 fusion thresholded by Otsu (Alg. 1, step 5).

    Otsu runs on a 256-bin histogram of the fused map (`otsu_threshold`). A flat fused map (range <
    `FLAT_RANGE`) has no object evidence and gives all zeros.
    """
    return otsu_label(fuse_maps(maps, weights))


def otsu_threshold(fused: np.ndarray) -> float | None:
    """Otsu's split of a fused map, or None when the map is flat.

    skimage reports the chosen split as the centre of the last background bin, which would send half of
    that bin to the foreground; passing the bins' upper edges as their positions puts the threshold exactly
    between the two classes."""
    lo, hi = float(fused.min()), float(fused.max())
    if hi - lo < FLAT_RANGE:
        return None
    counts, edges = np.histogram(fused, bins=256, range=(lo, hi))
    return float(threshold_otsu(hist=(counts, edges[1:])))


def otsu_label(fused: np.ndarray) -> np.ndarray:
    """The binary label (H, W) uint8 of a fused map: foreground above its Otsu threshold."""
    threshold = otsu_threshold(fused)
    if threshold is None:
        return np.zeros(fused.shape, np.uint8)
    return (fused > threshold).astype(np.uint8)


def confidence_levels(fused: np.ndarray) -> np.ndarray:
    """The weak label with its confidence, as (H, W) uint8 levels: 128..255 foreground, 0..127 background.

    A pixel's level says how far its fused value p lies from the frame's Otsu threshold t, relative to the
    way to 1 (above t) or to 0 (below): 128 + round(127·(p − t)/(1 − t)) or round(127·p/t). So `levels >= 128`
    is exactly `otsu_label`, level/255 is a soft target that keeps the label's decision, and pixels near
    the threshold are recognisable as unsure (`weak.target`, `weak.ignore_band`). A flat map is all 0."""
    threshold = otsu_threshold(fused)
    if threshold is None:
        return np.zeros(fused.shape, np.uint8)
    p = fused.astype(np.float64)
    above = 128 + np.rint(127 * (p - threshold) / (1 - threshold))
    below = np.rint(127 * p / threshold)
    return np.clip(np.where(p > threshold, above, below), 0, 255).astype(np.uint8)


def weak_confidence(maps: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """`confidence_levels` of the Eq. 7 fusion: the weak label of `weak_label` with its confidence."""
    return confidence_levels(fuse_maps(maps, weights))
