"""`python -m ablations.baselines`: the reference rows of the DAVIS study, on generated DAVIS-layout data."""

from __future__ import annotations

import csv
import json
import zlib

import cv2
import numpy as np
import pytest

from ablations.baselines import CENTRE, FUSED, KEYS, PROPAGATED, main
from scnn_lightning.data.io import read_mask
from scnn_lightning.data.readers import load_index
from tests.davis_fixture import saliency_folders, tiny_davis


def truth_on(split_wanted: str):
    """A map equal to the ground truth on one split and to noise on the other."""
    def make(frame, mask, split):
        if split == split_wanted:
            return mask * np.uint8(255)
        seed = zlib.crc32(f"{frame.sequence}/{frame.name}".encode())
        return np.random.default_rng(seed).integers(0, 256, mask.shape, dtype=np.uint8)
    return make


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Baselines of two external models: `train-good` is the truth on train only, `val-good` on val only."""
    root = tmp_path_factory.mktemp("baselines")
    davis = tiny_davis(root / "davis", sequences=5, frames=4, height=40, width=56)
    maps = saliency_folders(root / "maps", davis, {"train-good": truth_on("train"), "val-good": truth_on("val")},
                            suffix=".png")
    out = root / "results"
    argv = ["--davis", str(davis), "--saliency", str(maps), "--out", str(out), "--work", str(root / "work"),
            "--label-every", "2", "--fusion", "train-good", "val-good", "mbd"]
    assert main(argv) == 0
    return davis, out


def test_every_method_is_scored_on_all_val_frames(study):
    davis, out = study
    with (out / "baselines.csv").open() as handle:
        rows = {row["method"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"train-good", "val-good", "ft", "mbd", "rbd", CENTRE, FUSED, PROPAGATED}
    val_frames = len(load_index("davis", davis, "val").frames)
    assert all(int(row["frames"]) == val_frames for row in rows.values())
    # (E-measure may pass 1 by PySODMetrics' small epsilon, as it does there for a perfect map)
    assert all(0.0 <= float(row[k]) <= 1.001 for row in rows.values() for k in KEYS)
    # the truth scores perfectly and noise does not
    assert float(rows["val-good"]["mae"]) == 0.0 and float(rows["val-good"]["s_measure"]) == pytest.approx(1.0)
    assert float(rows["train-good"]["mae"]) > 0.3


def test_fusion_weights_are_fitted_on_budgeted_train_frames_only(study):
    davis, out = study
    record = json.loads((out / "baselines.json").read_text())
    weights = dict(zip(record["fusion"]["sources"], record["fusion"]["weights"]))
    assert weights["train-good"] > 0.99  # a fit that saw val would pick val-good instead
    train = load_index("davis", davis, "train")
    assert record["fusion"]["fit_frames"] == sum(len(s.frames[::2]) for s in train.sequences)
    assert record["command"].startswith("python -m ablations.baselines --davis")
    assert [row["method"] for row in record["rows"]][-2:] == [FUSED, PROPAGATED]


def test_per_sequence_rows_cover_val_sequences_only(study):
    davis, out = study
    with (out / "baselines_per_sequence.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    val = {s.name for s in load_index("davis", davis, "val").sequences}
    assert {row["sequence"] for row in rows} == val
    assert len(rows) == 8 * len(val)
    curves = json.loads((out / "baselines_curves.json").read_text())
    assert len(curves[FUSED]["precision"]) == 256


def test_unknown_fusion_source_is_refused(tmp_path, study, capsys):
    davis, _ = study
    maps = davis.parent / "maps"
    assert main(["--davis", str(davis), "--saliency", str(maps), "--out", str(tmp_path), "--fusion", "dcl"]) == 2
    assert "dcl" in capsys.readouterr().err


def test_propagated_row_carries_the_budgeted_val_ground_truth(study):
    davis, out = study
    record = json.loads((out / "baselines.json").read_text())
    val = load_index("davis", davis, "val")
    assert record["propagated"]["frames_with_gt"] == sum(len(s.frames[::2]) for s in val.sequences)
    work = davis.parent / "work" / "maps" / PROPAGATED
    for seq in val.sequences:
        for frame in seq.frames[::2]:  # a budgeted frame gets its own mask
            saved = cv2.imread(str(work / seq.name / f"{frame.name}.png"), cv2.IMREAD_GRAYSCALE)
            np.testing.assert_array_equal(saved > 127, read_mask(frame, saved.shape) > 0)


def test_a_second_run_keeps_the_computed_maps(study, tmp_path):
    davis, out = study
    maps, work = davis.parent / "maps", davis.parent / "work"
    kept = {p: p.stat().st_mtime_ns for p in (work / "maps").rglob("*.png")}
    argv = ["--davis", str(davis), "--saliency", str(maps), "--out", str(tmp_path), "--work", str(work),
            "--label-every", "2", "--fusion", "train-good", "val-good", "mbd"]
    assert main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in (work / "maps").rglob("*.png")} == kept
    assert (tmp_path / "baselines.csv").read_text() == (out / "baselines.csv").read_text()
