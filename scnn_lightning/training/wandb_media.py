"""What a run shows on W&B besides scalars: the test PR curve and a few saliency-map panels."""

from __future__ import annotations

import numpy as np
from lightning.pytorch.utilities import rank_zero_only

PANELS = 4  # test frames shown per run (frame | ground truth | prediction)


@rank_zero_only  # under DDP only rank 0 talks to W&B (the others would build the table for nothing)
def log_wandb_media(logger, scores: dict, panels: list[np.ndarray]) -> None:
    """Log the PR curve as a W&B line plot and the panels as images into the logger's (the stage's) run; works
    offline, synced later."""
    import wandb

    recall, precision = scores["recall"].tolist(), scores["precision"].tolist()
    table = wandb.Table(data=[[r, p] for r, p in zip(recall, precision)], columns=["recall", "precision"])
    logger.experiment.log({"test/pr_curve": wandb.plot.line(table, "recall", "precision", title="PR curve")})
    if panels:
        logger.log_image(key="test/maps", images=list(panels), caption=["frame | ground truth | prediction"] * len(panels))
