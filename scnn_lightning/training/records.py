"""What a run records about itself beyond its scores: the validation curve of each stage and the machine.

Runs of the same command on two machines need not agree bit for bit (CPU kernels, thread counts), so every
run names its CPU, torch build and thread count; and a tested checkpoint is only explained by the curve it
was chosen from.
"""

from __future__ import annotations

import csv
import os
import platform
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from scnn_lightning.utils import atomic_path

CURVE_KEYS = ("val/s_measure", "val/max_f", "val/mae")
CURVE_FIELDS = ("epoch", "step", "lr", "s_measure", "max_f", "mae")
PRIOR_CURVE_KEYS = tuple(f"val/{prior}_{key.split('/')[1]}" for prior in ("ps", "p") for key in CURVE_KEYS)


class ValidationCurve(Callback):
    """Writes `path` (CSV, one row per validation epoch: epoch, optimizer steps, learning rate, S, max-F, MAE, and
    for a stage-2 variant with FCN1 the same of Ps alone and P = Ps·Pt alone: ps_s_measure, ..., p_mae).

    The rows live in the callback's checkpointed state, so a resumed run rewrites the file with exactly the
    epochs it has behind it (none from an interrupted epoch)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.rows: list[dict] = []

    def state_dict(self) -> dict:
        return {"rows": [dict(row) for row in self.rows]}

    def load_state_dict(self, state: dict) -> None:
        self.rows = [dict(row) for row in state["rows"]]

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not all(key in trainer.callback_metrics for key in CURVE_KEYS):
            return
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step, "lr": float(lr),
               **{key.split("/")[1]: float(trainer.callback_metrics[key]) for key in CURVE_KEYS},
               **{key.split("/")[1]: float(trainer.callback_metrics[key]) for key in PRIOR_CURVE_KEYS
                  if key in trainer.callback_metrics}}
        self.rows = [r for r in self.rows if r["epoch"] < row["epoch"]] + [row]
        if trainer.is_global_zero:
            write_curve(self.path, self.rows)


def write_curve(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        extra = [key.split("/")[1] for key in PRIOR_CURVE_KEYS if rows and key.split("/")[1] in rows[-1]]
        writer = csv.DictWriter(handle, fieldnames=[*CURVE_FIELDS, *extra])
        writer.writeheader()
        writer.writerows(rows)


def read_curve(path: str | Path) -> list[dict]:
    with Path(path).open(newline="") as handle:
        return [{k: (int(v) if k in ("epoch", "step") else float(v)) for k, v in row.items()}
                for row in csv.DictReader(handle)]


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it (Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict:
    """The machine facts that can change a run's numbers."""
    return {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "lightning": L.__version__, "python": platform.python_version(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
