"""`SODMetrics`: every SOD figure of paper §IV-A (plus S, E, weighted F) as one torchmetrics Metric.

Two averaging protocols, and every result says which one it used:
- `"pysod"` (PySODMetrics): per-image scores averaged over all images; max/mean F and E are the
  max/mean of the averaged 256-threshold curves. States are fixed-size sums (one score row and an
  image count) reduced with `sum`, so DDP needs no gathering.
- `"davsod"` (the DAVSOD MATLAB toolbox): each sequence's first and last ground-truth frame is
  skipped, scores are averaged per sequence, then the per-sequence averages are averaged. Which
  frame is first or last is only known at the end, so per-image rows are kept (`cat` states) with a
  sequence key and frame index; rows repeated by a padding sampler are counted once.
"""

from __future__ import annotations

import zlib
from typing import Literal, Sequence

import torch
from torchmetrics import Metric

from scnn_lightning.metrics.functional import ROW_WIDTH, image_scores, summarize

Protocol = Literal["pysod", "davsod"]
PROTOCOLS = ("pysod", "davsod")


def sequence_key(name: str | int) -> int:
    """A stable integer for a sequence name, identical on every process (`hash` is salted)."""
    return name if isinstance(name, int) else zlib.crc32(name.encode("utf-8"))


class SODMetrics(Metric):
    """MAE, PR curve, max/mean/adaptive F (β² = 0.3), S, max/mean/adaptive E and weighted F.

    `update(pred, gt)` takes float maps in [0, 1], (B, H, W) or (H, W), and masks (0/1 or 0/255);
    under `protocol="davsod"` also `sequence` (name or names) and `frame_index` (int or ints).
    `compute()` returns `mae, max_f, mean_f, adp_f, s_measure, max_e, mean_e, adp_e, w_f` as floats,
    `precision, recall, f_curve, e_curve` as 256-vectors (index t: threshold t/255), `protocol` and
    `frames` (distinct frames given, first and last ones of a sequence included under "davsod").
    Under "pysod" `sequence` / `frame_index` are accepted and ignored. Accumulate with `update` and
    read with `compute`; calling the object (batch-level `forward`) gives per-batch figures only.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = None

    def __init__(self, *, protocol: Protocol = "pysod", **kwargs):
        super().__init__(**kwargs)
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
        self.protocol = protocol
        if protocol == "pysod":
            self.add_state("score_sum", torch.zeros(ROW_WIDTH, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state("images", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        else:
            self.add_state("rows", [], dist_reduce_fx="cat")
            self.add_state("sequence_keys", [], dist_reduce_fx="cat")
            self.add_state("frame_indices", [], dist_reduce_fx="cat")

    def update(
        self,
        pred: torch.Tensor | None = None,
        gt: torch.Tensor | None = None,
        sequence: str | int | Sequence[str | int] | None = None,
        frame_index: int | Sequence[int] | torch.Tensor | None = None,
        *,
        scores: torch.Tensor | None = None,
    ) -> None:
        """Add maps `pred` with masks `gt`, or `scores` rows already made by `functional.image_scores`
        (lets a caller score an image once and feed several metrics)."""
        if scores is None:
            if pred is None or gt is None:
                raise ValueError("SODMetrics.update needs pred and gt (or precomputed scores)")
            scores = image_scores(pred, gt)
        # Scores are made on the CPU; states live on the metric's device (what DDP syncs).
        rows = scores.to(self.device, torch.float64)
        if self.protocol == "pysod":
            self.score_sum += rows.sum(0)
            self.images += rows.shape[0]
            return
        if sequence is None or frame_index is None:
            raise ValueError('protocol "davsod" needs the sequence and frame_index of every map')
        names = [sequence] if isinstance(sequence, (str, int)) else list(sequence)
        indices = torch.as_tensor(frame_index, dtype=torch.long).reshape(-1)
        if len(names) != rows.shape[0] or indices.numel() != rows.shape[0]:
            raise ValueError(f"got {rows.shape[0]} maps but {len(names)} sequence names and {indices.numel()} frame indices")
        self.rows.append(rows)
        self.sequence_keys.append(torch.tensor([sequence_key(n) for n in names], dtype=torch.long, device=self.device))
        self.frame_indices.append(indices.to(self.device))

    def compute(self) -> dict:
        if self.protocol == "pysod":
            if self.images == 0:
                raise ValueError("SODMetrics.compute() called before any update")
            mean_row, frames = self.score_sum / self.images, int(self.images)
        else:
            mean_row, frames = self._davsod_mean_row()
        return {**summarize(mean_row), "protocol": self.protocol, "frames": frames}

    def _davsod_mean_row(self) -> tuple[torch.Tensor, int]:
        """The mean of the per-sequence means of interior frames, and the number of distinct frames."""
        rows, keys, indices = (_as_tensor(x) for x in (self.rows, self.sequence_keys, self.frame_indices))
        if rows is None:
            raise ValueError("SODMetrics.compute() called before any update")
        sequence_means, frames = [], 0
        for key in keys.unique():
            in_seq = keys == key
            # One row per frame: DistributedSampler padding repeats frames.
            order, first = torch.unique(indices[in_seq], return_inverse=True)
            picked = torch.zeros(order.numel(), ROW_WIDTH, dtype=torch.float64, device=rows.device)
            picked[first] = rows[in_seq]
            frames += order.numel()
            interior = picked[1:-1]
            if interior.shape[0]:
                sequence_means.append(interior.mean(0))
        if not sequence_means:
            raise ValueError('protocol "davsod" skips the first and last frame of each sequence; no sequence has more than two')
        return torch.stack(sequence_means).mean(0), frames


def sequence_scores(rows: list[tuple[int, torch.Tensor]], protocol: Protocol) -> dict[str, float | int]:
    """One sequence's figures from its (frame index, score row) pairs, as `scnn_lightning.evaluate` writes them
    per sequence: the mean row of its frames (interior frames only under "davsod"); repeated frames count once.
    `frames` is the number of distinct frames given; no scores when the protocol keeps none of them."""
    by_index = {index: row.reshape(-1) for index, row in rows}
    ordered = [by_index[i] for i in sorted(by_index)]
    kept = ordered[1:-1] if protocol == "davsod" else ordered
    if not kept:
        return {"frames": len(ordered)}
    return {"frames": len(ordered), **scalar_scores(summarize(torch.stack(kept).mean(0)))}


def scalar_scores(result: dict) -> dict[str, float | int]:
    """The numbers of a `SODMetrics.compute()` result (scores and `frames`), without curves and protocol."""
    return {k: v for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _as_tensor(state) -> torch.Tensor | None:
    """A `cat` state is a list before synchronisation and a tensor after it."""
    if isinstance(state, torch.Tensor):
        return state
    return torch.cat(state) if state else None
