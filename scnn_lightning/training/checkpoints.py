"""Our checkpoints: written atomically, read back (which stage wrote them, the stage-1 FCN for the cascade)."""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from scnn_lightning.errors import DataError
from scnn_lightning.models.fcn import FCN
from scnn_lightning.utils import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, staging each file beside its final name and renaming it into place.

    Lightning stages a checkpoint in the system temp folder and moves it over; from another filesystem that
    move is a copy, which a kill can tear, leaving a run without a readable last.ckpt to resume from."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: no temporary name inside the zip
            torch.save(checkpoint, f)


def read_checkpoint(path: str | Path, *, mmap: bool = False) -> dict:
    """The checkpoint's dict on the CPU; `mmap` maps the tensors instead of reading them (a quick look)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "checkpoint not found")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickles before refusing them
            warnings.simplefilter("ignore", UserWarning)
            # only a zip archive (what torch.save writes) can be mapped; anything else gets torch's own verdict
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipfile.is_zipfile(path))
    except Exception as exc:  # corrupt file, foreign pickle, …
        raise DataError(path, f"not a readable torch checkpoint ({_load_failure(exc)})") from exc


def _load_failure(exc: Exception) -> str:
    """Why torch.load failed, in one line. Its weights-only refusal is a page of advice to load the file
    unsafely, which does not apply: our checkpoints hold tensors and plain values only."""
    if isinstance(exc, pickle.UnpicklingError):
        return "torch.load finds no pickle of tensors and plain values in it"
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def checkpoint_stage(path: str | Path) -> str:
    """'image' for a stage-1 checkpoint, 'video' for a stage-2 (variant) one."""
    ckpt = read_checkpoint(path, mmap=True)
    if "scnn" not in ckpt:
        raise DataError(path, "not an scnn-lightning checkpoint (no 'scnn' entry)")
    return ckpt["scnn"]["stage"]


def checkpoint_variant(path: str | Path) -> str:
    """The variant code a stage-2 checkpoint holds ('image' for a stage-1 one)."""
    ckpt = read_checkpoint(path, mmap=True)
    if "scnn" not in ckpt:
        raise DataError(path, "not an scnn-lightning checkpoint (no 'scnn' entry)")
    return ckpt["scnn"]["variant"]


def load_fcn(path: str | Path) -> FCN:
    """The stage-1 FCN of a checkpoint (or FCN1 of a cascade checkpoint when it has one)."""
    ckpt = read_checkpoint(path)
    hp = ckpt.get("hyper_parameters", {})
    kwargs = {k: hp[k] for k in ("width", "fc_channels", "upsample", "dropout", "fc6") if k in hp}
    prefix = "fcn." if ckpt.get("scnn", {}).get("stage") == "image" else "model.fcn1."
    state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    if not state:
        raise DataError(path, "holds no stage-1 FCN (a variant without FCN1, such as sFCN or OT?)")
    fcn = FCN(in_channels=3, **kwargs)
    fcn.load_state_dict(state)
    return fcn
