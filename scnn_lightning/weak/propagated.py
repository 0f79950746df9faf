"""A saliency source made of ground truth carried along the video by optical flow.

For frame t of a training video, the masks of the nearest labelled frames on either side are warped to t
one frame at a time with optical flow (earlier label: s → s+1 forward; later label: s → s−1 backward) and
mixed by distance, w_prev = d_next / (d_prev + d_next) and w_next = d_prev / (d_prev + d_next), so the
closer label counts more; with one label within reach, that one alone. An allowed labelled frame gets its
own mask. Each step samples the previous mask bilinearly at x + flow(x), with flow computed from the step's
target frame to its source frame (backward warping, so every target pixel gets a value; 0 outside the
frame). Work is done at the frames' stored resolution and the result is resized to the caller's size.

Backward warping labels the background an object uncovers as object (its flow points back to where the
object was), so a carried mask smears along the object's path, more with every frame; the two smears lie
on opposite sides of the object, so the two-sided mix weakens them. A forward–backward consistency check
removes the smear on synthetic clips but erased fast objects on DAVIS (dog-agility at 427×240 with
label_every=10: IoU 0.47 → 0.17), so none is applied.

`max_distance` leaves out labels more than that many frames away; a frame with no label within reach (or
a still image without its own allowed label) gets an all-zero map. Zero here means "no evidence", yet
Eq. 7 cannot tell it from a confident "background": the fused label of such a frame is pulled down by this
source's weight.

Which ground truth may propagate is the caller's choice: the labelled frames within the label budget
minus the frames held out for the Eq. 8 fit. Held-out ground truth must never propagate: Eq. 8 weighs each
source by how well it matches the held-out masks, and a held-out frame whose own mask reached its map
would see a perfect source and hand it nearly all the weight. So on a held-out frame this source shows
what it makes of the next allowed labels, which lie further away than for the frames it will label (with
DAVIS label_every=10, about 10 frames, while a frame between two labels is at most ~5 frames from one).
The fit thus judges the source on harder frames than it labels: its weight is conservative.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Iterable

import cv2
import numpy as np

from scnn_lightning.data.io import frame_size, read_frame, read_mask
from scnn_lightning.data.records import FrameRef, SequenceRef
from scnn_lightning.errors import DataError
from scnn_lightning.motion.cache import file_identity, frame_identity
from scnn_lightning.motion.flow import FLOW_BACKENDS, compute_flow

VERSION = 1  # bump when a cached map would mean something else
# Flows kept per process (about 3.3 MB each at 854×480): labelling a gap between two labels frame by frame
# needs as many flows as the gap is long, so a gap of up to this many frames computes each flow once.
FLOW_MEMO = 32


def warp_back(mask: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """The source frame's `mask` seen from the target frame: mask(x + flow(x)), bilinear, 0 outside;
    `flow` goes from the target frame to the source frame."""
    h, w = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(mask, grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)


class PropagatedSource:
    """Ground truth of the allowed labelled frames (`sources`: (sequence, frame name) keys), warped by optical
    flow to the frames of `sequences`; see the module docstring. Picklable for DataLoader workers."""

    cacheable = True

    def __init__(self, sequences: Iterable[SequenceRef], sources: Iterable[tuple[str, str]], *,
                 max_distance: int | None = None, name: str = "propagated", flow: str = "dis"):
        if flow not in FLOW_BACKENDS:
            raise ValueError(f"unknown flow backend {flow!r}; valid: {', '.join(FLOW_BACKENDS)}")
        if max_distance is not None and (isinstance(max_distance, bool) or not isinstance(max_distance, int)
                                         or max_distance < 0):
            raise ValueError(f"max_distance must be a non-negative int or None, got {max_distance!r}")
        self.name, self.flow, self.max_distance = name, flow, max_distance
        self._sequences: dict[str, SequenceRef] = {}
        for seq in sequences:
            if self._sequences.setdefault(seq.name, seq) != seq:
                raise ValueError(f"two different sequences are named {seq.name!r}; frames are looked up by name")
        self._index = {(s.name, f.name): i for s in self._sequences.values() for i, f in enumerate(s.frames)}
        allowed: dict[str, list[int]] = {}
        for key in {tuple(k) for k in sources}:
            if key not in self._index:
                raise ValueError(f"labelled frame {key} is not a frame of the sequences given to '{name}'")
            if not self._sequences[key[0]].frames[self._index[key]].labelled:
                raise ValueError(f"frame {key} has no ground truth to propagate")
            allowed.setdefault(key[0], []).append(self._index[key])
        self._allowed = {seq: sorted(indices) for seq, indices in allowed.items()}
        self._flows: OrderedDict[tuple[str, int, int], np.ndarray] = OrderedDict()

    @property
    def propagating(self) -> set[tuple[str, str]]:
        """The (sequence, frame name) keys whose ground truth this source warps."""
        return {(seq, self._sequences[seq].frames[i].name) for seq, indices in self._allowed.items() for i in indices}

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_flows"] = OrderedDict()  # a per-process memo: a worker fills its own
        return state

    def _locate(self, frame: FrameRef) -> tuple[SequenceRef, int]:
        index = self._index.get((frame.sequence, frame.name))
        if index is None:
            raise DataError(frame.image, f"frame {frame.name} of sequence {frame.sequence!r} is not in the "
                                         f"training sequences the '{self.name}' source was built from")
        return self._sequences[frame.sequence], index

    def _neighbours(self, seq: SequenceRef, t: int) -> list[tuple[int, int]]:
        labels = self._allowed.get(seq.name, [])
        if t in labels:
            return [(t, 0)]
        if not seq.temporal:  # unrelated still images: nothing to carry over
            return []
        at = bisect.bisect(labels, t)
        nearest = labels[max(at - 1, 0):at] + labels[at:at + 1]
        return [(i, i - t) for i in nearest if self.max_distance is None or abs(i - t) <= self.max_distance]

    def neighbours(self, frame: FrameRef) -> list[tuple[int, int]]:
        """[(labelled frame index, its offset from the frame)]: the earlier label first (negative offset),
        then the later one; [(t, 0)] for an allowed labelled frame itself; [] when none is within reach."""
        return self._neighbours(*self._locate(frame))

    def distance(self, seq: SequenceRef, t: int) -> int | None:
        """Frames from frame `t` of `seq` to the nearest label this source carries to it (0 for an allowed
        labelled frame); None when none is within reach."""
        found = self._neighbours(seq, t)
        return min(abs(offset) for _, offset in found) if found else None

    def _flow(self, seq: SequenceRef, target: int, source: int) -> np.ndarray:
        key = (seq.name, target, source)
        if key in self._flows:
            self._flows.move_to_end(key)
            return self._flows[key]
        flow = compute_flow(read_frame(seq.frames[target]), read_frame(seq.frames[source]), self.flow)
        self._flows[key] = flow
        if len(self._flows) > FLOW_MEMO:
            self._flows.popitem(last=False)
        return flow

    def _carry(self, seq: SequenceRef, label: int, t: int) -> np.ndarray:
        """The mask of frame `label` warped to frame `t` step by step, at the stored resolution."""
        ref = seq.frames[label]
        mask = read_mask(ref, frame_size(ref)).astype(np.float32)
        step = 1 if t > label else -1
        for s in range(label, t, step):
            mask = warp_back(mask, self._flow(seq, s + step, s))
        return mask

    def map_for(self, frame: FrameRef, image: np.ndarray) -> np.ndarray:
        seq, t = self._locate(frame)
        found = self._neighbours(seq, t)
        h, w = image.shape[:2]
        if not found:
            return np.zeros((h, w), np.float32)
        if len(found) == 1:
            saliency = self._carry(seq, found[0][0], t)
        else:
            (prev, offset_prev), (nxt, d_next) = found
            d_prev = -offset_prev
            saliency = (d_next * self._carry(seq, prev, t) + d_prev * self._carry(seq, nxt, t)) / (d_prev + d_next)
        if saliency.shape != (h, w):
            saliency = cv2.resize(saliency, (w, h), interpolation=cv2.INTER_LINEAR)
        return np.clip(saliency, 0.0, 1.0).astype(np.float32)

    def cache_parts(self, frame: FrameRef) -> list:
        """JSON-able identity of everything the frame's map depends on (a disk cache's key): the version, the
        flow backend, `max_distance`, the frame, and per neighbour its offset, every frame of its chain and
        its mask files. Changing which frames may propagate changes it only for the frames it affects."""
        seq, t = self._locate(frame)
        chains = []
        for label, offset in self._neighbours(seq, t):
            ref = seq.frames[label]
            chains.append({"offset": offset,
                           "frames": [frame_identity(f) for f in seq.frames[min(label, t):max(label, t) + 1]],
                           "masks": [file_identity(p) for p in ref.masks], "mask_format": ref.mask_format})
        return [VERSION, self.flow, self.max_distance, frame_identity(seq.frames[t]), chains]
