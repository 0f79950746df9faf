"""The `propagated` weak-label source: ground truth carried to unlabelled frames by optical flow."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from scnn_lightning.data.io import read_frame, read_mask
from scnn_lightning.data.records import FrameRef, SequenceRef
from scnn_lightning.errors import DataError
from scnn_lightning.motion.flow import compute_flow
from scnn_lightning.weak.propagated import PropagatedSource
from scnn_lightning.weak.sources import SaliencySource
from tests.motion_clip import texture

# A textured square sliding right over a static textured background. Backward warping smears a mask over
# the background the square uncovers (module docstring), so the square is large next to its 3-frame path.
H, W, SIDE, STEP, X0, FRAMES = 128, 192, 56, 4, 12, 11
LABELLED = (0, 10)


def _square(t: int) -> np.ndarray:
    truth = np.zeros((H, W), bool)
    top, left = (H - SIDE) // 2, X0 + STEP * t
    truth[top:top + SIDE, left:left + SIDE] = True
    return truth


def _write_mask(path: Path, truth: np.ndarray) -> None:
    assert cv2.imwrite(str(path), truth.astype(np.uint8) * 255)


def _square_clip(root: Path) -> SequenceRef:
    """PNG frames under `root/square/`; ground truth on the frames of `LABELLED` only."""
    rng = np.random.default_rng(0)
    background = texture(rng, H, W, cell=5)
    skin = texture(rng, SIDE, SIDE, cell=3)
    folder = root / "square"
    folder.mkdir(parents=True)
    frames = []
    for t in range(FRAMES):
        image = background.copy()
        image[_square(t)] = skin.reshape(-1, 3)
        path = folder / f"{t:05d}.png"
        assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        masks = ()
        if t in LABELLED:
            masks = (folder / f"{t:05d}_gt.png",)
            _write_mask(masks[0], _square(t))
        frames.append(FrameRef("square", f"{t:05d}", path, masks))
    return SequenceRef("square", frames)


def _key(t: int) -> tuple[str, str]:
    return "square", f"{t:05d}"


def _full(source: PropagatedSource, seq: SequenceRef, t: int) -> np.ndarray:
    """The map at the stored size (no resize)."""
    return source.map_for(seq.frames[t], np.zeros((H, W, 3), np.uint8))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def _forward_reference(seq: SequenceRef, label: int, t: int) -> np.ndarray:
    """The label's mask carried forward to frame t, written out independently of the module."""
    mask = read_mask(seq.frames[label]).astype(np.float32)
    grid_x, grid_y = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
    for s in range(label, t):
        flow = compute_flow(read_frame(seq.frames[s + 1]), read_frame(seq.frames[s]), "dis")
        mask = cv2.remap(mask, grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return mask


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> SequenceRef:
    return _square_clip(tmp_path_factory.mktemp("propagated"))


def test_propagation_follows_the_moving_square(clip):
    source = PropagatedSource([clip], [_key(0), _key(10)])
    assert isinstance(source, SaliencySource)
    for t, nearest in ((3, 0), (7, 10)):
        warped = _iou(_full(source, clip, t) >= 0.5, _square(t))
        static = _iou(_square(nearest), _square(t))  # the nearest label's mask, not moved
        assert warped >= 0.8, (t, warped)
        assert warped > static + 0.15, (t, warped, static)


def test_held_out_ground_truth_never_propagates(clip):
    # Frame 10 has ground truth but is held out: frames 7 and 10 see frame 0's mask carried forward only.
    forward_only = PropagatedSource([clip], [_key(0)])
    assert forward_only.neighbours(clip.frames[7]) == [(0, -7)]
    assert forward_only.neighbours(clip.frames[10]) == [(0, -10)]
    np.testing.assert_allclose(_full(forward_only, clip, 7), _forward_reference(clip, 0, 7), atol=1e-6)
    assert _iou(_full(forward_only, clip, 10) >= 0.5, _square(10)) < 0.9  # not its own, perfect mask

    near_only = PropagatedSource([clip], [_key(0)], max_distance=5)
    assert near_only.neighbours(clip.frames[7]) == []
    assert not _full(near_only, clip, 7).any()  # no evidence
    assert near_only.neighbours(clip.frames[5]) == [(0, -5)]
    assert _full(near_only, clip, 5).any()

    own = _full(forward_only, clip, 0)
    assert forward_only.neighbours(clip.frames[0]) == [(0, 0)]
    assert own.dtype == np.float32
    np.testing.assert_array_equal(own, _square(0).astype(np.float32))


def test_distance_is_to_the_nearest_label_it_carries(clip):
    both = PropagatedSource([clip], [_key(0), _key(10)])
    assert [both.distance(clip, t) for t in (0, 3, 6, 10)] == [0, 3, 4, 0]
    assert PropagatedSource([clip], [_key(0)], max_distance=5).distance(clip, 7) is None


def test_labels_are_mixed_by_distance_and_resized(clip):
    both = PropagatedSource([clip], [_key(0), _key(10)])
    after = PropagatedSource([clip], [_key(0)])
    before = PropagatedSource([clip], [_key(10)])
    assert both.neighbours(clip.frames[3]) == [(0, -3), (10, 7)]
    for t in (3, 5):
        w_prev = (10 - t) / 10  # d_next / (d_prev + d_next)
        expected = w_prev * _full(after, clip, t) + (1 - w_prev) * _full(before, clip, t)
        np.testing.assert_allclose(_full(both, clip, t), expected, atol=1e-6)

    small = both.map_for(clip.frames[3], np.zeros((H // 2, W // 2, 3), np.uint8))
    assert small.shape == (H // 2, W // 2) and small.dtype == np.float32
    assert 0.0 <= small.min() and small.max() <= 1.0
    resized = cv2.resize(_full(both, clip, 3), (W // 2, H // 2), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(small, np.clip(resized, 0, 1), atol=1e-6)


def test_cache_parts_follow_what_the_map_depends_on(tmp_path):
    clip = _square_clip(tmp_path)
    frame = clip.frames[7]
    parts = PropagatedSource([clip], [_key(0), _key(10)]).cache_parts(frame)
    json.dumps(parts)
    assert parts == PropagatedSource([clip], [_key(0), _key(10)]).cache_parts(frame)
    assert parts != PropagatedSource([clip], [_key(0)]).cache_parts(frame)
    assert parts != PropagatedSource([clip], [_key(0), _key(10)], max_distance=8).cache_parts(frame)
    # Which frames propagate does not matter to a frame that keeps its own label.
    own = PropagatedSource([clip], [_key(0), _key(10)]).cache_parts(clip.frames[0])
    assert own == PropagatedSource([clip], [_key(0)]).cache_parts(clip.frames[0])

    mask_path = clip.frames[10].masks[0]
    _write_mask(mask_path, _square(9))
    stat = mask_path.stat()
    os.utime(mask_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert parts != PropagatedSource([clip], [_key(0), _key(10)]).cache_parts(frame)


def test_source_pickles_for_dataloader_workers(clip):
    source = PropagatedSource([clip], [_key(0), _key(10)])
    expected = _full(source, clip, 4)
    copy = pickle.loads(pickle.dumps(source))
    assert not copy._flows  # the flow memo stays in its process
    np.testing.assert_array_equal(_full(copy, clip, 4), expected)


def test_still_images_use_only_their_own_mask(tmp_path):
    frames = []
    for i in range(2):
        image, mask = tmp_path / f"{i}.png", tmp_path / f"{i}_gt.png"
        assert cv2.imwrite(str(image), np.full((20, 30, 3), 90, np.uint8))
        truth = np.zeros((20, 30), bool)
        truth[5:15, 5 + 10 * i:15 + 10 * i] = True
        _write_mask(mask, truth)
        frames.append(FrameRef("photos", str(i), image, (mask,)))
    photos = SequenceRef("photos", frames, temporal=False)
    source = PropagatedSource([photos], [("photos", "0")])
    np.testing.assert_array_equal(source.map_for(frames[0], np.zeros((20, 30, 3), np.uint8)),
                                  read_mask(frames[0]).astype(np.float32))
    assert source.neighbours(frames[1]) == []
    assert not source.map_for(frames[1], np.zeros((20, 30, 3), np.uint8)).any()


def test_unknown_frames_and_bad_arguments(clip, tmp_path):
    source = PropagatedSource([clip], [_key(0)])
    stranger = FrameRef("elsewhere", "00003", tmp_path / "elsewhere" / "00003.png")
    with pytest.raises(DataError, match="not in the training sequences") as err:
        source.map_for(stranger, np.zeros((H, W, 3), np.uint8))
    assert err.value.path == stranger.image and str(stranger.image) in str(err.value)
    with pytest.raises(DataError, match="00099"):
        source.cache_parts(FrameRef("square", "00099", tmp_path / "00099.png"))

    with pytest.raises(ValueError, match="not a frame"):
        PropagatedSource([clip], [("square", "00042")])
    with pytest.raises(ValueError, match="no ground truth"):
        PropagatedSource([clip], [_key(3)])
    with pytest.raises(ValueError, match="max_distance"):
        PropagatedSource([clip], [_key(0)], max_distance=-1)
    with pytest.raises(ValueError, match="flow backend"):
        PropagatedSource([clip], [_key(0)], flow="raft")
