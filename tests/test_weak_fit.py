"""The pieces of one weak-label round: held-out frames, exact Eq. 8 sums, the network map's calibration,
round scores and the disk cache of the static source maps."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.special import expit

from scnn_lightning.data.datamodule import frame_key, select_fusion_holdout
from scnn_lightning.data.records import FrameRef, SequenceRef
from scnn_lightning.weak.fit import (
    LEVELS,
    LOGIT_BINS,
    FitStats,
    RoundScores,
    bin_centres,
    calibrated_levels,
    logit_bins,
    platt_calibration,
)
from scnn_lightning.weak.fusion import fit_fusion_weights
from scnn_lightning.weak.source_cache import SourceMapCache, static_levels
from scnn_lightning.weak.sources import ClassicalSource, FolderSource


def _sequence(name: str, frames: int, labelled) -> SequenceRef:
    return SequenceRef(name, [FrameRef(name, f"{i:05d}", Path(f"/d/{name}/{i:05d}.jpg"),
                                       masks=(Path(f"/m/{i}.png"),) if i in labelled else ()) for i in range(frames)])


def _labelled(sequences) -> list:
    return [(s, i) for s in sequences for i, f in enumerate(s.frames) if f.labelled]


def test_holdout_takes_a_seeded_share_of_every_sequence():
    sequences = [_sequence("a", 12, range(0, 12)), _sequence("b", 12, range(0, 12, 3)),
                 _sequence("c", 5, (2,)), _sequence("d", 4, (0, 3))]
    labelled = _labelled(sequences)
    held = select_fusion_holdout(labelled, 0.25, seed=3)
    per_sequence = {name: sum(1 for e in held if e[0].name == name) for name in "abcd"}
    # round(0.25 n), at least 1 and at most n - 1; a lone labelled frame stays in training
    assert per_sequence == {"a": 3, "b": 1, "c": 0, "d": 1}
    assert held == [e for e in labelled if e in held]  # in the given order
    assert select_fusion_holdout(labelled[::-1], 0.25, seed=3) == held[::-1]  # the order does not choose
    assert select_fusion_holdout(labelled, 0.25, seed=3) == held
    others = [select_fusion_holdout(labelled, 0.25, seed=s) for s in range(4, 10)]
    assert any({frame_key(e) for e in o} != {frame_key(e) for e in held} for o in others)
    assert len(select_fusion_holdout(labelled, 0.9, seed=3)) == 11 + 3 + 0 + 1
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match=r"\(0, 1\)"):
            select_fusion_holdout(labelled, bad, seed=0)


def _maps(rng, k, n=3, h=9, w=11):
    static = rng.integers(0, 256, (k, n, h, w)).astype(np.uint8)
    gt = (rng.random((n, h, w)) < 0.3).astype(np.uint8)
    probability = expit(rng.normal(0, 4, (n, h, w)) + 3 * gt)
    return static, gt, probability


def test_binned_system_equals_the_gram_of_the_fused_maps():
    """The Eq. 8 system built from per-logit-bin sums is the one of the explicit 8-bit maps, to the last bit."""
    rng = np.random.default_rng(0)
    static, gt, probability = _maps(rng, k=3)
    stats = FitStats(3)
    stats.add(static, gt, logit_bins(probability))
    levels = calibrated_levels(0.8, -1.5)
    maps = np.concatenate([static, levels[logit_bins(probability)][None]]).reshape(4, -1).astype(np.float64) / LEVELS
    g = gt.reshape(-1).astype(np.float64)
    gram, cross, energy, pixels = stats.system(levels)
    np.testing.assert_allclose(gram, maps @ maps.T, rtol=1e-13)
    np.testing.assert_allclose(cross, maps @ g, rtol=1e-13)
    assert (energy, pixels) == (g.sum(), g.size)
    static_only = stats.system(None)
    np.testing.assert_array_equal(static_only[0], gram[:3, :3])
    # and the weights are those of the existing streamed fit on the same maps
    from scnn_lightning.weak.fusion import solve_simplex_qp

    np.testing.assert_allclose(solve_simplex_qp(gram, cross),
                               fit_fusion_weights(maps.reshape(4, *gt.shape), gt), atol=1e-7)


def test_sums_over_shards_are_exact_in_any_order():
    rng = np.random.default_rng(1)
    frames = [_maps(rng, k=2, n=1) for _ in range(6)]
    whole = FitStats(2)
    for static, gt, p in frames:
        whole.add(static, gt, logit_bins(p))
    shards = [FitStats(2), FitStats(2)]
    for i, (static, gt, p) in enumerate(frames):
        shards[i % 2].add(static, gt, logit_bins(p))
    reduced = FitStats(2)
    reduced.load_vector(shards[1].vector() + shards[0].vector())  # what all_reduce(sum) does
    assert reduced.vector().dtype == np.int64
    np.testing.assert_array_equal(reduced.vector(), whole.vector())
    np.testing.assert_array_equal(reduced.system(calibrated_levels(1.0, 0.0))[0],
                                  whole.system(calibrated_levels(1.0, 0.0))[0])


def test_platt_recovers_the_calibration_and_removes_a_class_balancing_offset():
    rng = np.random.default_rng(2)
    z = rng.normal(0, 3, 400_000)
    truth = rng.random(z.size) < expit(1.5 * z - 2.0)  # P(fg | z) = σ(1.5 z − 2)
    skewed = expit(z + 2.2)  # what the network reports: its logit pushed up by log(α / (1 − α))
    bins = logit_bins(skewed)
    a, b = platt_calibration(np.bincount(bins, minlength=LOGIT_BINS),
                             np.bincount(bins, weights=truth, minlength=LOGIT_BINS).astype(np.int64))
    # in the skewed logit z' = z + 2.2: 1.5 z − 2 = 1.5 z' − 5.3
    assert a == pytest.approx(1.5, abs=0.05) and b == pytest.approx(-5.3, abs=0.1)
    # separable classes and a constant map still give finite, sensible calibrations
    count, fg = np.zeros(LOGIT_BINS, np.int64), np.zeros(LOGIT_BINS, np.int64)
    count[[100, 1900]], fg[1900] = (900, 100), 100
    a, b = platt_calibration(count, fg)
    assert np.isfinite([a, b]).all() and expit(a * bin_centres()[1900] + b) > 0.98
    count, fg = np.zeros(LOGIT_BINS, np.int64), np.zeros(LOGIT_BINS, np.int64)
    count[1000], fg[1000] = 500, 50
    a, b = platt_calibration(count, fg)
    smoothed = (50 * 51 / 52 + 450 * 1 / 452) / 500  # Platt's targets (N₊+1)/(N₊+2) and 1/(N₋+2)
    assert expit(a * bin_centres()[1000] + b) == pytest.approx(smoothed, abs=1e-4)


def test_round_scores():
    scores = RoundScores(["half", "perfect"])
    gt = np.zeros((4, 4), np.uint8)
    gt[:2] = 1
    maps = np.stack([gt * 0.5, gt.astype(np.float64)])
    scores.add_heldout(maps, np.array([1.0, 0.0]), gt)  # the fused map is "half"
    scores.add_heldout(maps, np.array([0.0, 1.0]), gt)  # ... then "perfect"
    label = gt.copy()
    label[2, 0] = 1
    scores.add_label(label, previous=None)
    scores.add_label(label, previous=gt)
    total = RoundScores(["half", "perfect"])
    total.load_vector(scores.vector())
    heldout = total.summary()["heldout"]
    # the Otsu label of a two-level map is exact, so both labels score IoU 1
    assert {k: v for k, v in heldout.items() if k != "sources"} == pytest.approx(
        {"frames": 2, "fused_iou": (0.5 + 1) / 2, "fused_mae": (0.25 + 0) / 2, "label_iou": 1.0, "label_mae": 0.0})
    assert heldout["sources"]["half"] == pytest.approx({"fused_iou": 0.5, "fused_mae": 0.25, "label_iou": 1.0,
                                                        "label_mae": 0.0})
    assert heldout["sources"]["perfect"] == {"fused_iou": 1.0, "fused_mae": 0.0, "label_iou": 1.0, "label_mae": 0.0}
    summary = total.summary()
    assert summary["labels"] == 2 and summary["foreground"] == 9 / 16
    assert summary["changed_fraction"] == 1 / 16  # only the frame with a previous label counts
    assert RoundScores([]).summary()["changed_fraction"] is None


def test_classical_maps_are_computed_once_and_keyed_by_the_frame_file(tmp_path, monkeypatch):
    image = tmp_path / "f.jpg"
    rgb = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    assert cv2.imwrite(str(image), rgb)
    frame = FrameRef("s", "f", image)
    cache, source = SourceMapCache(tmp_path / "cache"), ClassicalSource("ft")
    first = cache.levels(source, frame, rgb)
    assert first.dtype == np.uint8 and first.shape == (24, 32)
    assert len(list((tmp_path / "cache").rglob("*.png"))) == 1
    monkeypatch.setattr(ClassicalSource, "map_for", lambda *a: pytest.fail("recomputed a cached map"))
    np.testing.assert_array_equal(cache.levels(source, frame, rgb), first)
    os.utime(image, ns=(0, 0))  # a rewritten frame file is another key
    assert cache.path(source, frame, rgb.shape[:2]) != next((tmp_path / "cache").rglob("*.png"))
    assert cache.path(ClassicalSource("mbd"), frame, (24, 32)) != cache.path(source, frame, (24, 32))


def test_folder_maps_are_read_not_cached(tmp_path):
    (tmp_path / "maps" / "s").mkdir(parents=True)
    assert cv2.imwrite(str(tmp_path / "maps" / "s" / "f.png"), np.full((24, 32), 128, np.uint8))
    frame = FrameRef("s", "f", tmp_path / "f.jpg")
    rgb = np.zeros((24, 32, 3), np.uint8)
    levels = static_levels([FolderSource(tmp_path / "maps", name="m")], frame, rgb, SourceMapCache(tmp_path / "c"))
    assert levels.shape == (1, 24, 32) and (levels == 128).all() and not (tmp_path / "c").exists()
