"""The test phase of a tiny sFCN (random weights, CRF on) on 1 or N CPU processes, for both protocols.

`run_test_phase` is shared with `tests/test_runner_scores.py`; `tests/test_runner_scores_ddp.py` runs this file
as `python -m tests.ddp_score_run ...` from the repository root (Lightning's DDP launcher starts the other ranks
with the same command line). Rank 0 writes `<out>/scores.json`: per protocol, the pooled scores and each test
set's scores, as the runner records them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import lightning as L
import torch

from scnn_lightning.data.datamodule import SaliencyDataModule
from scnn_lightning.data.synthetic import generate_clips
from scnn_lightning.metrics import PROTOCOLS, scalar_scores
from scnn_lightning.training.module import SaliencyModule, create_module
from scnn_lightning.utils import write_json

NETWORK_SIZE = (32, 48)  # the test frames are of other sizes: every map is resized before it is scored


def make_sources(root: Path) -> list[dict]:
    """Two test sets, neither at the network size: a DAVIS-layout val split (one 40x72 clip of 5 frames) and a
    whole root (one 36x60 clip of 4). 9 frames in all: a padding sampler would score one of them twice."""
    davis = generate_clips(root / "davis", sequences=2, frames=5, height=40, width=72, seed=3, val_fraction=0.5)
    other = generate_clips(root / "other", sequences=1, frames=4, height=36, width=60, seed=4, val_fraction=0.0)
    return [{"dataset": "davis", "root": str(davis), "split": "val"}, {"dataset": "davis", "root": str(other)}]


def run_test_phase(trainer: L.Trainer, sources: list[dict], protocol: str, predictions: Path,
                   workers: int = 0) -> SaliencyModule:
    L.seed_everything(0)  # the same weights on every rank and in every call
    module = create_module("sFCN", width=0.0625, fc_channels=16, dropout=0.0, crf={"iterations": 2},
                           protocol=protocol, predictions_dir=str(predictions))
    module.test_workers = workers
    trainer.test(module, datamodule=SaliencyDataModule(test=sources, size=NETWORK_SIZE, batch_size=2))
    return module


def cpu_trainer(devices: int = 1) -> L.Trainer:
    return L.Trainer(accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto", logger=False,
                     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)


def recorded(module: SaliencyModule) -> dict:
    return {"pooled": scalar_scores(module.test_scores),
            "sets": {name: scalar_scores(s) for name, s in module.test_set_scores.items()},
            "sequences": module.test_sequence_scores}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", required=True, help="JSON file with the test sources (`make_sources`)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--devices", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    sources = json.loads(Path(args.sources).read_text())
    trainer = cpu_trainer(args.devices)
    results = {p: recorded(run_test_phase(trainer, sources, p, Path(args.out) / p)) for p in PROTOCOLS}
    if trainer.is_global_zero:
        write_json(Path(args.out) / "scores.json", results)


if __name__ == "__main__":
    main()
