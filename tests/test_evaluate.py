"""The evaluation CLI: layouts, matching, resizing, reports, protocols, errors."""

from __future__ import annotations

import csv
import json
import warnings

import cv2
import numpy as np
import pytest
import torch

from scnn_lightning.errors import DataError
from scnn_lightning.evaluate import evaluate_folders, main
from scnn_lightning.metrics import SODMetrics
from tests.fixtures_layouts import save, save_gray_mask

H, W = 30, 40
SEQUENCES = {"alpha": 5, "beta": 4}
KEYS = {"mae", "max_f", "mean_f", "adp_f", "s_measure", "max_e", "mean_e", "adp_e", "w_f",
        "protocol", "frames", "ground_truth_frames", "subset", "sequences", "missing_predictions", "extra_predictions"}


def texture(seq: str) -> np.ndarray:
    return np.random.default_rng(len(seq)).integers(0, 256, (H, W, 3), dtype=np.uint8)


def frame_data(seq: str, t: int):
    """Frame t of a clip translating 2 px right per frame, its mask, and a soft prediction."""
    yy, xx = np.mgrid[:H, :W]
    mask = (yy - 15) ** 2 + (xx - 12 - 2 * t) ** 2 < 40
    pred = np.clip(0.8 * cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 2) + 0.1 * (t % 2), 0, 1)
    return np.roll(texture(seq), 2 * t, axis=1), mask, pred


def translation_flow(img0: np.ndarray, img1: np.ndarray) -> np.ndarray:
    errors = {dx: np.abs(np.roll(img0.astype(int), dx, axis=1) - img1).mean() for dx in range(-4, 5)}
    flow = np.zeros((H, W, 2), np.float32)
    flow[..., 0] = min(errors, key=errors.get)
    return flow


@pytest.fixture
def dataset(tmp_path):
    """DAVSOD layout GT (<seq>/ground-truth, <seq>/Imgs) and predictions: beta at half size, one missing, one extra."""
    gt_root, pred_root = tmp_path / "DAVIS", tmp_path / "method"
    preds = {}
    for seq, n in SEQUENCES.items():
        (gt_root / seq / "ground-truth").mkdir(parents=True)
        (gt_root / seq / "Imgs").mkdir()
        (pred_root / seq).mkdir(parents=True)
        for t in range(n):
            stem = f"{seq}_{t:05d}"
            image, mask, pred = frame_data(seq, t)
            cv2.imwrite(str(gt_root / seq / "Imgs" / f"{stem}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 100])
            cv2.imwrite(str(gt_root / seq / "ground-truth" / f"{stem}.png"), mask.astype(np.uint8) * 255)
            if seq == "alpha" and t == 4:
                continue  # missing prediction
            pred_u8 = np.round(pred * 255).astype(np.uint8)
            if seq == "beta":
                pred_u8 = cv2.resize(pred_u8, (W // 2, H // 2), interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(pred_root / seq / f"{stem}.png"), pred_u8)
            preds[(seq, t)] = pred_u8
    cv2.imwrite(str(pred_root / "alpha" / "stray.png"), np.zeros((H, W), np.uint8))
    return gt_root, pred_root, preds


def expected(preds, protocol: str) -> dict:
    """The same figures computed straight from the arrays with SODMetrics."""
    metric = SODMetrics(protocol=protocol)
    for (seq, t), pred_u8 in sorted(preds.items()):
        full = cv2.resize(pred_u8, (W, H), interpolation=cv2.INTER_LINEAR) if pred_u8.shape != (H, W) else pred_u8
        metric.update(torch.from_numpy(full / 255.0).float(), torch.from_numpy(frame_data(seq, t)[1]), sequence=seq, frame_index=t)
    return metric.compute()


@pytest.mark.parametrize("protocol", ["pysod", "davsod"])
def test_reports_match_direct_computation_and_list_unmatched_maps(dataset, tmp_path, protocol, capsys):
    gt_root, pred_root, preds = dataset
    before = {p: p.read_bytes() for p in pred_root.rglob("*.png")}
    out = tmp_path / "report"
    metrics = evaluate_folders(pred_root, gt_root, out, protocol=protocol, flow_fn=translation_flow,
                               allow_missing=True)
    assert KEYS | {"temporal_consistency"} == set(metrics)
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert metrics["protocol"] == protocol
    assert (metrics["frames"], metrics["ground_truth_frames"], metrics["subset"], metrics["sequences"]) == (8, 9, True, 2)
    assert metrics["missing_predictions"] == ["alpha/alpha_00004"]
    assert metrics["extra_predictions"] == ["alpha/stray"]
    err = capsys.readouterr().err
    assert "alpha/alpha_00004" in err and "alpha/stray" in err
    want = expected(preds, protocol)
    for key in ("mae", "max_f", "s_measure", "max_e", "w_f", "adp_f"):
        assert metrics[key] == pytest.approx(want[key], abs=1e-9), key
    # The maps move with the frames and add 0.1 every other frame: that 0.1 is the flicker.
    assert metrics["temporal_consistency"] == pytest.approx(0.1, abs=0.01)
    rows = list(csv.DictReader((out / "per_sequence.csv").open()))
    assert [r["sequence"] for r in rows] == ["alpha", "beta"] and [r["frames"] for r in rows] == ["4", "4"]
    assert (out / "pr_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(json.loads((out / "curves.json").read_text())["precision"]) == 256
    assert before == {p: p.read_bytes() for p in pred_root.rglob("*.png")}  # inputs untouched


def test_per_sequence_rows_equal_single_sequence_runs(dataset, tmp_path):
    gt_root, pred_root, _ = dataset
    evaluate_folders(pred_root, gt_root, tmp_path / "all", temporal=False, allow_missing=True)
    alone = evaluate_folders(pred_root / "beta", gt_root / "beta" / "ground-truth", tmp_path / "beta", temporal=False)
    row = next(r for r in csv.DictReader((tmp_path / "all" / "per_sequence.csv").open()) if r["sequence"] == "beta")
    assert float(row["mae"]) == pytest.approx(alone["mae"], abs=1e-12)
    assert "temporal_consistency" not in alone


def test_flat_prediction_folder_is_one_sequences_maps(dataset, tmp_path, capsys):
    """Flat maps match one sequence's ground truth by stem; against several sequences they are refused (frame
    names repeat across sequences, so one sequence's maps would be scored against another's truth)."""
    gt_root, pred_root, _ = dataset
    flat = tmp_path / "flat"
    flat.mkdir()
    for path in (pred_root / "beta").glob("beta_*.png"):
        (flat / path.name).write_bytes(path.read_bytes())
    one = tmp_path / "one" / "beta"
    one.mkdir(parents=True)
    for path in (gt_root / "beta" / "ground-truth").iterdir():
        (one / path.name).write_bytes(path.read_bytes())
    metrics = evaluate_folders(flat, tmp_path / "one", tmp_path / "out", temporal=False)
    assert (metrics["frames"], metrics["sequences"], metrics["missing_predictions"]) == (4, 1, [])
    assert main(["--pred", str(flat), "--gt", str(gt_root), "--out", str(tmp_path / "refused"), "--no-temporal"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(flat) in err[0] and "2 sequences (alpha, beta)" in err[0], err
    assert not (tmp_path / "refused" / "metrics.json").exists()


def test_missing_maps_are_an_error_unless_allowed(dataset, tmp_path, capsys):
    gt_root, pred_root, _ = dataset
    for t in range(4):  # six frames without a map: the message quotes the first five
        (pred_root / "beta" / f"beta_{t:05d}.png").unlink()
    args = ["--pred", str(pred_root), "--gt", str(gt_root), "--no-temporal"]
    assert main([*args, "--out", str(tmp_path / "strict")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {pred_root}: 5 of the 9 ground-truth frames have no map (alpha/alpha_00004, "
                   f"beta/beta_00000, beta/beta_00001, beta/beta_00002, beta/beta_00003); --allow-missing scores "
                   f"the others"]
    assert not (tmp_path / "strict" / "metrics.json").exists()
    assert main([*args, "--out", str(tmp_path / "subset"), "--allow-missing"]) == 0
    assert "a subset: 4 of 9 ground-truth frames have a map" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "subset" / "metrics.json").read_text())
    assert (metrics["subset"], metrics["frames"], metrics["ground_truth_frames"]) == (True, 4, 9)


def test_an_output_path_that_cannot_be_written_is_one_line_before_scoring(dataset, tmp_path, capsys, monkeypatch):
    from scnn_lightning import evaluate

    def no_scoring(*args, **kwargs):
        raise AssertionError("scored before the output path was checked")

    monkeypatch.setattr(evaluate, "score_pair", no_scoring)
    gt_root, pred_root, _ = dataset
    taken = tmp_path / "taken.json"
    taken.write_text("{}")
    for out in (taken, taken / "report"):
        assert main(["--pred", str(pred_root), "--gt", str(gt_root), "--out", str(out), "--allow-missing"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(out) in err[0] and "output folder" in err[0], err


def test_matches_pysodmetrics_on_the_written_files(dataset, tmp_path):
    py_sod_metrics = pytest.importorskip("py_sod_metrics")
    gt_root, pred_root, _ = dataset
    metrics = evaluate_folders(pred_root / "alpha", gt_root / "alpha" / "ground-truth", tmp_path / "o", temporal=False,
                               allow_missing=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm, sm = py_sod_metrics.Fmeasure(), py_sod_metrics.Smeasure()
        for t in range(4):
            pred = cv2.imread(str(pred_root / "alpha" / f"alpha_{t:05d}.png"), cv2.IMREAD_GRAYSCALE)
            gt = cv2.imread(str(gt_root / "alpha" / "ground-truth" / f"alpha_{t:05d}.png"), cv2.IMREAD_GRAYSCALE)
            fm.step(pred, gt)
            sm.step(pred, gt)
    assert metrics["max_f"] == pytest.approx(fm.get_results()["fm"]["curve"].max(), abs=1e-4)
    assert metrics["s_measure"] == pytest.approx(sm.get_results()["sm"], abs=1e-4)


def test_no_matching_prediction_is_a_clear_error(dataset, tmp_path, capsys):
    gt_root, _, _ = dataset
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no prediction map matches"):
        evaluate_folders(empty, gt_root, tmp_path / "out")
    assert main(["--pred", str(empty), "--gt", str(gt_root), "--out", str(tmp_path / "out")]) == 2
    assert str(empty) in capsys.readouterr().err
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_undecodable_map_names_the_file(dataset, tmp_path):
    gt_root, pred_root, _ = dataset
    broken = pred_root / "beta" / "beta_00001.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(DataError, match="beta_00001.png"):
        evaluate_folders(pred_root, gt_root, tmp_path / "out", temporal=False, allow_missing=True)


def test_cli_writes_the_reports(dataset, tmp_path, capsys):
    gt_root, pred_root, _ = dataset
    out = tmp_path / "cli"
    assert main(["--pred", str(pred_root), "--gt", str(gt_root), "--out", str(out), "--protocol", "davsod", "--no-temporal",
                 "--allow-missing"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["protocol"] == "davsod" and "temporal_consistency" not in metrics
    assert "max_f" in capsys.readouterr().out


def davis_root(root):
    """DAVIS-2016 layout (JPEGImages/480p, Annotations/480p; split from the built-in lists): blackswan (val)
    and bear (train), frames and masks of `frame_data`."""
    for seq in ("blackswan", "bear"):
        for t in range(SEQUENCES["alpha"]):
            image, mask, _ = frame_data(seq, t)
            save(root / "JPEGImages" / "480p" / seq / f"{t:05d}.jpg", image)
            save_gray_mask(root / "Annotations" / "480p" / seq / f"{t:05d}.png", mask)
    return root


def test_a_davis_root_is_read_through_its_reader(tmp_path, capsys):
    root, pred_root = davis_root(tmp_path / "DAVIS"), tmp_path / "maps"
    preds = {}
    for t in range(SEQUENCES["alpha"]):
        preds[("blackswan", t)] = np.round(frame_data("blackswan", t)[2] * 255).astype(np.uint8)
        save(pred_root / "blackswan" / f"{t:05d}.png", preds[("blackswan", t)])
    args = ["--pred", str(pred_root), "--gt", str(root), "--no-temporal"]
    assert main([*args, "--out", str(tmp_path / "plain")]) == 2  # a dataset root is no mask folder...
    assert "--dataset" in capsys.readouterr().err  # ...and the message says what to add
    with pytest.raises(SystemExit):
        main([*args, "--out", str(tmp_path / "no_dataset"), "--split", "val"])

    assert main([*args, "--out", str(tmp_path / "out"), "--dataset", "davis", "--split", "val"]) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert (metrics["frames"], metrics["sequences"], metrics["missing_predictions"]) == (5, 1, [])
    want = expected(preds, "pysod")
    for key in ("mae", "max_f", "s_measure", "w_f", "adp_e"):
        assert metrics[key] == pytest.approx(want[key], abs=1e-9), key
    # Temporal consistency reads the frames through the same reader.
    with_frames = evaluate_folders(pred_root, root, tmp_path / "temporal", dataset="davis", split="val",
                                   flow_fn=translation_flow)
    assert 0.0 <= with_frames["temporal_consistency"] < 1.0
