import sys
from pathlib import Path

import numpy as np
import pytest

from scnn_lightning.errors import DataError
from scnn_lightning.motion.flow import (FloFolder, compute_flow, flow_for_frame, flow_to_color,
                                        flow_to_gray, read_flo, write_flo)
from scnn_lightning.motion.magnitude import magnitude_prior

sys.path.insert(0, str(Path(__file__).parent))
from motion_clip import DISC_STEP, PAN, make_clip, texture  # noqa: E402


def test_flo_round_trip(tmp_path):
    flow = np.random.default_rng(0).normal(0, 5, (7, 11, 2)).astype(np.float32)
    write_flo(tmp_path / "a.flo", flow)
    assert (tmp_path / "a.flo").stat().st_size == 12 + 7 * 11 * 8
    np.testing.assert_array_equal(read_flo(tmp_path / "a.flo"), flow)
    assert [p.name for p in tmp_path.iterdir()] == ["a.flo"]  # no temporary left behind


def test_flo_bad_files(tmp_path):
    flow = np.zeros((4, 5, 2), np.float32)
    write_flo(tmp_path / "ok.flo", flow)
    raw = (tmp_path / "ok.flo").read_bytes()
    (tmp_path / "magic.flo").write_bytes(b"PIEH"[::-1] + raw[4:])
    (tmp_path / "short.flo").write_bytes(raw[:-8])
    (tmp_path / "tiny.flo").write_bytes(raw[:6])
    for name, problem in [("magic", "magic"), ("short", "does not match"), ("tiny", "too short"),
                          ("absent", "not found")]:
        with pytest.raises(DataError, match=problem) as err:
            read_flo(tmp_path / f"{name}.flo")
        assert str(err.value).startswith(str(tmp_path / f"{name}.flo"))


@pytest.mark.parametrize("backend", ["dis", "farneback"])
def test_flow_recovers_translation(backend):
    # A textured image shifted by (dx, dy) = (3, -2): the median flow inside a border-free window
    # must be within 0.25 px of the true shift (DIS is typically within 0.05 px here).
    rng = np.random.default_rng(1)
    big = texture(rng, 140, 180)
    img0 = big[10:130, 10:170]
    img1 = big[12:132, 7:167]  # content moves right by 3 and up by 2
    flow = compute_flow(img0, img1, backend)
    assert flow.shape == (120, 160, 2) and flow.dtype == np.float32
    med = np.median(flow[20:-20, 20:-20].reshape(-1, 2), 0)
    np.testing.assert_allclose(med, [3, -2], atol=0.25)


def test_last_frame_rule_and_single_frame(tmp_path):
    seq, discs, _ = make_clip(tmp_path, "clip", frames=3)
    last = flow_for_frame(seq, 2, "dis")
    # Backward flow negated: the background still moves by −PAN per frame forward in time.
    bg = ~discs[2]
    med = np.median(last[bg].reshape(-1, 2), 0)
    np.testing.assert_allclose(med, [-PAN[0], -PAN[1]], atol=0.3)
    in_disc = np.median(last[discs[2]].reshape(-1, 2), 0)
    np.testing.assert_allclose(in_disc, DISC_STEP, atol=1.0)
    single = type(seq)(name="one", frames=seq.frames[:1])
    assert not flow_for_frame(single, 0).any()


def test_flo_folder(tmp_path):
    seq, _, _ = make_clip(tmp_path / "img", "clip", frames=3)
    folder = FloFolder(tmp_path / "flo")
    for t, frame in enumerate(seq.frames[:2]):
        write_flo(folder.path(frame), np.full((96, 128, 2), t + 1, np.float32))
    assert flow_for_frame(seq, 0, folder)[0, 0, 0] == 1
    assert flow_for_frame(seq, 2, folder)[0, 0, 0] == 2  # last frame reuses the flow of frame N−2
    (folder.path(seq.frames[1])).unlink()
    with pytest.raises(DataError, match="missing precomputed flow") as err:
        flow_for_frame(seq, 1, folder)
    assert "00001.flo" in str(err.value)


def test_flow_colour_and_gray():
    u = np.array([[1.0, 0.0, -1.0, 0.0, 0.0]], np.float32)
    v = np.array([[0.0, 1.0, 0.0, -1.0, 0.0]], np.float32)
    col = flow_to_color(np.stack([u, v], -1))
    assert col.dtype == np.uint8
    np.testing.assert_array_equal(col[0, 4], [255, 255, 255])  # no motion is white
    np.testing.assert_array_equal(col[0, 0], [255, 0, 0])  # motion to the right is red (wheel start)
    assert len({tuple(c) for c in col[0, :4]}) == 4  # four directions, four colours
    gray = flow_to_gray(np.stack([u, v], -1))
    assert gray.dtype == np.float32 and gray.shape == (1, 5)
    assert 0 <= gray.min() and gray.max() == 1.0
    assert not np.isnan(flow_to_gray(np.zeros((3, 3, 2), np.float32))).any()


def test_magnitude_prior_zero_and_pan():
    assert (magnitude_prior(np.zeros((40, 50, 2), np.float32)) == 0).all()
    # Pure camera zoom (affine flow field) has no independent motion.
    yy, xx = np.mgrid[0:60, 0:80].astype(np.float32)
    zoom = np.stack([(xx - 40) * 0.05, (yy - 30) * 0.05], -1)
    assert magnitude_prior(zoom).max() < 0.05
