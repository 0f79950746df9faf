"""Weights shipped inside the package: the real-video SCNN that `python -m scnn_lightning.predict` uses
when no `--ckpt` is given.

    scnn_lightning/weights/scnn-davis.ckpt                     the checkpoint (a stage-2 SCNN, any variant works)
    scnn_lightning/weights/scnn-davis.json                     its training data, settings, licence and scores
    scnn_lightning/weights/temporal/region_classifier.pt       the temporal prior's classifier, found beside the
                                                               checkpoint as in a run directory

The files are located relative to this package, wherever it is installed (package data, pyproject.toml).
"""

from __future__ import annotations

from pathlib import Path

from scnn_lightning.errors import DataError

WEIGHTS_DIR = Path(__file__).resolve().parent
DEFAULT_CHECKPOINT = WEIGHTS_DIR / "scnn-davis.ckpt"


def default_checkpoint() -> Path:
    """The shipped checkpoint; a `DataError` naming where it was looked for when this copy has none."""
    if not DEFAULT_CHECKPOINT.is_file():
        raise DataError(DEFAULT_CHECKPOINT, "no shipped checkpoint in this copy of the package; "
                                            "pass --ckpt CKPT (a run's checkpoints/last.ckpt)")
    return DEFAULT_CHECKPOINT


def register_weights_resolver() -> None:
    """`${weights:NAME}` in a config is the path of NAME in this folder (data=davis starts from the shipped stage 1
    with it); run configs saved by Hydra keep the interpolation, so whatever reads them registers it too."""
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("weights", lambda name: str(WEIGHTS_DIR / name), replace=True)
