"""The temporal prior map Pt (paper §III-B, Eq. 6, Fig. 3).

flow → M superpixel segmentations of the flow map → deep + motion features per superpixel →
classifier score S_j per superpixel → scores painted back onto pixels and averaged over the M levels
→ bilinearly up-sampled to the frame size.
"""

from __future__ import annotations

import cv2
import numpy as np

from scnn_lightning.motion.classifier import RegionClassifier
from scnn_lightning.motion.clock import NO_CLOCK, StepClock

# The laps `superpixel_prior` records, in order (segment_level<j> for each of the classifier's levels).
PRIOR_STEPS = ("resize", "camera_motion", "backbone", "flow_colour", "segment_level1", "segment_level2",
               "segment_level3", "region_pooling", "classifier", "paint_upsample")


def fuse_levels_eq6(labels: list[np.ndarray], scores: list[np.ndarray]) -> np.ndarray:
    """Eq. 6: Pt(p) = 1/M Σ_j S_j(D(r_j(p))), where r_j(p) is the level-j superpixel holding pixel p.

    `labels[j]` is the (h, w) label map of level j and `scores[j][r]` the saliency of its region r.
    """
    if not labels or len(labels) != len(scores):
        raise ValueError(f"need one score vector per level, got {len(labels)} label maps and {len(scores)} scores")
    painted = [np.asarray(s, np.float32)[lab] for lab, s in zip(labels, scores)]
    return np.mean(painted, 0).astype(np.float32)


def superpixel_prior(image: np.ndarray, flow: np.ndarray, classifier: RegionClassifier, *,
                     clock: StepClock = NO_CLOCK) -> np.ndarray:
    """Pt of an RGB uint8 frame and its forward flow, (H, W) float32 in [0, 1] at the frame's size; `clock`
    gets a lap per step (see `PRIOR_STEPS`)."""
    regions = classifier.extractor.describe(image, flow, clock)
    scores = classifier.score_levels(regions)
    clock.lap("classifier")
    pt = fuse_levels_eq6(regions.labels, scores)
    h, w = image.shape[:2]
    pt = np.clip(cv2.resize(pt, (w, h), interpolation=cv2.INTER_LINEAR), 0, 1)
    clock.lap("paint_upsample")
    return pt
