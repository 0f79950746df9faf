"""Evaluation metrics (paper §IV-A): SOD scores as torchmetrics, and temporal consistency."""

from scnn_lightning.metrics.sod import PROTOCOLS, SODMetrics, scalar_scores
from scnn_lightning.metrics.temporal import temporal_consistency

__all__ = ["PROTOCOLS", "SODMetrics", "scalar_scores", "temporal_consistency"]
