"""The statistics of one weak-label round (Algorithm 1, steps 4–5) as exact integer sums.

Every map enters the fusion at 8-bit precision (0..255, like the PNG maps of external models), so the
Eq. 8 sums over the held-out labelled pixels are integers. Integers add up to the same value in any
order: summing them across DDP ranks (`all_reduce`) gives the bits a single process gets, and every
container here is a fixed-size int64 vector however many frames a round has.

The network's map joins the fusion as a *calibrated* probability. The class-balanced loss (Eq. 3)
weights the rare foreground up, which moves the network's logits by about log(α / (1 − α)) and makes
its probabilities too high; Eq. 8, a least-squares fit, would punish that offset although the map
ranks pixels well. A 1-D logistic (Platt) calibration P = σ(a·z + b) of the logit z, fitted on the same
held-out frames, removes it. It is fitted on a fine histogram of z (`LOGIT_BINS` bins), and the
calibrated map is a function of the bin, so the whole Eq. 8 system including the network's row is
assembled from per-bin sums gathered in the same single pass.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from scnn_lightning.weak.fusion import fuse_maps, otsu_label

LEVELS = 255  # 8-bit maps: value / LEVELS in [0, 1]
LOGIT_RANGE = 16.0  # |z| of a float32 sigmoid output never exceeds ~16.6
LOGIT_BINS = 2048  # bin width 1/64 in z: finer than the 8-bit output everywhere
FIXED_POINT = 2**32  # per-frame scores in [0, 1] are summed as round(score * FIXED_POINT)
PLATT_ITERATIONS = 100
ORACLE_DISTANCES = 16  # the oracle diagnostic's distance buckets: 1, 2, ..., 15 and 16 or more frames
ORACLE_NOTE = ("diagnostic only: the labels scored against the hidden ground truth of the training frames outside "
               "the label budget; nothing fits, chooses or stops on it")


def to_levels(maps: np.ndarray) -> np.ndarray:
    """[0, 1] maps as uint8 levels 0..255."""
    return np.round(np.clip(maps, 0.0, 1.0) * LEVELS).astype(np.uint8)


def logit_bins(probability: np.ndarray) -> np.ndarray:
    """Bin index (int64) of each pixel's logit z = log(p / (1 − p)), clipped to ±`LOGIT_RANGE`."""
    eps = 1.0 / (1.0 + np.exp(LOGIT_RANGE))
    p = np.clip(np.asarray(probability, np.float64), eps, 1.0 - eps)
    z = np.log(p) - np.log1p(-p)
    index = np.floor((z + LOGIT_RANGE) / (2 * LOGIT_RANGE) * LOGIT_BINS).astype(np.int64)
    return np.clip(index, 0, LOGIT_BINS - 1)


def bin_centres() -> np.ndarray:
    width = 2 * LOGIT_RANGE / LOGIT_BINS
    return -LOGIT_RANGE + width * (np.arange(LOGIT_BINS) + 0.5)


def _exact_int(values: np.ndarray) -> np.ndarray:
    """float64 sums of integer products (exact below 2**53) as int64."""
    return np.rint(values).astype(np.int64)


class IntSums:
    """Named int64 arrays that travel as one flat vector (for an exact `all_reduce` across ranks)."""

    def _fields(self) -> list[np.ndarray]:
        raise NotImplementedError

    def vector(self) -> np.ndarray:
        return np.concatenate([f.ravel() for f in self._fields()])

    def load_vector(self, vector: np.ndarray) -> None:
        offset = 0
        for field in self._fields():
            field.flat[:] = vector[offset:offset + field.size]
            offset += field.size


class FitStats(IntSums):
    """Σ over held-out labelled pixels of what Eq. 8 and the calibration need, as int64.

    Static sources (K_s uint8 maps): Gram Σ SᵢSⱼ, cross term Σ SᵢG, Σ G, pixel count. Network: per logit
    bin j its pixel count nⱼ, foreground count gⱼ and Σ Sᵢ of the static maps over its pixels, so that
    once the calibrated level Pⱼ of each bin is known, Σ P² = Σ nⱼPⱼ², Σ PG = Σ gⱼPⱼ and Σ SᵢP = Σ Pⱼ·(Σ Sᵢ)ⱼ.
    """

    def __init__(self, k_static: int):
        self.k = k_static
        self.gram = np.zeros((k_static, k_static), np.int64)
        self.cross = np.zeros(k_static, np.int64)
        self.foreground = np.zeros(1, np.int64)
        self.pixels = np.zeros(1, np.int64)
        self.bin_count = np.zeros(LOGIT_BINS, np.int64)
        self.bin_foreground = np.zeros(LOGIT_BINS, np.int64)
        self.bin_static = np.zeros((k_static, LOGIT_BINS), np.int64)

    def _fields(self) -> list[np.ndarray]:
        return [self.gram, self.cross, self.foreground, self.pixels, self.bin_count, self.bin_foreground,
                self.bin_static]

    def add(self, static: np.ndarray, gt: np.ndarray, bins: np.ndarray | None = None) -> None:
        """static (K_s, B, H, W) uint8, gt (B, H, W) in {0, 1}, bins (B, H, W) of the network's map or None."""
        s = static.reshape(self.k, -1).astype(np.float64)
        g = gt.reshape(-1).astype(np.float64)
        self.gram += _exact_int(s @ s.T)
        self.cross += _exact_int(s @ g)
        self.foreground += int(g.sum())
        self.pixels += g.size
        if bins is not None:
            b = bins.reshape(-1)
            self.bin_count += np.bincount(b, minlength=LOGIT_BINS)
            self.bin_foreground += _exact_int(np.bincount(b, weights=g, minlength=LOGIT_BINS))
            for i in range(self.k):
                self.bin_static[i] += _exact_int(np.bincount(b, weights=s[i], minlength=LOGIT_BINS))

    def system(self, prediction_levels: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, float, int]:
        """(A, b, c, pixels) of Eq. 8 in map units ([0, 1]): ‖G − Σ wᵢSᵢ‖² = wᵀAw − 2bᵀw + c.

        With `prediction_levels` (the calibrated level 0..255 of each logit bin) the network's map is the
        last source."""
        gram, cross = self.gram, self.cross
        if prediction_levels is not None:
            p = prediction_levels.astype(np.int64)
            with_p = self.bin_static @ p
            gram = np.block([[gram, with_p[:, None]], [with_p[None, :], np.array([[self.bin_count @ p**2]])]])
            cross = np.append(cross, self.bin_foreground @ p)
        return gram / LEVELS**2, cross / LEVELS, float(self.foreground[0]), int(self.pixels[0])


def platt_calibration(count: np.ndarray, foreground: np.ndarray) -> tuple[float, float]:
    """(a, b) of P = σ(a·z + b) maximising the likelihood of the labels, from per-logit-bin counts.

    Platt's (1999) smoothed targets (N₊+1)/(N₊+2) and 1/(N₋+2) keep a and b finite when the classes are
    separable; Newton's method with step halving from the identity (a, b) = (1, 0)."""
    used = count > 0
    n, positives = count[used].astype(np.float64), foreground[used].astype(np.float64)
    z = bin_centres()[used]
    total_pos, total_neg = positives.sum(), (n - positives).sum()
    t_pos, t_neg = (total_pos + 1) / (total_pos + 2), 1 / (total_neg + 2)
    target = positives * t_pos + (n - positives) * t_neg  # expected positives per bin
    design = np.stack([z, np.ones_like(z)], axis=1)

    def loss(theta):  # negative log-likelihood: Σ n·softplus(f) − target·f
        f = design @ theta
        return float(np.sum(n * np.logaddexp(0.0, f) - target * f))

    theta = np.array([1.0, 0.0])
    current = loss(theta)
    for _ in range(PLATT_ITERATIONS):
        p = expit(design @ theta)
        gradient = design.T @ (n * p - target)
        hessian = (design * (n * p * (1 - p))[:, None]).T @ design + 1e-9 * n.sum() * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        for _ in range(30):  # halve until the loss does not increase
            trial = theta - step
            if loss(trial) <= current:
                break
            step /= 2
        else:
            break
        theta, previous, current = trial, current, loss(trial)
        if previous - current <= 1e-12 * max(1.0, abs(current)):
            break
    return float(theta[0]), float(theta[1])


def calibrated_levels(a: float, b: float) -> np.ndarray:
    """The calibrated 8-bit level of each logit bin: round(255 · σ(a·z + b)) at the bin centres."""
    return to_levels(expit(a * bin_centres() + b))


class RoundScores(IntSums):
    """Per-frame label quality on the held-out frames and the change of the unlabelled frames' labels.

    Held-out scores (one per frame, summed in fixed point so the sum is exact), of the fused map S and,
    for comparison, of each source alone: soft IoU Σmin(S,G)/Σmax(S,G) and MAE of the map, IoU and MAE
    of its Otsu label. Unlabelled frames: label pixels, foreground pixels, and pixels that differ from the
    previous round's label (where there was one), and — an oracle diagnostic — the labels' IoU against the
    hidden ground truth of those frames where the data has it, by distance to the nearest labelled frame."""

    QUALITY = ("fused_iou", "fused_mae", "label_iou", "label_mae")

    def __init__(self, sources: list[str]):
        self.sources = list(sources)
        self.quality = np.zeros(len(self.QUALITY), np.int64)
        self.source_quality = np.zeros((len(self.sources), len(self.QUALITY)), np.int64)
        self.quality_frames = np.zeros(1, np.int64)
        self.label_pixels = np.zeros(1, np.int64)
        self.label_foreground = np.zeros(1, np.int64)
        self.compared_pixels = np.zeros(1, np.int64)
        self.changed_pixels = np.zeros(1, np.int64)
        self.labels = np.zeros(1, np.int64)
        self.oracle_iou = np.zeros(ORACLE_DISTANCES, np.int64)  # fixed point, per distance bucket
        self.oracle_frames = np.zeros(ORACLE_DISTANCES, np.int64)

    def _fields(self) -> list[np.ndarray]:
        return [self.quality, self.source_quality, self.quality_frames, self.label_pixels, self.label_foreground,
                self.compared_pixels, self.changed_pixels, self.labels, self.oracle_iou, self.oracle_frames]

    def add_heldout(self, maps: np.ndarray, weights: np.ndarray, gt: np.ndarray) -> None:
        """One held-out frame: its source maps (K, H, W) in [0, 1], the fusion weights, its ground truth."""
        fused = fuse_maps(maps, weights)
        self.quality += _fixed_point(_map_scores(fused, gt))
        for i, source in enumerate(maps):
            self.source_quality[i] += _fixed_point(_map_scores(source, gt))
        self.quality_frames += 1

    def add_label(self, label: np.ndarray, previous: np.ndarray | None, hidden: np.ndarray | None = None,
                  distance: int = 1) -> None:
        """One written label, the previous round's, and the frame's hidden ground truth (None: it has none) at
        `distance` frames from the nearest labelled frame of its sequence."""
        if hidden is not None:
            bucket = min(max(int(distance), 1), ORACLE_DISTANCES) - 1
            self.oracle_iou[bucket] += _fixed_point([_iou(label.astype(bool), hidden.astype(bool))])[0]
            self.oracle_frames[bucket] += 1
        self.labels += 1
        self.label_pixels += label.size
        self.label_foreground += int(label.sum())
        if previous is not None:
            self.compared_pixels += label.size
            self.changed_pixels += int((label != previous).sum())

    def summary(self) -> dict:
        frames = int(self.quality_frames[0])

        def means(sums) -> dict:
            return {name: (float(v) / FIXED_POINT / frames if frames else None) for name, v in zip(self.QUALITY, sums)}

        heldout = {"frames": frames, **means(self.quality),
                   "sources": {name: means(sums) for name, sums in zip(self.sources, self.source_quality)}}
        pixels, compared = int(self.label_pixels[0]), int(self.compared_pixels[0])
        return {"heldout": heldout, "labels": int(self.labels[0]),
                "foreground": int(self.label_foreground[0]) / pixels if pixels else 0.0,
                "changed_fraction": int(self.changed_pixels[0]) / compared if compared else None,
                "oracle": self.oracle_summary()}

    def oracle_summary(self) -> dict:
        """Mean label IoU against the hidden ground truth, overall and per distance (`ORACLE_NOTE`)."""
        frames = int(self.oracle_frames.sum())
        by_distance = {(f"{d + 1}+" if d + 1 == ORACLE_DISTANCES else str(d + 1)):
                       {"frames": int(n), "label_iou": float(v) / FIXED_POINT / int(n)}
                       for d, (v, n) in enumerate(zip(self.oracle_iou, self.oracle_frames)) if n}
        return {"note": ORACLE_NOTE, "frames": frames,
                "label_iou": float(self.oracle_iou.sum()) / FIXED_POINT / frames if frames else None,
                "by_distance": by_distance}


def _map_scores(saliency: np.ndarray, gt: np.ndarray) -> list[float]:
    """Soft IoU and MAE of a [0, 1] map, IoU and MAE of its Otsu label, against a binary ground truth."""
    g, s = gt.astype(bool), saliency.astype(np.float64)
    label = otsu_label(saliency).astype(bool)
    soft_union = np.maximum(s, g).sum()
    return [np.minimum(s, g).sum() / soft_union if soft_union else 1.0, float(np.abs(s - g).mean()),
            _iou(label, g), float((label != g).mean())]


def _iou(label: np.ndarray, gt: np.ndarray) -> float:
    """IoU of two boolean masks; 1 when both are empty."""
    union = (label | gt).sum()
    return float((label & gt).sum() / union) if union else 1.0


def _fixed_point(scores: list[float]) -> np.ndarray:
    return np.rint(np.array(scores) * FIXED_POINT).astype(np.int64)
