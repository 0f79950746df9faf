"""Shared fixtures: a composed experiment config shrunk to seconds on the CPU (lightning-hydra-template style)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "experiments" / "configs")
SHARED = Path(__file__).resolve().parents[2] / "shared"

torch.set_num_threads(min(2, os.cpu_count() or 1))

# Tiny synthetic benchmark and model: the pipeline, not the numbers, is under test.
TINY_OVERRIDES = [
    "data.generate.images.sequences=2", "data.generate.images.frames=4",
    "data.generate.train.sequences=3", "data.generate.train.frames=5", "data.generate.train.val_fraction=0.34",
    "data.generate.test.sequences=1", "data.generate.test.frames=4",
    *[f"data.generate.{s}.height=48" for s in ("images", "train", "test")],
    *[f"data.generate.{s}.width=64" for s in ("images", "train", "test")],
    "data.size=[48,64]", "data.batch_size=2",
    "model.width=0.0625", "model.fc_channels=64",
    "++trainer.max_epochs=1", "++trainer.limit_train_batches=2", "++trainer.limit_val_batches=1",
    "++trainer.limit_test_batches=1", "++trainer.enable_progress_bar=false", "++trainer.enable_model_summary=false",
    "++motion.classifier_epochs=2", "report=false",
]


def compose_run(output_dir: Path, data_dir: Path, overrides: list[str] = ()):
    """The real `experiments/configs/run.yaml`, composed with test overrides, output under `output_dir`."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="run", overrides=[*TINY_OVERRIDES, *overrides], return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.data_dir = str(data_dir)
        cfg.paths.cache_dir = str(data_dir / "cache")
        del cfg.hydra
    return cfg


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """One tiny generated benchmark shared by every runner test (generation is deterministic)."""
    return tmp_path_factory.mktemp("data")
