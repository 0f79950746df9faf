"""The saliency maps S_i fused by Eq. 7 (§III-C), each behind one small interface.

Four kinds of source: maps precomputed by any external model and stored in a folder (the paper's deep
image models [1]–[3]), the classical models of `classical.py`, the budgeted ground truth of the nearest
labelled frames warped to each frame by optical flow (`propagated.py`), and the current network's own
predictions, which Algorithm 1 (step 4) adds to the pool every round.
"""

from __future__ import annotations

from pathlib import Path
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from scnn_lightning.data.io import MAP_SUFFIXES, find_map, read_soft_map
from scnn_lightning.data.records import FrameRef
from scnn_lightning.errors import DataError
from scnn_lightning.motion.cache import frame_identity
from scnn_lightning.weak.classical import CLASSICAL_MODELS

PREDICTION = "prediction"  # spec name of the network's own maps in `build_sources`
PROPAGATED = "propagated"  # spec name of the warped ground truth (`propagated.PropagatedSource`)


@runtime_checkable
class SaliencySource(Protocol):
    name: str

    def map_for(self, frame: FrameRef, image: np.ndarray) -> np.ndarray:
        """(H, W) float32 map in [0, 1] at the size of `image` (the decoded frame)."""
        ...


def _fit_to_frame(saliency: np.ndarray, image: np.ndarray, origin: str | Path) -> np.ndarray:
    """Check a map is finite and in [0, 1], and resize it to the frame size."""
    if saliency.ndim != 2:
        raise DataError(origin, f"saliency map must be 2-D, got shape {saliency.shape}")
    saliency = saliency.astype(np.float32, copy=False)
    if not np.isfinite(saliency).all():
        raise DataError(origin, "saliency map contains NaN or infinite values")
    if saliency.min() < 0.0 or saliency.max() > 1.0:
        low, high = saliency.min(), saliency.max()
        raise DataError(origin, f"saliency map outside [0, 1] (min {low:.4g}, max {high:.4g})")
    h, w = image.shape[:2]
    if saliency.shape != (h, w):
        saliency = np.clip(cv2.resize(saliency, (w, h), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    return saliency


class FolderSource:
    """Maps precomputed by an external model, stored as <root>/<sequence>/<frame name>.png (or .jpg).

    Grey values 0..255 map to [0, 1]; colour files are converted to grey; maps of another size are
    resized to the frame. Reading one costs what reading a cached copy would, so none is cached.
    """

    cacheable = False

    def __init__(self, root: str | Path, *, name: str):
        self.root = Path(root)
        self.name = name
        if not self.root.is_dir():
            raise DataError(self.root, f"saliency map folder of source '{name}' does not exist")

    def expected_path(self, frame: FrameRef) -> Path:
        return self.root / frame.sequence / f"{frame.name}{MAP_SUFFIXES[0]}"

    def find(self, frame: FrameRef) -> Path | None:
        return find_map(self.root, frame.sequence, frame.name)

    def check(self, frames: Iterable[FrameRef]) -> list[str]:
        """Expected paths of every frame whose map is missing (empty list: all present)."""
        return [str(self.expected_path(f)) for f in frames if self.find(f) is None]

    def map_for(self, frame: FrameRef, image: np.ndarray) -> np.ndarray:
        path = self.find(frame)
        if path is None:
            raise DataError(
                self.expected_path(frame), f"saliency map of source '{self.name}' missing (also tried .jpg)"
            )
        return read_soft_map(path, image.shape[:2])


class ClassicalSource:
    """One of the training-free models in `classical.CLASSICAL_MODELS`, computed on the fly (and kept in the
    weak-label refresh's disk cache, `source_cache.py`, keyed by `model`)."""

    cacheable = True

    def __init__(self, model: str, *, name: str | None = None):
        if model not in CLASSICAL_MODELS:
            raise ValueError(f"unknown classical saliency model '{model}'; valid: {sorted(CLASSICAL_MODELS)}")
        self.model = model
        self.name = name or model

    def cache_parts(self, frame: FrameRef) -> list:
        """What the map depends on besides the training size (the disk cache's key)."""
        return [type(self).__name__, self.model, frame_identity(frame)]

    def map_for(self, frame: FrameRef, image: np.ndarray) -> np.ndarray:
        try:
            return CLASSICAL_MODELS[self.model](image)
        except ValueError as err:
            raise DataError(frame.image, f"classical model '{self.model}' cannot use this frame: {err}") from err


class PredictionSource:
    """The network's own saliency maps for the current round (Algorithm 1, step 4).

    Maps are keyed by (sequence, frame name) and replaced as a whole by `update` each round, so a
    stale map from an earlier round can never be fused by mistake.
    """

    def __init__(self, *, name: str = PREDICTION):
        self.name = name
        self._maps: dict[tuple[str, str], np.ndarray] = {}

    def update(self, maps: dict[tuple[str, str], np.ndarray]) -> None:
        self._maps = dict(maps)

    def __len__(self) -> int:
        return len(self._maps)

    def map_for(self, frame: FrameRef, image: np.ndarray) -> np.ndarray:
        key = (frame.sequence, frame.name)
        if key not in self._maps:
            raise DataError(frame.image, f"no '{self.name}' map for frame {key} in this round")
        return _fit_to_frame(np.asarray(self._maps[key]), image, frame.image)


def build_sources(specs: list[str | dict], *, propagation: Callable[..., SaliencySource] | None = None
                  ) -> list[SaliencySource]:
    """Sources from config specs: a classical model name ("ft", "mbd", "rbd"), "prediction" (the
    network's own maps), "propagated" or {"propagated": {"max_distance": N}} (the warped ground truth, made
    by the `propagation` factory, which knows the training frames), or {"folder": path, "name": label}.
    Source names must be unique because fusion weights are reported per name.
    """
    valid = (f"valid: {sorted(CLASSICAL_MODELS)}, '{PREDICTION}', '{PROPAGATED}', "
             f"{{'{PROPAGATED}': {{'max_distance': N}}}} or {{'folder': path, 'name': label}}")
    sources: list[SaliencySource] = []
    for spec in specs:
        if isinstance(spec, str) and spec == PREDICTION:
            sources.append(PredictionSource())
        elif spec == PROPAGATED or (isinstance(spec, Mapping) and set(spec) == {PROPAGATED}):
            if propagation is None:
                raise ValueError(f"the '{PROPAGATED}' source needs the training frames: it is built by the "
                                 f"weak-label refresh, not on its own")
            options = spec[PROPAGATED] if isinstance(spec, Mapping) else None
            sources.append(propagation(**dict(options or {})))
        elif isinstance(spec, str):
            if spec not in CLASSICAL_MODELS:
                raise ValueError(f"unknown saliency source '{spec}'; {valid}")
            sources.append(ClassicalSource(spec))
        elif isinstance(spec, Mapping) and set(spec) == {"folder", "name"}:
            sources.append(FolderSource(spec["folder"], name=str(spec["name"])))
        else:
            raise ValueError(f"bad saliency source spec {spec!r}; {valid}")
    names = [s.name for s in sources]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate saliency source names {duplicates}; give folder sources distinct 'name's")
    return sources
