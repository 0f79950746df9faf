"""`ablations.weak_levers`: the commands it launches and the table it reads back from a study's records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ablations import weak_levers


def write_run(folder: Path, variant: str, seed: int, curve: list[float], heldout: list[float], oracle: list) -> None:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"variant": variant, "seed": seed, "s_measure": 0.7, "max_f": 0.6,
                                                     "mae": 0.08, "crf": False}))
    rows = ["epoch,step,lr,s_measure,max_f,mae"] + [f"{i},{i},0.001,{s},0.5,0.1" for i, s in enumerate(curve)]
    (folder / "val_curve.csv").write_text("\n".join(rows) + "\n")
    for r, (iou, orc) in enumerate(zip(heldout, oracle)):
        manifest = {"quality": {"label_iou": iou}, **({"oracle": {"label_iou": orc}} if orc is not None else {})}
        (folder / "weak_labels" / f"round_{r:03d}").mkdir(parents=True)
        (folder / "weak_labels" / f"round_{r:03d}" / "manifest.json").write_text(json.dumps(manifest))


def test_table_reads_best_validation_and_label_quality_from_records(tmp_path):
    write_run(tmp_path / "base" / "seed0" / "SCNN", "SCNN", 0, [0.6, 0.7, 0.65], [0.64, 0.66], [None, None])
    write_run(tmp_path / "levers" / "band" / "runs" / "seed0" / "SCNN", "SCNN", 0, [0.62, 0.71], [0.7, 0.72], [0.8, 0.82])
    write_run(tmp_path / "levers" / "NA-allGT" / "runs" / "seed0" / "NA", "NA", 0, [0.75], [], [])
    no_crf = tmp_path / "base" / "seed0" / "SCNN-noCRF"
    write_run(no_crf, "SCNN", 0, [], [], [])
    (no_crf / "val_curve.csv").unlink()  # tested only
    (no_crf / "metrics.json").write_text(json.dumps({"variant": "SCNN", "tag": "SCNN-noCRF", "seed": 0, "s_measure": 0.68,
                                                     "max_f": 0.7, "mae": 0.11, "crf": False}))
    rows = weak_levers.table(tmp_path / "levers", tmp_path / "base")
    assert [(r["lever"], r["variant"]) for r in rows] == [("base", "SCNN"), ("base", "SCNN-noCRF"), ("band", "SCNN"),
                                                          ("NA-allGT", "NA")]
    base, no_crf_row, band, ceiling = rows
    assert no_crf_row["val_s_best"] is None and no_crf_row["test_s"] == 0.68
    assert (base["val_s_best"], base["best_epoch"], base["val_s_last"]) == (0.7, 1, 0.65)
    assert base["oracle_iou_last"] is None and band["oracle_iou_first"] == 0.8 and band["heldout_iou_last"] == 0.72
    assert ceiling["heldout_iou_first"] is None and ceiling["val_s_best"] == 0.75
    assert (tmp_path / "levers" / "levers.csv").is_file() and "never a criterion" in (
        tmp_path / "levers" / "levers.md").read_text()


def test_seeds_are_summarised_and_crf_retests_listed(tmp_path):
    runs = tmp_path / "levers" / "soft" / "runs"
    for seed, curve in enumerate([[0.70, 0.72], [0.74], [0.70, 0.73]]):
        write_run(runs / f"seed{seed}" / "SCNN", "SCNN", seed, curve, [0.7], [0.8])
    retest = runs / "seed0" / "SCNN-CRF"  # the same weights scored again with the CRF: no curve, no rounds
    retest.mkdir(parents=True)
    (retest / "metrics.json").write_text(json.dumps({"variant": "SCNN", "tag": "SCNN-CRF", "seed": 0,
                                                     "s_measure": 0.79, "max_f": 0.7, "mae": 0.05, "crf": True}))
    rows = weak_levers.table(tmp_path / "levers", None)
    assert [(r["variant"], r["seed"]) for r in rows] == [("SCNN", 0), ("SCNN", 1), ("SCNN", 2), ("SCNN-CRF", 0)]
    (means,) = weak_levers.summary(rows)  # one retest seed: no spread to report for it
    assert (means["lever"], means["variant"], means["seeds"]) == ("soft", "SCNN", 3)
    assert means["val_s_best"] == pytest.approx((0.73, 0.01))  # 0.72, 0.74, 0.73: sample std 0.01
    assert means["test_s"] == pytest.approx((0.7, 0.0))
    text = (tmp_path / "levers" / "levers.md").read_text()
    assert "| soft | SCNN | 3 | 0.730 ± 0.010 |" in text
    assert json.loads((tmp_path / "levers" / "levers.json").read_text())["over_seeds"][0]["seeds"] == 3


def test_a_levers_own_overrides_replace_the_base_ones(tmp_path, monkeypatch):
    launched = []
    monkeypatch.setattr(weak_levers.subprocess, "run", lambda command, check: launched.append(command))
    weak_levers.main(["run", "--out", str(tmp_path / "out"), "--records", str(tmp_path / "rec"), "--levers",
                      "propagated", "NA-allGT", "--", "data=davis", "weak=davis", "data.label_every=10"])
    propagated, ceiling = launched
    tail = propagated[propagated.index("--", 3) + 1:]
    assert tail == ["data=davis", "data.label_every=10", "crf=null", "weak=davis_propagated"]
    assert ceiling[ceiling.index("--variants") + 1] == "NA" and "data.label_every=10" not in ceiling
    assert str(tmp_path / "rec" / "propagated" / "runs") in propagated


def test_every_lever_names_a_known_variant():
    from scnn_lightning.models.variants import VARIANTS

    assert all(variant in VARIANTS for variant, _ in weak_levers.LEVERS.values())
    with pytest.raises(SystemExit):
        weak_levers.main(["run", "--out", "x", "--records", "y", "--levers", "nonsense"])
