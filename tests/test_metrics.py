"""SOD metrics agree with PySODMetrics; the DAVSOD protocol and temporal consistency behave as defined."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

py_sod_metrics = pytest.importorskip("py_sod_metrics")

from scnn_lightning.metrics import SODMetrics, scalar_scores, temporal_consistency  # noqa: E402
from scnn_lightning.metrics.functional import ROW_LAYOUT, image_scores, saved_map_scores  # noqa: E402
from scnn_lightning.metrics.temporal import valid_flow_mask  # noqa: E402

H, W = 37, 53  # odd sizes on purpose
SCALAR_KEYS = ("mae", "max_f", "mean_f", "adp_f", "s_measure", "max_e", "mean_e", "adp_e", "w_f")


def _grid():
    yy, xx = np.mgrid[:H, :W]
    return yy, xx


def ground_truths() -> dict[str, np.ndarray]:
    yy, xx = _grid()
    return {
        "blob": (yy - 15) ** 2 + (xx - 25) ** 2 < 100,
        "empty": np.zeros((H, W), bool),
        "full": np.ones((H, W), bool),
        "corner": (yy < 5) & (xx < 7),
        "two_parts": ((yy - 8) ** 2 + (xx - 10) ** 2 < 30) | ((yy > 25) & (xx > 40)),
    }


def predictions() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = _grid()
    return {
        "random": rng.random((H, W)),
        "smooth": np.clip(np.exp(-((yy - 17) ** 2 + (xx - 22) ** 2) / 150) + 0.1 * rng.random((H, W)), 0, 1),
        "narrow_range": 0.3 + 0.2 * rng.random((H, W)),  # exercises the min-max normalisation
        "zeros": np.zeros((H, W)),
        "const_128": np.full((H, W), 128 / 255),
        "ones": np.ones((H, W)),
        "binary": ((yy - 14) ** 2 + (xx - 27) ** 2 < 90).astype(float),
        "two_level": (xx > 20) * 0.5,
    }


def reference(pairs) -> dict:
    """PySODMetrics' figures over a list of (uint8 pred, uint8 gt) pairs, curves in ascending threshold order."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its Fmeasure class announces a future deprecation
        fm, mae, sm, em, wfm = (py_sod_metrics.Fmeasure(), py_sod_metrics.MAE(), py_sod_metrics.Smeasure(),
                                py_sod_metrics.Emeasure(), py_sod_metrics.WeightedFmeasure())
        for pred, gt in pairs:
            for metric in (fm, mae, sm, em, wfm):
                metric.step(pred, gt)
        f, e = fm.get_results(), em.get_results()["em"]
    f_curve, e_curve = f["fm"]["curve"][::-1], e["curve"][::-1]
    return {
        "mae": mae.get_results()["mae"], "s_measure": sm.get_results()["sm"], "w_f": wfm.get_results()["wfm"],
        "adp_f": f["fm"]["adp"], "max_f": f_curve.max(), "mean_f": f_curve.mean(),
        "adp_e": e["adp"], "max_e": e_curve.max(), "mean_e": e_curve.mean(),
        "precision": f["pr"]["p"][::-1], "recall": f["pr"]["r"][::-1], "f_curve": f_curve, "e_curve": e_curve,
    }


def as_uint8(pred: np.ndarray, gt: np.ndarray):
    return np.round(pred * 255).astype(np.uint8), gt.astype(np.uint8) * 255


@pytest.mark.parametrize("gt_name", list(ground_truths()))
def test_every_metric_matches_pysodmetrics_per_image(gt_name):
    gt = ground_truths()[gt_name]
    for pred_name, pred in predictions().items():
        ours = SODMetrics()
        ours.update(torch.from_numpy(pred).float(), torch.from_numpy(gt))
        got, want = ours.compute(), reference([as_uint8(pred, gt)])
        for key, value in want.items():
            diff = np.max(np.abs(np.asarray(got[key], dtype=np.float64) - value))
            assert diff < 1e-4, f"{gt_name}/{pred_name} {key}: ours {got[key]} vs PySOD {value}"


def test_dataset_average_matches_pysodmetrics_and_batches_equal_single_images():
    pairs = [(p, g) for g in ground_truths().values() for p in predictions().values()]
    batched, single = SODMetrics(), SODMetrics()
    preds = torch.from_numpy(np.stack([p for p, _ in pairs])).float()
    gts = torch.from_numpy(np.stack([g for _, g in pairs]).astype(np.uint8) * 255)  # 0/255 masks
    batched.update(preds, gts)
    for p, g in pairs:
        single.update(torch.from_numpy(p).float(), torch.from_numpy(g).to(torch.uint8))  # 0/1 masks
    want = reference([as_uint8(p, g) for p, g in pairs])
    for metric in (batched, single):
        got = metric.compute()
        assert got["protocol"] == "pysod"
        assert set(SCALAR_KEYS) <= set(got)
        for key in SCALAR_KEYS:
            assert abs(got[key] - want[key]) < 1e-4, key
        for key in ("precision", "recall", "f_curve", "e_curve"):
            assert got[key].shape == (256,)
            assert np.max(np.abs(got[key].numpy() - want[key])) < 1e-4, key


def test_centroid_on_the_last_column_gives_a_number_not_nan():
    # PySOD's region term takes the mean of an empty quadrant here (NaN); the quadrant weighs 0.
    gt = np.zeros((H, W), bool)
    gt[:, -1] = True
    row = image_scores(torch.from_numpy(predictions()["smooth"]).float(), torch.from_numpy(gt))[0]
    s = row[ROW_LAYOUT["s_measure"]].item()
    assert np.isfinite(s) and 0 <= s <= 1


def test_perfect_prediction_scores_perfectly():
    gt = ground_truths()["blob"]
    metric = SODMetrics()
    metric.update(torch.from_numpy(gt.astype(np.float32)), torch.from_numpy(gt))
    got = metric.compute()
    assert got["mae"] == 0
    for key in ("max_f", "adp_f", "s_measure"):
        assert got[key] == pytest.approx(1.0, abs=1e-6), key
    for key in ("max_e", "adp_e"):  # the E-measure divides by (pixels - 1), as the MATLAB code does
        assert got[key] == pytest.approx(H * W / (H * W - 1), abs=1e-9), key
    assert got["w_f"] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(
    "pred, gt, message",
    [
        (torch.rand(4, 5), torch.zeros(4, 6), "does not match"),
        (torch.full((4, 5), float("nan")), torch.zeros(4, 5), "NaN"),
        (torch.rand(4, 5) + 1.5, torch.zeros(4, 5), r"\[0, 1\]"),
        (torch.randint(0, 255, (4, 5)), torch.zeros(4, 5), "float"),
        (torch.rand(2, 3, 4, 5), torch.zeros(2, 3, 4, 5), "expected"),
    ],
)
def test_bad_input_raises_a_clear_error(pred, gt, message):
    with pytest.raises(ValueError, match=message):
        SODMetrics().update(pred, gt)


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_compute_without_data_and_unknown_protocol_are_errors():
    with pytest.raises(ValueError, match="before any update"):
        SODMetrics().compute()
    with pytest.raises(ValueError, match="unknown protocol"):
        SODMetrics(protocol="matlab")
    with pytest.raises(ValueError, match="sequence and frame_index"):
        SODMetrics(protocol="davsod").update(torch.rand(4, 5), torch.zeros(4, 5))


def test_davsod_protocol_skips_first_and_last_frame_and_averages_sequences():
    rng = np.random.default_rng(3)
    gt = ground_truths()["blob"]
    seqs = {"long": 6, "short": 3}  # the short sequence keeps one frame, the long one four
    maps = {s: [rng.random((H, W)) for _ in range(n)] for s, n in seqs.items()}
    davsod = SODMetrics(protocol="davsod")
    for s in seqs:
        for i in reversed(range(seqs[s])):  # order of updates must not matter
            davsod.update(torch.from_numpy(maps[s][i]).float(), torch.from_numpy(gt), sequence=s, frame_index=i)
    got = davsod.compute()
    assert got["protocol"] == "davsod"
    per_seq = [reference([as_uint8(m, gt) for m in maps[s][1:-1]]) for s in seqs]
    for key in ("mae", "s_measure", "w_f", "adp_f", "adp_e"):
        assert got[key] == pytest.approx(np.mean([r[key] for r in per_seq]), abs=1e-6), key
    mean_f_curve = np.mean([r["f_curve"] for r in per_seq], axis=0)
    assert got["max_f"] == pytest.approx(mean_f_curve.max(), abs=1e-6)
    # ...which differs from pooling every image as the PySOD protocol does.
    pooled = reference([as_uint8(m, gt) for s in seqs for m in maps[s]])
    assert abs(got["mae"] - pooled["mae"]) > 1e-4


def test_davsod_protocol_counts_a_repeated_frame_once():
    rng = np.random.default_rng(4)
    gt = torch.from_numpy(ground_truths()["blob"])
    maps = [torch.from_numpy(rng.random((H, W))).float() for _ in range(4)]
    once, twice = SODMetrics(protocol="davsod"), SODMetrics(protocol="davsod")
    for i, m in enumerate(maps):
        once.update(m, gt, sequence="a", frame_index=i)
        twice.update(m, gt, sequence="a", frame_index=i)
    twice.update(maps[1], gt, sequence="a", frame_index=1)  # a padding sampler's repeat
    assert once.compute()["mae"] == pytest.approx(twice.compute()["mae"], abs=1e-12)
    assert once.compute()["frames"] == twice.compute()["frames"] == 4


def test_results_count_their_frames_and_scalar_scores_keeps_the_numbers():
    gt = torch.from_numpy(ground_truths()["blob"])
    maps = torch.rand(5, H, W, generator=torch.Generator().manual_seed(5))
    pysod, davsod = SODMetrics(), SODMetrics(protocol="davsod")
    pysod.update(maps, gt.expand(5, H, W))
    davsod.update(maps, gt.expand(5, H, W), sequence=["a", "a", "a", "b", "b"], frame_index=[0, 1, 2, 0, 1])
    assert pysod.compute()["frames"] == davsod.compute()["frames"] == 5  # davsod: first and last included
    scalars = scalar_scores(pysod.compute())
    assert set(scalars) == {*SCALAR_KEYS, "frames"} and isinstance(scalars["frames"], int)


def test_saved_map_scores_score_the_8_bit_values_as_a_png_holds_them():
    rng = np.random.default_rng(6)
    saved = rng.integers(0, 256, (H, W), dtype=np.uint8)
    mask = ground_truths()["two_parts"].astype(np.uint8)
    got = saved_map_scores(saved, mask)[0]
    want = reference([(saved, mask * 255)])
    for key in ("mae", "s_measure", "w_f", "adp_f", "adp_e"):
        assert float(got[ROW_LAYOUT[key]][0]) == pytest.approx(want[key], abs=1e-10), key
    with pytest.raises(ValueError, match="8-bit"):
        saved_map_scores(saved / 255.0, mask)


# ------------------------------------------------------------------ temporal consistency

def shift_x(image: np.ndarray, dx: int) -> np.ndarray:
    return np.roll(image, dx, axis=1)


def translation_flow(img0: np.ndarray, img1: np.ndarray) -> np.ndarray:
    """Flow of a pure horizontal translation, found by trying the shifts -5..5."""
    errors = {dx: np.abs(shift_x(img0.astype(int), dx) - img1).mean() for dx in range(-5, 6)}
    flow = np.zeros(img0.shape[:2] + (2,), np.float32)
    flow[..., 0] = min(errors, key=errors.get)
    return flow


def moving_clip(n: int = 4, dx: int = 3):
    rng = np.random.default_rng(5)
    texture = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:32, :48]
    blob = np.exp(-((yy - 16) ** 2 + (xx - 15) ** 2) / 40).astype(np.float32)
    frames = [shift_x(texture, dx * t) for t in range(n)]
    moving = [shift_x(blob, dx * t) for t in range(n)]
    return frames, moving, blob


def test_maps_that_follow_the_motion_have_zero_flicker():
    frames, moving, blob = moving_clip()
    assert temporal_consistency(moving, frames, translation_flow) == pytest.approx(0.0, abs=1e-6)
    frozen = temporal_consistency([blob] * len(frames), frames, translation_flow)
    flickering = temporal_consistency([blob if t % 2 else 1 - blob for t in range(len(frames))], frames, translation_flow)
    assert 0.01 < frozen < flickering


def test_flow_validity_excludes_pixels_leaving_the_frame_and_inconsistent_flow():
    forward = np.zeros((10, 12, 2), np.float32)
    forward[..., 0] = 3
    backward = -forward
    valid = valid_flow_mask(forward, backward)
    assert valid[:, :-3].all() and not valid[:, -3:].any()  # targets beyond the right edge
    assert not valid_flow_mask(forward, forward).any()  # going and coming back disagree


def test_temporal_consistency_rejects_too_few_maps_and_mismatched_sizes():
    frames, moving, _ = moving_clip()
    with pytest.raises(ValueError, match="at least two"):
        temporal_consistency(moving[:1], frames[:1], translation_flow)
    with pytest.raises(ValueError, match="sizes differ"):
        temporal_consistency([m[:-1] for m in moving], frames, translation_flow)
