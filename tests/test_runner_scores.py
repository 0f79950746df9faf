"""The runner's test scores: per test set, at each frame's own size, equal to what
`python -m scnn_lightning.evaluate` reports for the maps the runner wrote (and what metrics.json records)."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from experiments.run import run
from scnn_lightning.data.datamodule import SaliencyDataModule, ShardSampler, collate_eval, name_test_sets
from scnn_lightning.errors import DataError
from scnn_lightning.evaluate import SCALAR_KEYS, evaluate_folders
from scnn_lightning.metrics import scalar_scores
from scnn_lightning.utils import to_uint8_map, write_png_map
from tests.conftest import compose_run
from tests.ddp_score_run import NETWORK_SIZE, cpu_trainer, make_sources, run_test_phase


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> list[dict]:
    return make_sources(tmp_path_factory.mktemp("sources"))


@pytest.mark.parametrize("protocol", ["pysod", "davsod"])
def test_scores_equal_the_evaluator_on_the_written_maps(tmp_path, sources, protocol):
    module = run_test_phase(cpu_trainer(), sources, protocol, tmp_path / "predictions")
    assert list(module.test_set_scores) == ["davis-val", "davis"]
    for (name, scores), source in zip(module.test_set_scores.items(), sources):
        maps = tmp_path / "predictions" / name
        written = sorted(maps.rglob("*.png"))
        assert len(written) == scores["frames"] == (5 if name == "davis-val" else 4)
        frame_size = (40, 72) if name == "davis-val" else (36, 60)
        assert all(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE).shape == frame_size for p in written)
        evaluated = evaluate_folders(maps, source["root"], tmp_path / f"eval_{name}", protocol, dataset="davis",
                                     split=source.get("split"), temporal=False)
        assert evaluated["missing_predictions"] == evaluated["extra_predictions"] == []
        for key in SCALAR_KEYS:
            assert scores[key] == pytest.approx(evaluated[key], abs=1e-6), (name, key)
        # Each sequence too: the runner's per_sequence/<set>.csv rows equal the evaluator's per_sequence.csv.
        with (tmp_path / f"eval_{name}" / "per_sequence.csv").open() as handle:
            expected = {r["sequence"]: r for r in csv.DictReader(handle)}
        ours = {r["sequence"]: r for r in module.test_sequence_scores[name]}
        assert set(ours) == set(expected) and len(ours) >= 1
        for seq, row in ours.items():
            assert row["frames"] == int(expected[seq]["frames"])
            for key in SCALAR_KEYS:
                if expected[seq][key] == "":  # davsod keeps no frame of a sequence this short
                    assert key not in row
                else:
                    assert row[key] == pytest.approx(float(expected[seq][key]), abs=1e-9), (name, seq, key)
    pooled = module.test_scores
    assert pooled["frames"] == 9
    if protocol == "pysod":  # the top level weighs every test frame the same
        sets = module.test_set_scores.values()
        for key in ("mae", "s_measure", "w_f"):
            assert pooled[key] == pytest.approx(sum(s[key] * s["frames"] for s in sets) / 9, abs=1e-12), key


def test_test_workers_change_nothing_but_where_the_crf_runs(tmp_path, sources):
    """Frames made and scored in 2 worker processes: the same PNGs and the same scores as in the test process."""
    alone = run_test_phase(cpu_trainer(), sources, "pysod", tmp_path / "alone")
    pooled = run_test_phase(cpu_trainer(), sources, "pysod", tmp_path / "pooled", workers=2)
    assert pooled.scorer.pool is None  # the workers ended with the test phase
    for name, scores in alone.test_set_scores.items():
        assert scalar_scores(pooled.test_set_scores[name]) == scalar_scores(scores)
    assert pooled.test_sequence_scores == alone.test_sequence_scores
    written = sorted(p.relative_to(tmp_path / "alone") for p in (tmp_path / "alone").rglob("*.png"))
    assert len(written) == 9
    for path in written:
        assert (tmp_path / "pooled" / path).read_bytes() == (tmp_path / "alone" / path).read_bytes()


def test_lightning_predict_gives_the_maps_the_test_step_wrote(tmp_path, sources):
    """`trainer.predict` (CRF on) returns, per frame, the 8-bit frame-size map the test step saved as PNG."""
    trainer = cpu_trainer()
    module = run_test_phase(trainer, sources, "pysod", tmp_path / "predictions")
    outputs = trainer.predict(module, datamodule=SaliencyDataModule(test=sources, size=NETWORK_SIZE, batch_size=2))
    predicted = [row for out in outputs for row in zip(out["dataset"], out["sequence"], out["name"], out["maps"])]
    assert len(predicted) == 9
    for test_set, seq, name, saved in predicted:
        written = tmp_path / "predictions" / test_set / seq / f"{name}.png"
        assert saved.dtype == np.uint8
        np.testing.assert_array_equal(saved, cv2.imread(str(written), cv2.IMREAD_GRAYSCALE))


def test_runner_records_each_test_set(tmp_path, data_dir, sources):
    """metrics.json keeps its top-level keys and adds `datasets`; maps and PR curves per set; the report reads them."""
    cfg = compose_run(tmp_path, data_dir, ["ablation=sFCN", "crf=null", "report=true", "test_workers=1",
                                           "++trainer.limit_test_batches=1.0"])
    cfg.data.test = sources
    run(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(SCALAR_KEYS) <= set(metrics) and metrics["frames"] == 9
    assert list(metrics["datasets"]) == ["davis-val", "davis"]
    for name, frames in (("davis-val", 5), ("davis", 4)):
        assert set(metrics["datasets"][name]) == {*SCALAR_KEYS, "frames"}
        written = list((tmp_path / "predictions" / name).rglob("*.png"))
        assert metrics["datasets"][name]["frames"] == frames == len(written)
        with (tmp_path / "per_sequence" / f"{name}.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        assert list(rows[0]) == ["sequence", "frames", *SCALAR_KEYS] and sum(int(r["frames"]) for r in rows) == frames
    pr = json.loads((tmp_path / "pr_curve.json").read_text())
    assert len(pr["precision"]) == len(pr["datasets"]["davis"]["recall"]) == 256
    report = (tmp_path / "report" / "report.md").read_text()
    assert "### davis-val" in report and "### davis" in report and (tmp_path / "report" / "qualitative.png").is_file()


def test_test_sets_get_unique_names():
    specs = [{"dataset": "davis", "root": "a", "split": "val"}, {"dataset": "fbms", "root": "b", "split": "test"},
             {"dataset": "davis", "root": "c", "split": "val"}, {"dataset": "davsod", "root": "d"}]
    assert name_test_sets(specs) == ["davis-val", "fbms-test", "davis-val-2", "davsod"]


def test_shard_sampler_gives_every_frame_to_one_rank_and_every_rank_each_set():
    sizes = [5, 4, 2]
    shards = [list(ShardSampler(range(11), sizes, num_replicas=2, rank=r)) for r in range(2)]
    assert sorted(shards[0] + shards[1]) == list(range(11))
    assert [len(s) for s in shards] == [6, 5]
    for shard in shards:
        assert {0 if i < 5 else 1 if i < 9 else 2 for i in shard} == {0, 1, 2}


def test_ddp_test_loader_shards_without_padding_and_refuses_tiny_sets(sources):
    dm = SaliencyDataModule(test=sources, size=NETWORK_SIZE, batch_size=4)
    dm.setup("test")
    dm.trainer = SimpleNamespace(distributed_sampler_kwargs={"num_replicas": 2, "rank": 1})
    batches = list(dm.test_dataloader())
    assert sum(len(b["name"]) for b in batches) == 4  # frames 1, 3 of the val set and 1, 3 of the other
    assert [f.shape for f in batches[0]["frame_full"]] == [(40, 72, 3), (40, 72, 3), (36, 60, 3), (36, 60, 3)]
    dm.trainer = SimpleNamespace(distributed_sampler_kwargs={"num_replicas": 5, "rank": 0})
    with pytest.raises(DataError, match="test set davis has 4 frame"):
        dm.test_dataloader()


def test_eval_batches_keep_original_sizes_as_lists():
    samples = [{"image": torch.full((3, 4, 4), float(i)), "frame_full": np.zeros((h, w, 3), np.uint8),
                "mask_full": np.ones((h, w), np.uint8)} for i, (h, w) in enumerate([(5, 6), (7, 8)])]
    batch = collate_eval(samples)
    assert batch["image"].shape == (2, 3, 4, 4)
    assert [m.shape for m in batch["mask_full"]] == [(5, 6), (7, 8)]


def test_png_maps_hold_the_quantised_values(tmp_path):
    values = np.linspace(0, 1, 48, dtype=np.float32).reshape(6, 8)
    write_png_map(tmp_path / "float.png", values)
    write_png_map(tmp_path / "bytes.png", to_uint8_map(values))
    for name in ("float.png", "bytes.png"):
        assert np.array_equal(cv2.imread(str(tmp_path / name), cv2.IMREAD_GRAYSCALE), to_uint8_map(values))
