"""One entry point for the motion inputs of the cascade (paper §III-B, §IV-D ablations FG/FP/OT/SCNN).

`MotionProvider(...).maps(seq, i)` returns Pt (the temporal prior) and the grey flow image for frame
i at full frame resolution, computing the flow once and caching both maps (8-bit, see cache.py) when
`cache_dir` is set.

    prior="superpixel"  the paper's Pt (Eq. 6); needs a classifier trained by
                        `python -m scnn_lightning.motion.train_classifier ...`
    prior="magnitude"   the baseline: camera-compensated flow magnitude (magnitude.py)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from scnn_lightning.data.records import SequenceRef
from scnn_lightning.errors import DataError
from scnn_lightning.motion.cache import MotionCache, content_key, file_identity, frame_identity
from scnn_lightning.motion.classifier import RegionClassifier
from scnn_lightning.motion.flow import (FLOW_BACKENDS, FloFolder, FlowPlan, flow_for_frame, flow_to_gray,
                                        plan_flow, run_plan)
from scnn_lightning.motion.magnitude import magnitude_prior
from scnn_lightning.motion.temporal_prior import superpixel_prior

PRIORS = ("superpixel", "magnitude")
CACHE_VERSION = 2  # bump when the meaning or format of a cached value changes (2: 8-bit .npz maps)


@dataclass
class MotionMaps:
    pt: np.ndarray  # (H, W) float32 in [0, 1]: the temporal prior
    flow_gray: np.ndarray  # (H, W) float32 in [0, 1]: the flow colour image in grey (FG input)


MAP_NAMES = tuple(f.name for f in fields(MotionMaps))  # the names of a cache entry's arrays


class MotionProvider:
    def __init__(self, *, flow: str = "dis", prior: str = "superpixel", classifier: str | Path | None = None,
                 cache_dir: str | Path | None = None, flo_root: str | Path | None = None, **prior_params):
        """`flow`: "dis", "farneback", or "flo" (read `<flo_root>/<seq>/<stem>.flo`)."""
        if flow == "flo":
            if flo_root is None:
                raise ValueError('flow="flo" needs flo_root, the folder of precomputed <seq>/<stem>.flo files')
            self.flow_backend: str | FloFolder = FloFolder(flo_root)
        elif flow in FLOW_BACKENDS:
            self.flow_backend = flow
        else:
            raise ValueError(f"unknown flow backend {flow!r}; valid: {', '.join(FLOW_BACKENDS + ('flo',))}")
        if prior not in PRIORS:
            raise ValueError(f"unknown prior {prior!r}; valid: {', '.join(PRIORS)}")
        self.flow_name = flow
        self.prior = prior
        self.classifier: RegionClassifier | None = None
        if prior == "superpixel":
            if prior_params:
                raise ValueError(f"prior='superpixel' takes no parameters (they live in the classifier file), "
                                 f"got {sorted(prior_params)}")
            if classifier is None:
                raise DataError("<classifier>", "prior='superpixel' needs a trained region classifier; train one "
                                "with `python -m scnn_lightning.motion.train_classifier --dataset NAME --root ROOT "
                                "--out FILE` and pass classifier=FILE (or use prior='magnitude')")
            self.classifier = RegionClassifier.load(classifier)
            if self.classifier.flow != flow:
                warnings.warn(f"the region classifier was trained on {self.classifier.flow!r} flow, used here with "
                              f"{flow!r}: its motion statistics may be off", stacklevel=2)
        else:
            magnitude_prior(np.zeros((2, 2, 2), np.float32), **prior_params)  # reject unknown parameters now
        self.prior_params = dict(sorted(prior_params.items()))
        self.cache = MotionCache(cache_dir) if cache_dir is not None else None
        self.stats = {"hits": 0, "misses": 0}
        self._cache_key = content_key(CACHE_VERSION, self._flow_id(), prior, self.prior_params,
                                      self.classifier.digest if self.classifier else None)

    def _flow_id(self) -> str:
        return repr(self.flow_backend) if isinstance(self.flow_backend, FloFolder) else self.flow_backend

    @property
    def cache_key(self) -> str:
        """Identity of the flow backend, the prior and its parameters (and the classifier's digest)."""
        return f"{self.flow_name}-{self.prior}-{self._cache_key[:16]}"

    def _flow_key(self, plan: FlowPlan) -> str:
        inputs = [frame_identity(plan.frame)]
        if plan.partner is not None:
            inputs.append(frame_identity(plan.partner))
        if plan.flo is not None:
            if not plan.flo.is_file():
                raise DataError(plan.flo, f"missing precomputed flow for frame {plan.frame.sequence}/{plan.frame.name}")
            inputs.append(file_identity(plan.flo))
        return content_key(CACHE_VERSION, self._flow_id(), plan.rule, inputs)

    def flow(self, seq: SequenceRef, index: int) -> np.ndarray:
        """Forward flow of the frame (computed each time: the cache keeps the maps, see cache.py)."""
        return flow_for_frame(seq, index, self.flow_backend)

    def maps(self, seq: SequenceRef, index: int) -> MotionMaps:
        """Pt and the grey flow image of frame `index`, full frame resolution."""
        plan = plan_flow(seq, index, self.flow_backend)
        if self.cache is not None:
            key = content_key(self._cache_key, self._flow_key(plan))
            stored = self.cache.load(key, MAP_NAMES)
            if stored is not None:
                self.stats["hits"] += 1
                return MotionMaps(**stored)
        self.stats["misses"] += 1
        flow = run_plan(plan, self.flow_backend)
        maps = MotionMaps(pt=self._prior(seq, index, flow), flow_gray=flow_to_gray(flow))
        if self.cache is not None:  # serve what a later hit will read, so a cold and a warm cache agree
            maps = MotionMaps(**self.cache.save(key, pt=maps.pt, flow_gray=maps.flow_gray))
        return maps

    def _prior(self, seq: SequenceRef, index: int, flow: np.ndarray) -> np.ndarray:
        if self.classifier is None:
            return magnitude_prior(flow, **self.prior_params)
        from scnn_lightning.data.io import read_frame

        return superpixel_prior(read_frame(seq.frames[index]), flow, self.classifier)
