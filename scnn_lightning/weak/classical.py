"""Classical (training-free) image saliency models used as fusion sources S_i of Eq. 7 (§III-C).

The paper fuses three deep image models [1]–[3]; those need weights we cannot ship, so these classical
models give the weak-label pipeline real, dependency-free sources (external maps plug in through
`sources.FolderSource`). Every model maps an RGB uint8 image (H, W, 3) to a float32 (H, W) map in [0, 1],
works at a reduced resolution for speed, is deterministic, and maps a flat image to all zeros (no
contrast means no object evidence) instead of dividing by a zero range.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra
from skimage.segmentation import slic

# Longest side of the working copy; the maps are smooth, so little is lost and each model stays well
# under 0.1 s for a 480x854 frame.
WORK_SIDE = 200


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"expected an RGB uint8 image of shape (H, W, 3), got {got}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"image too small for saliency: {image.shape}")


def _working_copy(image: np.ndarray, max_side: int = WORK_SIDE) -> np.ndarray:
    """Downscaled RGB copy (area interpolation) with the longest side at most `max_side`."""
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale == 1.0:
        return image
    size = (max(2, round(w * scale)), max(2, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _lab(rgb: np.ndarray) -> np.ndarray:
    """CIELab (L in [0, 100]): the colour space all three papers measure contrast in."""
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def _to_output(raw: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Min-max normalise to [0, 1] (flat -> zeros) and resize back to the frame size."""
    raw = raw.astype(np.float32)
    lo, hi = float(raw.min()), float(raw.max())
    if not np.isfinite(lo) or not np.isfinite(hi) or hi - lo < 1e-6:
        return np.zeros(shape, np.float32)
    norm = (raw - lo) / (hi - lo)
    out = cv2.resize(norm, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def frequency_tuned(image: np.ndarray) -> np.ndarray:
    """Frequency-tuned saliency: Achanta, Hemami, Estrada, Süsstrunk, CVPR 2009.

    S(x) = || I_mean - I_blur(x) || in Lab, where I_blur is a small Gaussian blur that keeps the
    mid/high frequencies of whole objects while dropping noise and texture.
    """
    _check_image(image)
    lab = _lab(_working_copy(image))
    blurred = cv2.GaussianBlur(lab, (5, 5), 0)
    mean = lab.reshape(-1, 3).mean(axis=0)
    return _to_output(np.linalg.norm(blurred - mean, axis=2), image.shape[:2])


def _sweep(dist: np.ndarray, upper: np.ndarray, lower: np.ndarray, intensity: np.ndarray) -> None:
    """One MBD relaxation along axis 0 (in place): each line tries the path through the previous one.

    The barrier of a path extended by pixel x is max(U, I(x)) - min(L, I(x)); keep it where it is lower.
    """
    for r in range(1, dist.shape[0]):
        up = np.maximum(upper[r - 1], intensity[r])
        lo = np.minimum(lower[r - 1], intensity[r])
        barrier = up - lo
        better = barrier < dist[r]
        dist[r] = np.where(better, barrier, dist[r])
        upper[r] = np.where(better, up, upper[r])
        lower[r] = np.where(better, lo, lower[r])


def minimum_barrier(image: np.ndarray, *, passes: int = 3, contrast: float = 10.0) -> np.ndarray:
    """Minimum barrier distance to the image border: Zhang, Sclaroff, Lin, Shen, Price, Mech,
    "Minimum Barrier Salient Object Detection at 80 FPS", ICCV 2015 (FastMBD).

    The barrier of a path is max - min of the intensities along it; background pixels reach the border
    through a flat path, object pixels cannot. FastMBD approximates the distance with alternating
    raster scans; here each scan is split into four axis sweeps (down, up, right, left) whose updates
    are vectorised over whole lines, relaxing the same 4-neighbour edges. Distances of the three Lab
    channels are summed, then the paper's sigmoid contrast enhancement (b = `contrast`) is applied.
    """
    _check_image(image)
    lab = _lab(_working_copy(image))
    dist = np.full(lab.shape, np.inf, np.float32)
    dist[0], dist[-1], dist[:, 0], dist[:, -1] = 0, 0, 0, 0
    upper, lower = lab.copy(), lab.copy()
    arrays = (dist, upper, lower, lab)
    # (rows, cols, channel) arrays; transposed/reversed views turn every sweep into one along axis 0.
    views = (
        lambda a: a,
        lambda a: a[::-1],
        lambda a: a.transpose(1, 0, 2),
        lambda a: a.transpose(1, 0, 2)[::-1],
    )
    for _ in range(passes):
        for view in views:
            _sweep(*(view(a) for a in arrays))
    raw = dist.sum(axis=2)
    hi = float(raw.max())
    if hi < 1e-6:
        return np.zeros(image.shape[:2], np.float32)
    enhanced = 1.0 / (1.0 + np.exp(-contrast * (raw / hi - 0.5)))
    return _to_output(enhanced, image.shape[:2])


def _superpixel_graph(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique undirected 4-neighbour adjacency pairs (i < j) and the ids touching the image border."""
    pairs = np.concatenate(
        [
            np.stack([labels[:, :-1].ravel(), labels[:, 1:].ravel()], axis=1),
            np.stack([labels[:-1].ravel(), labels[1:].ravel()], axis=1),
        ]
    )
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    pairs = np.unique(np.sort(pairs, axis=1), axis=0)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return pairs, border


def robust_background(
    image: np.ndarray,
    *,
    n_segments: int = 200,
    sigma_clr: float = 10.0,
    sigma_bndcon: float = 1.0,
    sigma_spa: float = 0.25,
    mu: float = 0.1,
) -> np.ndarray:
    """Saliency optimisation from robust background detection: Zhu, Liang, Wei, Sun, CVPR 2014
    (the paper's "SO"; boundary connectivity + background-weighted contrast + least-squares optimisation).

    On SLIC superpixels: boundary connectivity BndCon(p) = Len_bnd(p) / sqrt(Area(p)) from geodesic
    colour distances on the adjacency graph (border superpixels linked to each other, as in the
    authors' setup); background probability w_bg = 1 - exp(-BndCon² / 2σ_bndCon²); foreground weight =
    background-weighted contrast wCtr; saliency s minimises
    Σ w_bg s² + Σ w_fg (s - 1)² + Σ_adjacent w_ij (s_i - s_j)², i.e. (W_bg + W_fg + Laplacian) s = w_fg.
    """
    _check_image(image)
    small = _working_copy(image)
    lab = _lab(small)
    raw_labels = slic(small, n_segments=n_segments, compactness=10, start_label=0, channel_axis=-1)
    _, labels = np.unique(raw_labels, return_inverse=True)
    labels = labels.reshape(raw_labels.shape)
    n = int(labels.max()) + 1
    if n < 2:
        return np.zeros(image.shape[:2], np.float32)

    counts = np.bincount(labels.ravel(), minlength=n).astype(np.float64)
    colour = np.stack([np.bincount(labels.ravel(), lab[..., c].ravel(), n) for c in range(3)], 1) / counts[:, None]
    ys, xs = np.mgrid[0 : labels.shape[0], 0 : labels.shape[1]]
    # Centroids in [0, 1] coordinates, so sigma_spa is a fraction of the frame whatever its size.
    positions = (ys / labels.shape[0], xs / labels.shape[1])
    centre = np.stack([np.bincount(labels.ravel(), p.ravel(), n) for p in positions], 1) / counts[:, None]
    d_app = np.linalg.norm(colour[:, None] - colour[None], axis=2)

    pairs, border = _superpixel_graph(labels)
    first, second = np.triu_indices(border.size, 1)
    # Both halves hold (i < j) pairs; dedupe so the CSR conversion does not add up repeated edges.
    edges = np.unique(np.concatenate([pairs, np.stack([border[first], border[second]], 1)]), axis=0)
    # Tiny offset: the sparse graph drops zero-weight edges, which would disconnect flat regions.
    weight = d_app[edges[:, 0], edges[:, 1]] + 1e-6
    graph = coo_matrix((weight, (edges[:, 0], edges[:, 1])), shape=(n, n)).tocsr()
    geo = dijkstra(graph, directed=False)

    span = np.exp(-(geo**2) / (2 * sigma_clr**2))
    area = span.sum(axis=1)
    len_bnd = span[:, border].sum(axis=1)
    bndcon = len_bnd / np.sqrt(area)
    w_bg = 1.0 - np.exp(-(bndcon**2) / (2 * sigma_bndcon**2))

    d_spa = np.linalg.norm(centre[:, None] - centre[None], axis=2)
    w_ctr = (d_app * np.exp(-(d_spa**2) / (2 * sigma_spa**2))) @ w_bg
    w_fg = w_ctr / w_ctr.max() if w_ctr.max() > 1e-12 else np.zeros(n)

    smooth = np.exp(-(d_app[pairs[:, 0], pairs[:, 1]] ** 2) / (2 * sigma_clr**2)) + mu
    adjacency = np.zeros((n, n))
    adjacency[pairs[:, 0], pairs[:, 1]] = smooth
    adjacency += adjacency.T
    laplacian = np.diag(adjacency.sum(axis=1)) - adjacency
    system = laplacian + np.diag(w_bg + w_fg)
    s = np.linalg.solve(system, w_fg)
    return _to_output(np.clip(s, 0.0, 1.0)[labels], image.shape[:2])


def center_prior(h: int, w: int, *, sigma: float = 0.25) -> np.ndarray:
    """Gaussian centre bias (peak 1 at the centre, σ as a fraction of each side): a trivial baseline map."""
    if h < 1 or w < 1 or sigma <= 0:
        raise ValueError(f"center_prior needs h, w >= 1 and sigma > 0, got h={h}, w={w}, sigma={sigma}")
    ys = (np.arange(h, dtype=np.float32) + 0.5) / h - 0.5
    xs = (np.arange(w, dtype=np.float32) + 0.5) / w - 0.5
    return np.exp(-(ys[:, None] ** 2 + xs[None] ** 2) / (2 * sigma**2)).astype(np.float32)


CLASSICAL_MODELS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "ft": frequency_tuned,
    "mbd": minimum_barrier,
    "rbd": robust_background,
}
