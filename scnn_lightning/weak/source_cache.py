"""The frames one weak-label refresh pass reads, with their static source maps, and the disk cache of
those maps (§III-C: the saliency models' maps do not change during a run).

Keeping every static map in memory would cost K float maps per training frame for the whole run (about
30 GB at 480×854 on SegTrackV2 + FBMS-train); instead each map of a source that is costly to compute
(`cacheable`: the classical models, the propagated ground truth) is stored once as an 8-bit PNG under a
content key — the source's `cache_parts` (its kind and the identity of every file the map depends on:
path, size, mtime, video index) and the training size — written atomically
like the motion cache, so any number of ranks and DataLoader workers may fill it at once. Maps of a
folder source are read from their files each time.

Layout: `<root>/<key[:2]>/<key>.png`.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from scnn_lightning.data.datamodule import FrameDataset
from scnn_lightning.data.records import FrameRef
from scnn_lightning.data.transforms import to_uint8_image
from scnn_lightning.errors import DataError
from scnn_lightning.motion.cache import content_key
from scnn_lightning.utils import atomic_path
from scnn_lightning.weak.fit import to_levels

CACHE_VERSION = 1  # bump when a cached map would mean something else


class SourceMapCache:
    """8-bit maps of cacheable sources, one PNG per (source, frame, size)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, source, frame: FrameRef, size: tuple[int, int]) -> Path:
        key = content_key(CACHE_VERSION, *source.cache_parts(frame), list(size))
        return self.root / key[:2] / f"{key}.png"

    def levels(self, source, frame: FrameRef, rgb: np.ndarray) -> np.ndarray:
        """The (H, W) uint8 map of `source` for `frame` (decoded at training size as `rgb`), computed once."""
        path = self.path(source, frame, rgb.shape[:2])
        if path.is_file():
            cached = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if cached is None or cached.shape != rgb.shape[:2]:
                raise DataError(path, "unreadable or wrongly sized cached source map; delete it to recompute")
            return cached
        levels = to_levels(source.map_for(frame, rgb))
        with atomic_path(path) as tmp:  # the temporary keeps the .png suffix cv2 needs
            if not cv2.imwrite(str(tmp), levels):
                raise DataError(path, "could not write cached source map")
        return levels


def static_levels(sources: list, frame: FrameRef, rgb: np.ndarray, cache: SourceMapCache | None) -> np.ndarray:
    """(K, H, W) uint8 maps of the static `sources` for one frame."""
    maps = [cache.levels(s, frame, rgb) if cache is not None and getattr(s, "cacheable", False)
            else to_levels(s.map_for(frame, rgb)) for s in sources]
    return np.stack(maps)


class RefreshFrames(Dataset):
    """A `FrameDataset` (evaluation mode: training size, no augmentation) whose samples also carry
    `static`, the (K, H, W) uint8 maps of the static sources; computed in the DataLoader's workers."""

    def __init__(self, frames: FrameDataset, sources: list, cache: SourceMapCache | None):
        self.frames, self.sources, self.cache = frames, sources, cache

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> dict:
        sample = self.frames[i]
        seq, index = self.frames.entries[i]
        rgb = to_uint8_image(sample["image"])
        sample["static"] = torch.from_numpy(static_levels(self.sources, seq.frames[index], rgb, self.cache))
        return sample


def refresh_loader(dm, entries: list, sources: list, cache: SourceMapCache | None) -> DataLoader:
    """Batches of `entries` in order, read by `dm.num_workers` workers."""
    dataset = RefreshFrames(dm.dataset(entries), sources, cache)
    return DataLoader(dataset, batch_size=dm.batch_size, shuffle=False, num_workers=dm.num_workers)
