"""The motion inputs of one frame at inference time, timed per step (paper §III-B; Table II columns).

The pairing follows the training pipeline (`motion.flow.plan_flow`): frame t pairs with t+1, the
last frame with t−1 (flow negated). Two cases only inference meets are defined here:

* a sequence of one frame has no motion evidence: zero flow, and Pt is the constant `NO_MOTION_PT`
  (0, "nothing moves on its own", the value the magnitude prior gives a static scene) for either prior,
  so P = Ps ⊗ Pt is 0 as it would be for a still scene; the FG flow image is that of zero flow;
* frames of different sizes in one sequence: each frame is processed at its own size and its flow
  partner is resized to it first (a resized partner still gives the right motion direction, where
  refusing would stop a whole video on one odd frame).
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from scnn_lightning.motion.flow import compute_flow, flow_to_gray
from scnn_lightning.motion.magnitude import magnitude_prior
from scnn_lightning.motion.provider import MotionProvider
from scnn_lightning.motion.temporal_prior import superpixel_prior

NO_MOTION_PT = 0.0


def match_size(partner: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The flow partner at the current frame's (H, W) (the rule of the module docstring)."""
    if partner.shape[:2] == tuple(shape[:2]):
        return partner
    return cv2.resize(partner, (int(shape[1]), int(shape[0])), interpolation=cv2.INTER_AREA)


class MotionStep:
    """Flow, then the variant's motion map ("pt" or "flow_gray"), each timed separately."""

    def __init__(self, provider: MotionProvider, needs: tuple[str, ...]):
        if not isinstance(provider.flow_backend, str):
            raise ValueError("inference computes flow itself: use the 'dis' or 'farneback' backend")
        self.provider = provider
        self.needs = needs

    def flow(self, image: np.ndarray, partner: np.ndarray | None, rule: str) -> np.ndarray:
        if rule == "zero":
            return np.zeros(image.shape[:2] + (2,), np.float32)
        flow = compute_flow(image, match_size(partner, image.shape), self.provider.flow_backend)
        return flow if rule == "forward" else -flow

    def temporal_prior(self, image: np.ndarray, flow: np.ndarray, rule: str) -> np.ndarray:
        if rule == "zero":
            return np.full(image.shape[:2], NO_MOTION_PT, np.float32)
        if self.provider.classifier is not None:
            return superpixel_prior(image, flow, self.provider.classifier)
        return magnitude_prior(flow, **self.provider.prior_params)

    def __call__(self, image: np.ndarray, partner: np.ndarray | None, rule: str
                 ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """({name: (H, W) float32 map}, {"flow": s, "temporal_prior": s}) for one frame."""
        start = time.perf_counter()
        flow = self.flow(image, partner, rule)
        flow_done = time.perf_counter()
        maps = {}
        if "pt" in self.needs:
            maps["pt"] = self.temporal_prior(image, flow, rule)
        if "flow_gray" in self.needs:
            maps["flow_gray"] = flow_to_gray(flow)
        return maps, {"flow": flow_done - start, "temporal_prior": time.perf_counter() - flow_done}
