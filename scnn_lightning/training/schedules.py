"""Learning-rate schedules of a training stage, built from torch's own schedulers.

`constant` is the paper's (§IV-B: a fixed rate); `poly` (DeepLab's (1 - t/T)^power) and `cosine` decay the
rate to zero over the stage's optimizer steps, so the last epochs move the weights
little and the tested model does not depend on where a noisy epoch happened to stop. Any of them can start
with a linear warm-up. The scheduler steps once per optimizer step; its state (the step count) is saved in
every checkpoint, so a resumed run continues the curve where it stopped.
"""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import (ConstantLR, CosineAnnealingLR, LinearLR, LRScheduler, PolynomialLR,
                                      SequentialLR)

SCHEDULES = ("constant", "poly", "cosine")
WARMUP_START = 1e-3  # the warm-up begins at this fraction of the peak rate


def build_scheduler(optimizer: torch.optim.Optimizer, name: str, *, total_steps: int, warmup_steps: int = 0,
                    power: float = 0.9) -> LRScheduler:
    """The stage's scheduler over `total_steps` optimizer steps, the first `warmup_steps` of them a linear ramp."""
    if name not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {name!r}")
    if warmup_steps < 0 or total_steps < 1:
        raise ValueError(f"need warmup_steps >= 0 and total_steps >= 1, got {warmup_steps} and {total_steps}")
    decay_steps = max(1, total_steps - warmup_steps)
    if name == "cosine":
        main: LRScheduler = CosineAnnealingLR(optimizer, T_max=decay_steps)
    elif name == "poly":
        main = PolynomialLR(optimizer, total_iters=decay_steps, power=power)
    else:
        main = ConstantLR(optimizer, factor=1.0, total_iters=0)
    if warmup_steps == 0:
        return main
    warmup = LinearLR(optimizer, start_factor=WARMUP_START, end_factor=1.0, total_iters=warmup_steps)
    return SequentialLR(optimizer, schedulers=[warmup, main], milestones=[warmup_steps])
