"""Weak supervision of §III-C: classical saliency sources, Eq. 7–8 fusion, Otsu weak labels, label store.

The loop itself is `callback.WeakLabelRefresh`; `fit.py` holds its exact per-round sums and calibration."""

from scnn_lightning.weak.classical import CLASSICAL_MODELS, center_prior
from scnn_lightning.weak.fusion import (
    GramAccumulator,
    QPSolution,
    fit_fusion_weights,
    fuse_maps,
    otsu_label,
    simplex_qp_solution,
    solve_simplex_qp,
    weak_label,
)
from scnn_lightning.weak.sources import (
    ClassicalSource,
    FolderSource,
    PredictionSource,
    SaliencySource,
    build_sources,
)
from scnn_lightning.weak.store import WeakLabelStore, labels_hash

__all__ = [
    "CLASSICAL_MODELS",
    "ClassicalSource",
    "FolderSource",
    "GramAccumulator",
    "PredictionSource",
    "QPSolution",
    "SaliencySource",
    "WeakLabelStore",
    "build_sources",
    "center_prior",
    "fit_fusion_weights",
    "fuse_maps",
    "labels_hash",
    "otsu_label",
    "simplex_qp_solution",
    "solve_simplex_qp",
    "weak_label",
]
