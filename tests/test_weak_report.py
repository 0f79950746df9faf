"""The report's weak-label rounds (Fig. 4 analogue): per-round weights and held-out label quality."""

from __future__ import annotations

import json

import numpy as np

from experiments.compare import build_report
from scnn_lightning.weak.store import WeakLabelStore


def _finished_run(path, seed: int, rounds: int | None) -> None:
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps({"variant": "SCNN", "protocol": "pysod", "crf": True,
                                                   "seed": seed, "mae": 0.1, "max_f": 0.5}))
    store = WeakLabelStore(path / "weak_labels")
    label = {("s", "f"): np.eye(4, dtype=np.uint8)}
    for r in range(rounds or 0):
        weights = {"ft": 1.0} if r == 0 else {"ft": 1.0 - 0.3 * r, "prediction": 0.3 * r}
        quality = {"frames": 2, "fused_iou": 0.2 + 0.1 * r, "fused_mae": 0.3 - 0.05 * r,
                   "label_iou": 0.25 + 0.2 * r, "label_mae": 0.2 - 0.05 * r,
                   "sources": {} if r == 0 else {"prediction": {"label_iou": 0.3 + 0.2 * r}}}
        store.write_round(r, label, weights=weights,
                          stats={"labels": 1, "changed_fraction": None if r == 0 else 0.1 / r},
                          extra={"fit": {"solver": "CLARABEL"}, "quality": quality})


def test_report_shows_weights_and_held_out_quality_per_round(tmp_path):
    _finished_run(tmp_path / "weak", seed=0, rounds=3)
    _finished_run(tmp_path / "none", seed=1, rounds=None)  # a run without weak labels adds nothing
    report = build_report([tmp_path / "weak", tmp_path / "none"], tmp_path / "report", frames=0)
    text = report.read_text()
    assert (tmp_path / "report" / "weak_rounds.png").stat().st_size > 10_000
    assert "## Weak-label rounds (Algorithm 1, Fig. 4)" in text and "![weak-label rounds](weak_rounds.png)" in text
    assert "### SCNN seed 0" in text and "SCNN seed 1" not in text
    assert ("| round | w ft | w prediction | label IoU | label MAE | network alone: label IoU | changed | solver |"
            in text)
    assert "| 0 | 1.000 | 0.000 | 0.250 | 0.200 | – | – | CLARABEL |" in text
    assert "| 2 | 0.400 | 0.600 | 0.650 | 0.100 | 0.700 | 0.050 | CLARABEL |" in text


def test_no_weak_labels_no_section(tmp_path):
    _finished_run(tmp_path / "na", seed=0, rounds=None)
    text = build_report([tmp_path / "na"], tmp_path / "report", frames=0).read_text()
    assert "Weak-label rounds" not in text and not (tmp_path / "report" / "weak_rounds.png").exists()
