"""Per-image salient-object-detection scores in torch (paper §IV-A), with PySODMetrics' conventions.

Conventions (those of PySODMetrics / the MATLAB toolboxes it mirrors):
- a prediction is first quantised to 8 bits, as a saved PNG map is (`round(255 * p)`), then
  min-max normalised per image (`mapminmax(im2double(.))`); a constant map is left as `u / 255`;
- ground truth is foreground where its 8-bit value is > 128 (0/1 masks are scaled to 0/255 first);
- the 256 curve thresholds act on `floor(255 * normalised)`: index t of every curve counts the
  pixels whose quantised value is >= t (ascending thresholds; PySOD stores them descending);
- the adaptive threshold is `min(2 * mean(prediction), 1)`.

Because an 8-bit map takes only 256 values, almost everything is computed from per-image
histograms of those values split by the ground truth: one `bincount` pass per batch, then 256-entry
tables. Only the S-measure's region term and the weighted F-measure need the pixel grid.

Two deliberate differences from PySODMetrics (both only in the S-measure's region term):
- a quadrant of constant, non-binary prediction over uniform ground truth has SSIM 1 (0/0 case, as
  in exact arithmetic); PySOD's `np.mean` can round so that a ~1e-17 variance survives and the
  score becomes 0 (e.g. a constant 77/255 map: S differs by 0.003);
- a quadrant with no pixel (GT centroid on the last row or column) has weight 0 here; PySOD
  averages an empty array and returns NaN.

`image_scores` returns one row per image (see `ROW_LAYOUT`); averaging rows over images (or over
sequences) and then taking max / mean of the averaged curves gives the dataset figures.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import correlate1d, distance_transform_edt

# MATLAB's eps, which PySODMetrics adds to denominators; keeping it keeps the numbers identical.
EPS = float(np.spacing(1))
F_BETA2 = 0.3  # β² of the F-measure (Achanta et al. 2009), the value every SOD paper uses
LEVELS = 256

SCALARS = ("mae", "adp_f", "s_measure", "adp_e", "w_f")
CURVES = ("precision", "recall", "f_curve", "e_curve")
# Column slices of an `image_scores` row.
ROW_LAYOUT: dict[str, slice] = {name: slice(i, i + 1) for i, name in enumerate(SCALARS)}
ROW_LAYOUT.update(
    {name: slice(len(SCALARS) + i * LEVELS, len(SCALARS) + (i + 1) * LEVELS) for i, name in enumerate(CURVES)}
)
ROW_WIDTH = len(SCALARS) + len(CURVES) * LEVELS


def validate_pair(pred: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Check a batch of maps and masks and bring them to (uint8 0..255 prediction, bool mask), (B, H, W).

    `pred` holds floats in [0, 1]; `gt` holds 0/1 or 0..255 values (bool, integer or float). Raises
    ValueError naming the problem (callers that know the file wrap it into `DataError`).
    """
    pred, gt = torch.as_tensor(pred), torch.as_tensor(gt)
    if pred.ndim == 2:
        pred = pred.unsqueeze(0)
    if gt.ndim == 2:
        gt = gt.unsqueeze(0)
    if pred.ndim != 3 or gt.ndim != 3:
        raise ValueError(f"expected (H, W) or (B, H, W) maps, got prediction {tuple(pred.shape)} and gt {tuple(gt.shape)}")
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} does not match ground-truth shape {tuple(gt.shape)}")
    if pred.numel() == 0:
        raise ValueError(f"empty maps of shape {tuple(pred.shape)}")
    if not pred.is_floating_point():
        raise ValueError(f"prediction must be a float map in [0, 1], got dtype {pred.dtype}")
    low, high = torch.aminmax(pred)  # NaN propagates into both
    if torch.isnan(low) or torch.isnan(high):
        raise ValueError("prediction contains NaN")
    if low < 0 or high > 1:
        raise ValueError(f"prediction values must lie in [0, 1], got [{low.item():.4g}, {high.item():.4g}]")
    if gt.is_floating_point() and torch.isnan(gt).any():
        raise ValueError("ground truth contains NaN")
    if gt.dtype == torch.bool:
        mask = gt
    elif gt.max() <= 1:  # a 0/1 mask: scaled to 0/255 it is > 128 exactly where it is > 128/255
        mask = gt.to(torch.float64) * 255 > 128
    else:
        mask = gt > 128
    # float64: p·255 of a float32 p is exact there, so rounding matches the uint8 a PNG writer stores.
    quantised = torch.round(pred.to(torch.float64) * 255).to(torch.uint8)
    return quantised, mask


def normalisation_table(pred_u8: torch.Tensor) -> torch.Tensor:
    """(B, 256) float64: the min-max-normalised value of each 8-bit level, per image.

    Same float64 operations as `mapminmax(im2double(.))`, so values are bit-identical to PySOD's.
    """
    flat = pred_u8.flatten(1)
    low = flat.amin(1).to(torch.float64)[:, None] / 255
    high = flat.amax(1).to(torch.float64)[:, None] / 255
    levels = torch.arange(LEVELS, dtype=torch.float64)[None, :] / 255
    span = high - low
    constant = span == 0
    return torch.where(constant, levels, (levels - low) / torch.where(constant, 1.0, span))


def level_histograms(pred_u8: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, 2, 256) pixel counts per 8-bit level: [:, 0] over background, [:, 1] over foreground."""
    b = pred_u8.shape[0]
    index = pred_u8.flatten(1).long() + LEVELS * mask.flatten(1).long()
    index = index + (2 * LEVELS) * torch.arange(b)[:, None]
    return torch.bincount(index.flatten(), minlength=b * 2 * LEVELS).view(b, 2, LEVELS).to(torch.float64)


def threshold_counts(hist: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """(B, 2, 256) counts of pixels with `floor(255 * normalised) >= t`, for t = 0..255."""
    bins = torch.floor(table * 255).long().clamp_(0, LEVELS - 1)  # astype(uint8) truncates
    per_bin = torch.zeros_like(hist).scatter_add_(2, bins[:, None, :].expand_as(hist), hist)
    return per_bin.flip(2).cumsum(2).flip(2)


def binarised_counts(hist: torch.Tensor, table: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """(B, 2) background / foreground pixel counts with `normalised >= threshold` (threshold: (B,))."""
    return (hist * (table >= threshold[:, None])[:, None, :]).sum(2)


def adaptive_threshold(hist: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """(B,) `min(2 * mean prediction, 1)`, the adaptive threshold of Achanta et al. 2009."""
    mean = (hist.sum(1) * table).sum(1) / hist.sum((1, 2))
    return torch.clamp(2 * mean, max=1.0)


def mean_absolute_error(hist: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """(B,) MAE between the normalised prediction and the binary mask (Perazzi et al. 2012)."""
    errors = hist[:, 0] * table + hist[:, 1] * (1 - table)
    return errors.sum(1) / hist.sum((1, 2))


def precision_recall(true_pos: torch.Tensor, pred_pos: torch.Tensor, gt_pos: torch.Tensor):
    """Precision and recall from counts (any matching shapes; gt_pos broadcast). 0/0 counts as 0."""
    precision = true_pos / torch.clamp(pred_pos, min=1)
    recall = true_pos / torch.clamp(gt_pos, min=1)
    return precision, recall


def f_measure(precision: torch.Tensor, recall: torch.Tensor, beta2: float = F_BETA2) -> torch.Tensor:
    """F_β = (1 + β²) P R / (β² P + R), defined as 0 where P R = 0."""
    numerator = (1 + beta2) * precision * recall
    denominator = torch.where(numerator == 0, 1.0, beta2 * precision + recall)
    return numerator / denominator


def f_curves(counts: torch.Tensor):
    """(precision, recall, F) curves, each (B, 256), from `threshold_counts`."""
    true_pos = counts[:, 1]
    gt_pos = counts[:, 1, :1]  # threshold 0 keeps every foreground pixel
    precision, recall = precision_recall(true_pos, counts.sum(1), gt_pos)
    return precision, recall, f_measure(precision, recall)


def adaptive_f_measure(hist: torch.Tensor, table: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """(B,) F-measure of the map binarised at the adaptive threshold."""
    kept = binarised_counts(hist, table, threshold)
    precision, recall = precision_recall(kept[:, 1], kept.sum(1), hist[:, 1].sum(1))
    return f_measure(precision, recall)


def enhanced_alignment(kept: torch.Tensor, gt_pos: torch.Tensor, size: int) -> torch.Tensor:
    """E-measure (Fan et al., IJCAI 2018) of binarised maps from counts alone.

    `kept[..., 0 / 1]`: predicted-foreground pixels over gt background / foreground; `gt_pos`
    broadcasts against `kept[..., 0]`. A binary map and mask take only four value pairs, so the
    enhanced-alignment matrix is a weighted sum over those four parts.
    """
    fg_bg, fg_fg = kept[..., 0], kept[..., 1]
    pred_pos = fg_fg + fg_bg
    bg_fg = gt_pos - fg_fg
    bg_bg = (size - pred_pos) - bg_fg
    pred_mean = pred_pos / size
    gt_mean = gt_pos / size

    def part(count, pred_value, gt_value):
        align = 2 * pred_value * gt_value / (pred_value**2 + gt_value**2 + EPS)
        return count * (align + 1) ** 2 / 4

    mixed = (
        part(fg_fg, 1 - pred_mean, 1 - gt_mean)
        + part(fg_bg, 1 - pred_mean, -gt_mean)
        + part(bg_fg, -pred_mean, 1 - gt_mean)
        + part(bg_bg, -pred_mean, -gt_mean)
    )
    # A mask with one class only: alignment reduces to counting the pixels predicted as that class.
    total = torch.where(gt_pos == 0, size - pred_pos, torch.where(gt_pos == size, pred_pos, mixed))
    return total / (size - 1 + EPS)


def object_similarity(count: torch.Tensor, total: torch.Tensor, total_sq: torch.Tensor) -> torch.Tensor:
    """S-measure object term 2 x̄ / (x̄² + 1 + σ_x) from the count, sum and sum of squares of a region."""
    mean = total / torch.clamp(count, min=1)
    variance = (total_sq - total * mean) / torch.clamp(count - 1, min=1)
    std = torch.sqrt(torch.clamp(variance, min=0))
    return 2 * mean / (mean**2 + 1 + std + EPS)


def object_score(hist: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """(B,) S-measure object-aware term: foreground similarity of P, background similarity of 1 − P."""
    bg, fg = hist[:, 0], hist[:, 1]
    fg_n, bg_n = fg.sum(1), bg.sum(1)
    fg_term = object_similarity(fg_n, (fg * table).sum(1), (fg * table**2).sum(1))
    inverse = 1 - table
    bg_term = object_similarity(bg_n, (bg * inverse).sum(1), (bg * inverse**2).sum(1))
    gt_share = fg_n / (fg_n + bg_n)
    return fg_term * gt_share + bg_term * (1 - gt_share)


def quadrant_sums(maps: list[torch.Tensor], cy: torch.Tensor, cx: torch.Tensor) -> torch.Tensor:
    """(B, C, 4) sums of each (B, H, W) map over the quadrants split at row cy, column cx.

    Quadrant order: top-left, top-right, bottom-left, bottom-right (rows < cy are "top"). The split
    differs per image, so each image is sliced; every pixel is read once per map.
    """
    out = torch.empty(maps[0].shape[0], len(maps), 4, dtype=torch.float64)
    for i, (row, col) in enumerate(zip(cy.long().tolist(), cx.long().tolist())):
        for c, m in enumerate(maps):
            top, bottom = m[i, :row].sum(0), m[i, row:].sum(0)
            out[i, c, 0], out[i, c, 1] = top[:col].sum(), top[col:].sum()
            out[i, c, 2], out[i, c, 3] = bottom[:col].sum(), bottom[col:].sum()
    return out


def region_similarity(n, sum_x, sum_xx, sum_y, sum_xy) -> torch.Tensor:
    """SSIM of a quadrant as the S-measure defines it, from sums (the mask y is binary so Σy² = Σy)."""
    safe_n = torch.clamp(n, min=1)
    x, y = sum_x / safe_n, sum_y / safe_n
    # One-pass variances are exact to ~1e-16 here; a region of constant value has variance 0, and
    # that decides the 0/0 case below, so cancellation noise is clipped away.
    noise = 1e-12
    var_x = sum_xx - sum_x * x
    var_x = torch.where(var_x.abs() < noise * torch.clamp(sum_xx, min=1), 0.0, var_x) / (n - 1 + EPS)
    var_y = (sum_y - sum_y * y) / (n - 1 + EPS)
    cov = (sum_xy - sum_x * y) / (n - 1 + EPS)
    alpha = 4 * x * y * cov
    beta = (x**2 + y**2) * (var_x + var_y)
    score = torch.where(alpha != 0, alpha / (beta + EPS), torch.where(beta == 0, 1.0, 0.0))
    return torch.where(n > 0, score, 0.0)  # an empty quadrant has weight 0


def region_score(pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) S-measure region-aware term: area-weighted SSIM of the four quadrants around the GT centroid."""
    b, h, w = mask.shape
    y = mask.to(torch.float64)
    fg = y.sum((1, 2))
    rows = (y.sum(2) * torch.arange(h, dtype=torch.float64)).sum(1) / torch.clamp(fg, min=1)
    cols = (y.sum(1) * torch.arange(w, dtype=torch.float64)).sum(1) / torch.clamp(fg, min=1)
    # MATLAB's 1-based centroid: the top-left quadrant keeps rows/cols 0 .. round(c) inclusive.
    cy = torch.where(fg > 0, torch.round(rows), torch.round(torch.tensor(h / 2.0))) + 1
    cx = torch.where(fg > 0, torch.round(cols), torch.round(torch.tensor(w / 2.0))) + 1
    sums = quadrant_sums([pred, pred * pred, y, pred * y], cy, cx)
    # Pixel counts of the quadrants follow from the split alone.
    top, left = cy.to(torch.float64), cx.to(torch.float64)
    counts = torch.stack([top * left, top * (w - left), (h - top) * left, (h - top) * (w - left)], dim=1)
    scores = region_similarity(counts, *sums.unbind(1))
    return (scores * counts / (h * w)).sum(1)


def s_measure(pred: torch.Tensor, mask: torch.Tensor, hist: torch.Tensor, table: torch.Tensor, alpha: float = 0.5):
    """(B,) S-measure (Fan et al., ICCV 2017): α·object + (1 − α)·region, clipped at 0."""
    gt_share = hist[:, 1].sum(1) / hist.sum((1, 2))
    mean_pred = (hist.sum(1) * table).sum(1) / hist.sum((1, 2))
    mixed = torch.clamp(alpha * object_score(hist, table) + (1 - alpha) * region_score(pred, mask), min=0)
    return torch.where(gt_share == 0, 1 - mean_pred, torch.where(gt_share == 1, mean_pred, mixed))


def gaussian_taps(size: int = 7, sigma: float = 5.0) -> torch.Tensor:
    """1-D taps whose outer product is `fspecial('gaussian', size, sigma)` (float64).

    MATLAB zeroes entries below eps·max; for 7×7, σ = 5 none is that small, so the kernel is
    exactly separable.
    """
    axis = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    taps = torch.exp(-(axis**2) / (2 * sigma**2))
    return taps / taps.sum()


def blur_zero_padded(image: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable filtering of an (H, W) float64 map with zeros outside (`imfilter` / `convolve(mode="constant")`).

    scipy's 1-D correlation is used: torch's float64 conv2d has no fast CPU kernel (~40x slower).
    """
    taps_np = taps.numpy()
    rows = correlate1d(image.numpy(), taps_np, axis=0, mode="constant")
    return torch.from_numpy(correlate1d(rows, taps_np, axis=1, mode="constant"))


_WFM_TAPS = gaussian_taps()


def weighted_f_measure_one(pred: torch.Tensor, mask: torch.Tensor, beta2: float = 1.0) -> float:
    """Weighted F-measure (Margolin et al., CVPR 2014) of one (H, W) map; 0 for an image without foreground.

    The Euclidean distance transform (with nearest-foreground indices) comes from scipy: torch has
    none, and using the same routine as the reference keeps tie-breaking between equidistant pixels
    identical. One image at a time: the distance transform is per image anyway, and image-sized
    temporaries stay in cache.
    """
    if not mask.any():
        return 0.0
    distance, (iy, ix) = distance_transform_edt(~mask.numpy(), return_indices=True)
    error = (pred - mask.to(torch.float64)).abs()
    # Pixel dependency: a background pixel inherits the error of its nearest foreground pixel.
    nearest = torch.from_numpy(iy * mask.shape[1] + ix).flatten()
    dependent = error.flatten()[nearest].view_as(error)
    blurred = blur_zero_padded(dependent, _WFM_TAPS)
    min_error = torch.where(mask & (blurred < error), blurred, error)
    # Pixel importance: background errors far from the object weigh up to twice as much.
    importance = torch.where(mask, 1.0, 2 - torch.exp(np.log(0.5) / 5 * torch.from_numpy(distance)))
    weighted = min_error * importance
    fg_count = float(mask.sum())
    fg_error = float(torch.where(mask, weighted, 0.0).sum())
    bg_error = float(weighted.sum()) - fg_error
    true_pos = fg_count - fg_error
    recall = 1 - fg_error / fg_count
    precision = true_pos / (true_pos + bg_error + EPS)
    return (1 + beta2) * recall * precision / (recall + beta2 * precision + EPS)


def weighted_f_measure(pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) weighted F-measure of (B, H, W) normalised maps against masks."""
    return torch.tensor([weighted_f_measure_one(p, m) for p, m in zip(pred, mask)], dtype=torch.float64)


def image_scores(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(B, ROW_WIDTH) float64 per-image scores and curves of float maps `pred` against masks `gt`."""
    pred_u8, mask = validate_pair(pred, gt)
    pred_u8, mask = pred_u8.cpu(), mask.cpu()  # scipy's distance transform and bincount want CPU anyway
    size = mask[0].numel()
    table = normalisation_table(pred_u8)
    hist = level_histograms(pred_u8, mask)
    counts = threshold_counts(hist, table)
    threshold = adaptive_threshold(hist, table)
    normalised = table.gather(1, pred_u8.flatten(1).long()).view(mask.shape)
    precision, recall, f_curve = f_curves(counts)
    gt_pos = hist[:, 1].sum(1)
    e_curve = enhanced_alignment(counts.transpose(1, 2), gt_pos[:, None], size)
    adp_e = enhanced_alignment(binarised_counts(hist, table, threshold), gt_pos, size)
    scalars = torch.stack(
        [
            mean_absolute_error(hist, table),
            adaptive_f_measure(hist, table, threshold),
            s_measure(normalised, mask, hist, table),
            adp_e,
            weighted_f_measure(normalised, mask),
        ],
        dim=1,
    )
    return torch.cat([scalars, precision, recall, f_curve, e_curve], dim=1)



def saved_map_scores(saved, gt) -> torch.Tensor:
    """(1, ROW_WIDTH) scores of one 8-bit map, as a PNG holds it (uint8 (H, W)), against its mask (H, W).

    The one scoring path shared by the runner's test step and `python -m scnn_lightning.evaluate`: both
    score the 8-bit values written to disk, so their numbers agree to rounding. (`u / 255` in float32
    quantises back to exactly `u` in `validate_pair`.)
    """
    saved = torch.as_tensor(np.asarray(saved))
    if saved.dtype != torch.uint8:
        raise ValueError(f"expected an 8-bit map, got dtype {saved.dtype}")
    return image_scores(saved.to(torch.float32) / 255, torch.as_tensor(np.asarray(gt)))

def summarize(mean_row: torch.Tensor) -> dict:
    """Dataset figures from an averaged score row: scalars as floats, curves as 256-vectors."""
    out = {name: float(mean_row[ROW_LAYOUT[name]][0]) for name in SCALARS}
    curves = {name: mean_row[ROW_LAYOUT[name]].clone() for name in CURVES}
    out.update(
        max_f=float(curves["f_curve"].max()),
        mean_f=float(curves["f_curve"].mean()),
        max_e=float(curves["e_curve"].max()),
        mean_e=float(curves["e_curve"].mean()),
    )
    out.update(curves)
    return out
