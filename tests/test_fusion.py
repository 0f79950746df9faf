"""Eq. 7–8 fusion: QP weights checked against independent solvers, weak labels by Otsu."""

from __future__ import annotations

import itertools
import tracemalloc

import cvxpy as cp
import numpy as np
import pytest
from scipy.optimize import minimize

from scnn_lightning.weak.fusion import (
    GramAccumulator,
    fit_fusion_weights,
    fuse_maps,
    project_to_simplex,
    solve_simplex_qp,
    trust_by_distance,
    weak_label,
)


def _objective(sources: np.ndarray, gt: np.ndarray, w: np.ndarray) -> float:
    """||G - Σ w_k S_k||² evaluated directly on the pixels (no Gram reduction)."""
    fused = np.tensordot(w, sources.astype(np.float64), axes=1)
    return float(((gt.astype(np.float64) - fused) ** 2).sum())


def _exhaustive(sources: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Exact simplex-QP optimum: solve the KKT system on every support, keep the best feasible point."""
    k = sources.shape[0]
    s = sources.reshape(k, -1).astype(np.float64)
    g = gt.reshape(-1).astype(np.float64)
    a, b = s @ s.T, s @ g
    best_value, best_w = np.inf, None
    for size in range(1, k + 1):
        for support in map(list, itertools.combinations(range(k), size)):
            kkt = np.zeros((size + 1, size + 1))
            kkt[:size, :size] = 2 * a[np.ix_(support, support)]
            kkt[:size, size] = kkt[size, :size] = 1
            try:
                x = np.linalg.solve(kkt, np.append(2 * b[support], 1.0))
            except np.linalg.LinAlgError:
                continue
            if (x[:size] < -1e-12).any():
                continue
            w = np.zeros(k)
            w[support] = x[:size]
            value = _objective(sources, gt, w)
            if value < best_value:
                best_value, best_w = value, w
    return best_w


def _slsqp(sources: np.ndarray, gt: np.ndarray) -> np.ndarray:
    k = sources.shape[0]
    s = sources.reshape(k, -1).astype(np.float64)
    g = gt.reshape(-1).astype(np.float64)
    result = minimize(
        lambda w: float(((g - w @ s) ** 2).mean()),
        np.full(k, 1.0 / k),
        jac=lambda w: -2 * s @ (g - w @ s) / g.size,
        method="SLSQP",
        bounds=[(0, 1)] * k,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}],
        options={"ftol": 1e-14, "maxiter": 500},
    )
    assert result.success, result.message
    return result.x


def _problem(rng, k, n, size=10, p=0.3):
    gt = (rng.random((n, size, size)) < p).astype(np.uint8)
    # Sources: noisy versions of G of varying quality, so the optimum is interior or on a face.
    noise = rng.random((k, n, size, size))
    quality = rng.random((k, 1, 1, 1))
    return np.clip(quality * gt[None] + (1 - quality) * noise, 0, 1).astype(np.float32), gt


def test_matches_exhaustive_solver_on_random_problems():
    rng = np.random.default_rng(0)
    for _ in range(15):
        sources, gt = _problem(rng, k=int(rng.integers(2, 6)), n=int(rng.integers(1, 5)))
        w = fit_fusion_weights(sources, gt)
        assert w.min() >= 0 and abs(w.sum() - 1) < 1e-9
        np.testing.assert_allclose(w, _exhaustive(sources, gt), atol=1e-4)


def test_matches_slsqp():
    rng = np.random.default_rng(1)
    for k in (2, 4, 6):
        sources, gt = _problem(rng, k=k, n=3)
        np.testing.assert_allclose(fit_fusion_weights(sources, gt), _slsqp(sources, gt), atol=1e-4)


def test_identical_sources_reach_optimal_objective():
    rng = np.random.default_rng(2)
    sources, gt = _problem(rng, k=2, n=3)
    tripled = np.concatenate([sources[:1], sources[:1], sources[:1], sources[1:]])  # three duplicates
    w = fit_fusion_weights(tripled, gt)
    assert w.min() >= 0 and abs(w.sum() - 1) < 1e-9
    reference = _exhaustive(tripled, gt)
    assert _objective(tripled, gt, w) == pytest.approx(_objective(tripled, gt, reference), rel=1e-6, abs=1e-9)
    # Any split among duplicates is optimal, but their total must match the unique optimum.
    assert w[:3].sum() == pytest.approx(_exhaustive(sources, gt)[0], abs=1e-4)


def test_perfect_source_takes_all_weight():
    rng = np.random.default_rng(3)
    sources, gt = _problem(rng, k=4, n=4)
    sources[2] = gt
    np.testing.assert_allclose(fit_fusion_weights(sources, gt), [0, 0, 1, 0], atol=1e-4)


def test_all_zero_ground_truth():
    rng = np.random.default_rng(4)
    sources, _ = _problem(rng, k=3, n=2)
    gt = np.zeros(sources.shape[1:], np.uint8)
    w = fit_fusion_weights(sources, gt)
    reference = _exhaustive(sources, gt)
    np.testing.assert_allclose(w, reference, atol=1e-4)
    assert _objective(sources, gt, w) == pytest.approx(_objective(sources, gt, reference), rel=1e-6)


def test_all_blank_sources_give_uniform_weights():
    gt = np.ones((2, 4, 4), np.uint8)
    np.testing.assert_allclose(fit_fusion_weights(np.zeros((3, 2, 4, 4)), gt), np.full(3, 1 / 3))


def test_single_source_gets_weight_one():
    rng = np.random.default_rng(5)
    sources, gt = _problem(rng, k=1, n=2)
    np.testing.assert_allclose(fit_fusion_weights(sources, gt), [1.0], atol=1e-9)


def test_large_n_memory_does_not_grow_with_n():
    rng = np.random.default_rng(6)
    sources = rng.random((4, 2000, 32, 32), dtype=np.float32)
    gt = (rng.random((2000, 32, 32)) < 0.3).astype(np.uint8)
    sources[1] = np.clip(0.7 * gt + 0.3 * sources[1], 0, 1)

    def peak_bytes(n):
        tracemalloc.start()
        w = fit_fusion_weights(sources[:, :n], gt[:n], chunk_pixels=1 << 16)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return w, peak

    w_small, peak_small = peak_bytes(200)
    w, peak = peak_bytes(2000)
    assert peak < 6 * 2**20, f"peak {peak / 2**20:.1f} MiB; a float64 copy of the stack is 64 MiB"
    assert peak < 1.5 * peak_small + 2**20
    # Independent reduction (one float64 einsum over everything) + SLSQP on the reduced QP.
    s = sources.reshape(4, -1).astype(np.float64)
    a, b = s @ s.T, s @ gt.reshape(-1).astype(np.float64)
    ref = minimize(
        lambda v: (v @ a @ v - 2 * b @ v) / gt.size,
        np.full(4, 0.25),
        jac=lambda v: (2 * a @ v - 2 * b) / gt.size,
        method="SLSQP",
        bounds=[(0, 1)] * 4,
        constraints=[{"type": "eq", "fun": lambda v: v.sum() - 1}],
        options={"ftol": 1e-15, "maxiter": 500},
    )
    np.testing.assert_allclose(w, ref.x, atol=1e-4)
    assert np.abs(w - w_small).max() < 0.05  # same population of frames, similar weights


def test_streamed_shards_equal_one_fit():
    """DDP use: each rank accumulates its shard; summed Gram systems solve to the single-process answer."""
    rng = np.random.default_rng(7)
    sources, gt = _problem(rng, k=3, n=6)
    shards = [GramAccumulator(3), GramAccumulator(3)]
    for i in range(6):
        shards[i % 2].add(sources[:, i], gt[i])  # one frame at a time, (K, H, W) + (H, W)
    w = solve_simplex_qp(shards[0].gram + shards[1].gram, shards[0].cross + shards[1].cross)
    np.testing.assert_allclose(w, fit_fusion_weights(sources, gt), atol=1e-7)
    whole = GramAccumulator(3)
    whole.add(sources, gt)
    assert whole.objective(w) == pytest.approx(_objective(sources, gt, w) / gt.size, rel=1e-9)


@pytest.mark.parametrize("mode", ["raise", "no_solution"])
def test_solver_failure_falls_back_with_warning(monkeypatch, mode):
    rng = np.random.default_rng(8)
    sources, gt = _problem(rng, k=4, n=3)

    def broken_solve(self, *args, **kwargs):
        if mode == "raise":
            raise cp.SolverError("simulated failure")

    monkeypatch.setattr(cp.Problem, "solve", broken_solve)
    with pytest.warns(RuntimeWarning, match="projected gradient"):
        w = fit_fusion_weights(sources, gt)
    assert np.isfinite(w).all() and w.min() >= 0 and abs(w.sum() - 1) < 1e-9
    np.testing.assert_allclose(w, _exhaustive(sources, gt), atol=1e-4)


def test_simplex_projection():
    np.testing.assert_allclose(project_to_simplex(np.array([0.2, 0.3, 0.5])), [0.2, 0.3, 0.5])
    np.testing.assert_allclose(project_to_simplex(np.array([2.0, 0.0, -1.0])), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(project_to_simplex(np.array([1.0, 1.0])), [0.5, 0.5])


@pytest.mark.parametrize(
    "sources, gt, match",
    [
        (np.full((2, 1, 4, 4), np.nan), np.zeros((1, 4, 4)), "NaN"),
        (np.full((2, 1, 4, 4), 1.5), np.zeros((1, 4, 4)), r"\[0, 1\]"),
        (np.zeros((2, 1, 4, 4)), np.full((1, 4, 4), 2), "binary"),
        (np.zeros((2, 1, 4, 4)), np.zeros((1, 4, 5)), "shape"),
        (np.zeros((2, 4, 4)), np.zeros((4, 4)), "shape"),
        (np.zeros((2, 0, 4, 4)), np.zeros((0, 4, 4)), "N >= 1"),
    ],
)
def test_fit_rejects_bad_input(sources, gt, match):
    with pytest.raises(ValueError, match=match):
        fit_fusion_weights(sources, gt)


def test_bad_chunk_leaves_accumulator_unchanged():
    accumulator = GramAccumulator(2, chunk_pixels=16)
    sources = np.full((2, 3, 4, 4), 0.5)
    sources[:, 2, 0, 0] = np.nan  # only the last chunk is bad
    with pytest.raises(ValueError, match="NaN"):
        accumulator.add(sources, np.zeros((3, 4, 4)))
    assert accumulator.pixels == 0 and not accumulator.gram.any()
    with pytest.raises(ValueError, match="no labelled frames"):
        accumulator.solve()


def test_solve_rejects_bad_gram():
    with pytest.raises(ValueError, match="shape"):
        solve_simplex_qp(np.eye(3), np.ones(2))
    with pytest.raises(ValueError, match="NaN"):
        solve_simplex_qp(np.full((2, 2), np.nan), np.ones(2))


def test_fuse_maps_is_weighted_sum():
    rng = np.random.default_rng(9)
    maps = rng.random((3, 5, 6)).astype(np.float32)
    w = np.array([0.5, 0.2, 0.3])
    fused = fuse_maps(maps, w)
    assert fused.dtype == np.float32 and fused.shape == (5, 6)
    np.testing.assert_allclose(fused, 0.5 * maps[0] + 0.2 * maps[1] + 0.3 * maps[2], atol=1e-6)
    with pytest.raises(ValueError, match="sum to 1"):
        fuse_maps(maps, np.array([0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match="weights"):
        fuse_maps(maps, np.array([0.5, 0.5]))


def test_weak_label_selects_object_by_weights():
    rng = np.random.default_rng(10)
    obj = np.zeros((40, 50), np.uint8)
    obj[10:25, 15:40] = 1
    good = np.clip(0.15 + 0.7 * obj + 0.1 * rng.random(obj.shape), 0, 1)
    misleading = np.zeros_like(good)
    misleading[:, :10] = 1.0
    maps = np.stack([good, misleading]).astype(np.float32)
    label = weak_label(maps, np.array([1.0, 0.0]))
    assert label.dtype == np.uint8 and set(np.unique(label)) == {0, 1}
    np.testing.assert_array_equal(label, obj)
    assert weak_label(maps, np.array([0.0, 1.0]))[:, :10].all()


def test_weak_label_of_flat_map_is_empty():
    maps = np.full((2, 8, 8), 0.4, np.float32)
    label = weak_label(maps, np.array([0.5, 0.5]))
    assert label.dtype == np.uint8 and not label.any()


def test_confidence_levels_keep_the_otsu_decision_and_grow_away_from_it():
    from scnn_lightning.weak.fusion import confidence_levels, otsu_label, otsu_threshold

    rng = np.random.default_rng(3)
    for _ in range(20):
        fused = (rng.random((12, 17)) ** rng.uniform(0.3, 3.0)).astype(np.float32)
        levels, t = confidence_levels(fused), otsu_threshold(fused)
        np.testing.assert_array_equal(levels >= 128, otsu_label(fused).astype(bool))
        order = np.argsort(fused, axis=None)
        assert (np.diff(levels.flatten()[order].astype(int)) >= 0).all()  # monotone in the fused value
        above = fused > t
        np.testing.assert_allclose(levels[above], 128 + np.rint(127 * (fused[above] - t) / (1 - t)), atol=1)
        np.testing.assert_allclose(levels[~above], np.rint(127 * fused[~above] / t), atol=1)
    assert confidence_levels(np.array([[0.0, 1.0]], np.float32)).tolist() == [[0, 255]]
    assert not confidence_levels(np.full((3, 3), 0.4, np.float32)).any()  # flat: no object, all background


def test_trust_by_distance_moves_the_propagated_weight_towards_1_near_a_label():
    w = np.array([0.5, 0.3, 0.2])  # the propagated source is index 1
    np.testing.assert_allclose(trust_by_distance(w, 1, 0, 10.0), [0.0, 1.0, 0.0])  # its own label
    # distance 4 of reach 10: alpha 0.6, others x 0.4, the source 0.3 x 0.4 + 0.6
    np.testing.assert_allclose(trust_by_distance(w, 1, 4, 10.0), [0.2, 0.72, 0.08])
    for far in (10, 15, None):  # at the held-out frames' distance, beyond it, or with no label in reach: Eq. 8's
        np.testing.assert_allclose(trust_by_distance(w, 1, far, 10.0), w)
    for d in range(12):
        assert trust_by_distance(w, 1, d, 10.0).sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="reach"):
        trust_by_distance(w, 1, 3, 0.0)
