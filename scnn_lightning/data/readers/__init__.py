"""Registry of dataset readers: one function per on-disk layout, each returning a `DatasetIndex`.

    index = load_index("davis", "/data/DAVIS", split="val")

Layouts and their quirks are described in each module (and in the shared datasets.md notes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from scnn_lightning.data.readers import davis, davsod, duts, fbms, frames, msra10k, segtrackv2
from scnn_lightning.data.records import DatasetIndex
from scnn_lightning.errors import DataError

_MODULES = (msra10k, segtrackv2, fbms, davis, davsod, duts, frames)

DATASETS: dict[str, Callable[..., DatasetIndex]] = {
    "msra10k": msra10k.read_msra10k,
    "segtrackv2": segtrackv2.read_segtrackv2,
    "fbms": fbms.read_fbms,
    "davis": davis.read_davis,
    "davsod": davsod.read_davsod,
    "duts": duts.read_duts,
    "frames": frames.read_frames,
}
# Valid `split` values per dataset (None always means everything the root holds).
SPLITS: dict[str, tuple[str, ...]] = {module.NAME: module.SPLITS for module in _MODULES}


def load_index(name: str, root: str | Path, split: str | None = None) -> DatasetIndex:
    """Index the dataset `name` stored under `root`; nothing is decoded yet."""
    if name not in DATASETS:
        raise DataError(root, f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    return DATASETS[name](root, split=split)
