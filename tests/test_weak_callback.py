"""`WeakLabelRefresh` (Algorithm 1, §III-C) inside a real Lightning fit on tiny synthetic clips.

One 3-epoch run (2 clips x 6 frames, every 3rd ground-truth frame kept as manual, one of the two manual
frames of each clip held out for the Eq. 8 fit) is shared by the first tests; the resume tests continue
copies of it. The loop-quality tests use `OracleNetwork`, a stand-in whose maps improve on a schedule.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from experiments.run import build_trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from scnn_lightning.data.datamodule import LABEL_MANUAL, frame_key, select_fusion_holdout
from scnn_lightning.data.transforms import to_uint8_image
from scnn_lightning.errors import DataError
from scnn_lightning.weak import callback as callback_module
from scnn_lightning.weak.callback import WeakLabelRefresh
from scnn_lightning.weak.classical import center_prior
from scnn_lightning.weak.fit import to_levels
from scnn_lightning.weak.fusion import fit_fusion_weights, trust_by_distance, weak_label
from scnn_lightning.weak.sources import build_sources
from scnn_lightning.weak.store import WeakLabelStore, labels_hash
from tests.weak_helpers import (SIZE, SOURCES, LabelSpy, OracleNetwork, make_clips, make_datamodule, make_module,
                                make_trainer, write_folder_maps)

STATE_KEY = "WeakLabelRefresh"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These small convolutions gain nothing from a second thread, and lose a lot when the cores are busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def run(one_thread, tmp_path_factory):
    """A finished 3-epoch fit: its folder, datamodule, label spy and callback."""
    root = tmp_path_factory.mktemp("weak_run")
    clips = make_clips(root / "clips")
    dm = make_datamodule(clips, root / "cache")
    spy = LabelSpy()
    trainer, weak = make_trainer(root / "run", root / "run" / "weak", max_epochs=3, spy=spy,
                                 cache_dir=root / "source_maps")
    trainer.fit(make_module(), datamodule=dm)
    return {"root": root, "clips": clips, "dm": dm, "spy": spy, "weak": weak,
            "store": WeakLabelStore(root / "run" / "weak")}


def read_round(store: WeakLabelStore, r: int) -> dict[tuple[str, str], np.ndarray]:
    return {key: store.read_label(r, *key) for key in store.frames(r)}


def test_rounds_follow_algorithm_1(run):
    store, dm = run["store"], run["dm"]
    assert store.rounds() == [0, 1, 2]  # G0 before epoch 0, then one round after each epoch but the last
    held = [frame_key(e) for e in dm.fusion_holdout_entries()]
    assert len(held) == 2 and {seq for seq, _ in held} == {"syn0000", "syn0001"}  # one per clip
    for r in (0, 1, 2):
        manifest = store.manifest(r)
        expected = SOURCES if r == 0 else [*SOURCES, "prediction"]  # the network joins from round 1
        assert manifest["sources"] == expected
        weights = np.array([manifest["weights"][n] for n in expected])
        assert (weights >= 0).all() and abs(weights.sum() - 1) < 1e-6
        assert set(store.frames(r)) == {frame_key(e) for e in dm.unlabelled_train_entries()}
        assert store.labels_hash(r) == store.hash_on_disk(r) != labels_hash(read_round(store, r))  # levels count
        assert manifest["stats"]["epoch"] == max(r - 1, 0)
        fit, quality = manifest["fit"], manifest["quality"]
        assert fit["solver"] == "CLARABEL" and fit["status"] == "optimal" and fit["note"] == ""
        assert 0.0 <= fit["objective"] < 1.0 and fit["pixels"] == 2 * SIZE[0] * SIZE[1]
        assert (fit["calibration"] is None) == (r == 0)  # the network's map is calibrated when it is fused
        assert quality["frames"] == 2 and set(quality["sources"]) == set(expected)
        for scores in (quality, *quality["sources"].values()):
            assert all(0.0 <= scores[k] <= 1.0 for k in ("fused_iou", "fused_mae", "label_iou", "label_mae"))
        assert manifest["stats"]["iou_on_labelled"] == quality["label_iou"]
        assert manifest["holdout"] | {"frames_file": None} == {"fraction": 0.25, "seed": 0, "count": 2,
                                                               "frames_file": None, "hash": run["weak"].holdout_hash}
        assert store.read_frame_list(manifest["holdout"]["frames_file"]) == held
        changed = manifest["stats"]["changed_fraction"]
        assert changed is None if r == 0 else 0.0 <= changed <= 1.0
        assert manifest["network"] == (None if r == 0 else "current")


def test_manifests_carry_the_oracle_label_iou_by_distance(run):
    """Every frame of the clips has ground truth; the budget hides it on 8 of them. Each round's manifest scores
    its labels against that hidden ground truth, by distance to the nearest labelled frame (frames 0 and 3 of
    each clip: frames 1, 2, 4 lie 1 away, frame 5 lies 2 away), marked as a diagnostic."""
    store, dm = run["store"], run["dm"]
    truth = {frame_key(e): dm.dataset([e])[0]["mask"][0].numpy().astype(bool) for e in dm.unlabelled_train_entries()}
    for r in store.rounds():
        oracle = store.manifest(r)["oracle"]
        assert "diagnostic" in oracle["note"] and oracle["frames"] == 8
        assert {d: v["frames"] for d, v in oracle["by_distance"].items()} == {"1": 6, "2": 2}
        ious = {key: _iou(store.read_label(r, *key).astype(bool), truth[key]) for key in truth}
        assert oracle["label_iou"] == pytest.approx(np.mean(list(ious.values())), abs=1e-8)
        far = [v for (seq, name), v in ious.items() if name.endswith("5")]
        assert oracle["by_distance"]["2"]["label_iou"] == pytest.approx(np.mean(far), abs=1e-8)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def test_label_files_carry_the_fusions_confidence(run):
    """Each label file holds `confidence_levels` of the Eq. 7 fusion: its binary label is the Otsu label, and the
    training batches deliver the confidence (level / 255) of weak frames."""
    store, spy = run["store"], run["spy"]
    levels = {key: store.read_levels(1, *key) for key in store.frames(1)}
    assert any(not np.isin(v, (0, 255)).all() for v in levels.values())  # a confidence, not only 0/255
    for key, value in levels.items():
        np.testing.assert_array_equal(store.read_label(1, *key), value >= 128)
        np.testing.assert_allclose(spy.confidence[1][key], value / 255.0, atol=1e-6)


def test_round_0_is_eq_8_fit_on_held_out_frames_then_otsu(run):
    """G0 recomputed from scratch: weights fitted on the held-out manual frames only (8-bit maps), labels
    thresholded by Otsu."""
    store, dm = run["store"], run["dm"]
    sources = build_sources(SOURCES)

    def maps_of(entries):
        out = {}
        for (seq, i), sample in zip(entries, (dm.dataset(entries)[j] for j in range(len(entries)))):
            rgb = to_uint8_image(sample["image"])
            levels = np.stack([to_levels(s.map_for(seq.frames[i], rgb)) for s in sources])
            out[frame_key((seq, i))] = (levels.astype(np.float32) / 255, sample["mask"][0].numpy().astype(np.uint8))
        return out

    assert len(dm.labelled_train_entries()) == 4  # frames 0 and 3 of each clip
    held = select_fusion_holdout(dm.labelled_train_entries(), 0.25, 0)
    assert [frame_key(e) for e in held] == [frame_key(e) for e in dm.fusion_holdout_entries()]
    fit_set = maps_of(held)
    weights = fit_fusion_weights(np.stack([m for m, _ in fit_set.values()], axis=1),
                                 np.stack([g for _, g in fit_set.values()]))
    stored = store.manifest(0)["weights"]
    np.testing.assert_allclose([stored[n] for n in SOURCES], weights, atol=1e-6)
    labels = read_round(store, 0)
    for key, (maps, _) in maps_of(dm.unlabelled_train_entries()).items():
        np.testing.assert_array_equal(labels[key], weak_label(maps, np.array([stored[n] for n in SOURCES])))


def test_epoch_r_trains_on_round_r(run):
    store, dm, spy = run["store"], run["dm"], run["spy"]
    held = {frame_key(e) for e in dm.fusion_holdout_entries()}
    manual = {frame_key(e) for e in dm.labelled_train_entries()} - held  # held-out frames stay out of the loss
    assert sorted(spy.seen) == [0, 1, 2] and len(manual) == 2 and len(held) == 2
    for epoch in (0, 1, 2):
        seen = spy.seen[epoch]
        weak = spy.weak_frames(epoch)
        assert weak == set(store.frames(epoch)) and len(weak) == 8  # weak labels from epoch 0 on
        assert {k for k, (kind, _) in seen.items() if kind == LABEL_MANUAL} == manual
        assert not held & set(seen)
        labels = read_round(store, epoch)
        for key in weak:
            np.testing.assert_array_equal(seen[key][1], labels[key], err_msg=f"epoch {epoch}, frame {key}")
    # the training set grew from the manual frames alone to manual + weak
    assert len(spy.seen[0]) == len(manual) + len(store.frames(0)) == 10 > len(manual)


def test_weights_and_stats_are_logged(run):
    store = run["store"]
    metrics = next((run["root"] / "run").rglob("metrics.csv"))
    rows = [r for r in csv.DictReader(metrics.open()) if r.get("weak/round")]
    assert [int(float(r["weak/round"])) for r in rows] == [0, 1, 2]
    for row in rows:
        manifest = store.manifest(int(float(row["weak/round"])))
        for name, w in manifest["weights"].items():
            assert float(row[f"weak/w_{name}"]) == pytest.approx(w, abs=1e-9)
        assert float(row["weak/labels"]) == manifest["count"] == 8
        assert 0.0 <= float(row["weak/iou_on_labelled"]) <= 1.0
        assert float(row["weak/iou_on_labelled"]) == pytest.approx(manifest["stats"]["iou_on_labelled"])
        for key in ("fused_iou", "fused_mae", "label_iou", "label_mae"):
            assert float(row[f"weak/heldout_{key}"]) == pytest.approx(manifest["quality"][key])
        assert float(row["weak/objective"]) == pytest.approx(manifest["fit"]["objective"])
        assert (row["weak/changed_fraction"] == "") == (manifest["stats"]["changed_fraction"] is None)


def copy_run(run, dest: Path) -> tuple[Path, Path]:
    shutil.copytree(run["root"] / "run", dest, symlinks=True)
    return dest / "checkpoints" / "last.ckpt", dest / "weak"


def round_files(weak: Path, rounds) -> dict[str, bytes]:
    return {str(p.relative_to(weak)): p.read_bytes()
            for r in rounds for p in sorted((weak / f"round_{r:03d}").rglob("*")) if p.is_file()}


def test_checkpoint_state_matches_the_store_and_loads_weights_only(run):
    ckpt = torch.load(run["root"] / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    state, manifest = ckpt["callbacks"][STATE_KEY], run["store"].manifest(2)
    assert state == {"round": 2, "epochs": 3, "weights": list(manifest["weights"].values()), "source_names": manifest["sources"],
                     "labels_hash": manifest["labels_hash"], "holdout_fraction": 0.25, "holdout_seed": 0,
                     "holdout_hash": manifest["holdout"]["hash"]}


def test_resume_continues_the_rounds_and_keeps_the_held_out_frames(run, tmp_path):
    ckpt, weak_dir = copy_run(run, tmp_path / "run")
    before = round_files(weak_dir, (0, 1, 2))
    spy = LabelSpy()
    # configured otherwise, the resumed run still keeps the checkpoint's held-out frames
    trainer, weak = make_trainer(tmp_path / "run", weak_dir, max_epochs=4, spy=spy, logger=False,
                                 holdout_fraction=0.5, seed=9)
    dm = make_datamodule(run["clips"], run["root"] / "cache")
    trainer.fit(make_module(seed=5), datamodule=dm, ckpt_path=str(ckpt))
    store = WeakLabelStore(weak_dir)
    held = {frame_key(e) for e in dm.fusion_holdout_entries()}
    assert held == {frame_key(e) for e in run["dm"].fusion_holdout_entries()} and not held & set(spy.seen[3])
    assert store.manifest(3)["holdout"] == store.manifest(0)["holdout"]
    assert (weak.holdout_fraction, weak.seed) == (0.25, 0)
    # the finished run made no round after its last epoch; trained longer, it makes round 3 from the network of
    # epoch 2 before epoch 3 (the next round is 3, not 0) and none after epoch 3, its new last
    assert sorted(spy.seen) == [3] and store.rounds() == [0, 1, 2, 3]
    assert round_files(weak_dir, (0, 1, 2)) == before  # earlier rounds untouched, hashes included
    labels = read_round(store, 3)
    assert spy.weak_frames(3) == set(labels)
    for key in labels:
        np.testing.assert_array_equal(spy.seen[3][key][1], labels[key])
    assert store.manifest(3)["stats"]["epoch"] == 2 and "prediction" in store.manifest(3)["weights"]
    assert weak.state_dict()["round"] == 3 and weak.labels_hash == store.labels_hash(3)


@pytest.mark.parametrize("damage", ["pixels", "manifest", "missing"])
def test_resume_with_altered_labels_raises(run, tmp_path, damage):
    ckpt, weak_dir = copy_run(run, tmp_path / "run")
    round_dir = weak_dir / "round_002"
    if damage == "pixels":  # a label file edited behind the manifest's back
        png = next(round_dir.rglob("*.png"))
        label = WeakLabelStore(weak_dir).read_label(2, png.parent.name, png.stem)
        cv2.imwrite(str(png), (1 - label) * 255)
    elif damage == "manifest":  # the round rewritten by another run
        store = WeakLabelStore(weak_dir)
        labels = {k: np.zeros_like(v) for k, v in read_round(store, 2).items()}
        store.write_round(2, labels, weights={"ft": 1.0}, stats={})
    else:
        shutil.rmtree(round_dir.resolve())
        round_dir.unlink()
    trainer, _ = make_trainer(tmp_path / "run", weak_dir, max_epochs=4, logger=False)
    with pytest.raises(DataError, match="round_002"):
        trainer.fit(make_module(), datamodule=make_datamodule(run["clips"], run["root"] / "cache"), ckpt_path=str(ckpt))


def test_refresh_needs_dataloader_reload(run, tmp_path):
    trainer, _ = make_trainer(tmp_path, tmp_path / "weak", max_epochs=1, logger=False)
    trainer.reload_dataloaders_every_n_epochs = 0
    with pytest.raises(ValueError, match="reload_dataloaders_every_n_epochs"):
        trainer.fit(make_module(), datamodule=make_datamodule(run["clips"], run["root"] / "cache"))
    assert not (tmp_path / "weak").exists()


class SavedRounds(Callback):
    """The weak-label round recorded in each checkpoint, with the epoch it was saved in."""

    def __init__(self):
        self.saved: list[tuple[int, int]] = []

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self.saved.append((trainer.current_epoch, checkpoint["callbacks"][STATE_KEY]["round"]))


def test_run_py_checkpoints_after_the_refresh(run, tmp_path):
    """experiments/run.py saves every epoch, after the refresh: the checkpoint of epoch k records round k+1,
    the labels epoch k+1 trains on — even when validation (where saving would otherwise happen) runs
    only every other epoch. The last epoch makes no round."""
    cfg = OmegaConf.create({"logger": {}, "trainer": dict(
        accelerator="cpu", devices=1, max_epochs=3, check_val_every_n_epoch=2, limit_val_batches=1,
        num_sanity_val_steps=0, enable_progress_bar=False, enable_model_summary=False)})
    probe = SavedRounds()
    weak = WeakLabelRefresh(root=str(tmp_path / "weak"), sources=list(SOURCES))
    trainer = build_trainer(cfg, tmp_path, "stage2", tmp_path / "checkpoints", [weak, probe])
    trainer.fit(make_module(), datamodule=make_datamodule(run["clips"], run["root"] / "cache"))
    assert sorted({epoch for epoch, _ in probe.saved}) == [0, 1, 2]  # saved every epoch
    assert all(round_ == min(epoch + 1, 2) for epoch, round_ in probe.saved)


def test_classical_maps_are_cached_on_disk_once(run):
    """3 classical sources x 12 training frames (held-out and unlabelled ones, at training size), each one
    PNG; the rounds after round 0 reuse them rather than keeping any in memory."""
    cached = sorted((run["root"] / "source_maps").rglob("*.png"))
    frames = len(run["dm"].fusion_holdout_entries()) + len(run["dm"].unlabelled_train_entries())
    assert len(cached) == len(SOURCES) * frames == 30
    assert not list((run["root"] / "source_maps").rglob(".*"))  # no temporaries left behind
    assert not hasattr(run["weak"], "_static_maps")


@pytest.fixture(scope="module")
def poor_sources(one_thread, tmp_path_factory):
    """3 clips x 8 frames with ground truth on every 2nd frame (one of each clip's four held out), and two
    static sources that know nothing about the objects: uniform noise and a centre prior."""
    root = tmp_path_factory.mktemp("oracle")
    clips = make_clips(root / "clips", sequences=3, frames=8, seed=11)
    dm = make_datamodule(clips, None, label_every=2)
    dm.setup()
    frames = dm.dataset(dm.train_entries)
    truth = {frame_key(e): frames[i]["mask"][0].numpy().astype(np.uint8) for i, e in enumerate(dm.train_entries)}
    rng = np.random.default_rng(0)
    noise = write_folder_maps(root / "noise", {key: rng.random(SIZE) for key in truth})
    centre = write_folder_maps(root / "centre", {key: center_prior(*SIZE) for key in truth})
    sources = [{"folder": str(noise), "name": "noise"}, {"folder": str(centre), "name": "centre"}]
    return {"root": root, "clips": clips, "truth": truth, "sources": sources}


def fit_oracle(setup, out: Path, *, skill, epochs: int, sources: list, num_workers: int = 0) -> WeakLabelStore:
    trainer, _ = make_trainer(out, out / "weak", max_epochs=epochs, logger=False, sources=sources)
    dm = make_datamodule(setup["clips"], None, label_every=2, num_workers=num_workers)
    trainer.fit(OracleNetwork(setup["truth"], skill), datamodule=dm)
    return WeakLabelStore(out / "weak")


def test_labels_improve_when_the_network_beats_poor_static_sources(poor_sources, tmp_path):
    """(a) The network's (skewed, then calibrated) map takes over from its first round, the held-out label
    quality rises round by round, and the labels change every round."""
    store = fit_oracle(poor_sources, tmp_path, skill=lambda epochs: 0.25 * epochs, epochs=4,
                       sources=poor_sources["sources"])
    manifests = [store.manifest(r) for r in store.rounds()]
    assert [m["round"] for m in manifests] == [0, 1, 2, 3]
    network = [m["weights"].get("prediction", 0.0) for m in manifests]
    iou = [m["quality"]["label_iou"] for m in manifests]
    mae = [m["quality"]["label_mae"] for m in manifests]
    # uncalibrated, the skewed map got weight 0 in round 1 and 0.62 in round 2 here
    assert network[0] == 0.0 and all(w > 0.5 for w in network[1:]), network
    assert iou[0] < 0.5 and all(b > a for a, b in zip(iou, iou[1:])) and iou[3] > 0.9, iou
    assert all(b < a for a, b in zip(mae, mae[1:])), mae
    assert all(m["stats"]["changed_fraction"] > 0.001 for m in manifests[1:]), [m["stats"] for m in manifests]
    assert len({m["labels_hash"] for m in manifests}) == 4
    for m in manifests[1:]:  # the calibration takes the +2 class-balancing offset back out of the logits
        assert m["fit"]["calibration"]["b"] < -1.0


def test_a_perfect_static_source_keeps_the_weight_and_the_labels(poor_sources, tmp_path):
    """(b) With a source equal to the ground truth, Eq. 8 gives it all the weight in every round and the
    weak labels equal it (read through DataLoader workers)."""
    perfect = write_folder_maps(poor_sources["root"] / "truth", poor_sources["truth"])
    store = fit_oracle(poor_sources, tmp_path, skill=lambda epochs: 0.5, epochs=2, num_workers=2,
                       sources=[*poor_sources["sources"], {"folder": str(perfect), "name": "truth"}])
    assert store.rounds() == [0, 1] and "prediction" in store.manifest(1)["weights"]
    for r in store.rounds():
        manifest = store.manifest(r)
        assert manifest["weights"]["truth"] > 0.999, manifest["weights"]
        assert manifest["quality"]["label_iou"] == 1.0 and manifest["quality"]["label_mae"] == 0.0
        for key in store.frames(r):
            np.testing.assert_array_equal(store.read_label(r, *key), poor_sources["truth"][key])
        assert manifest["oracle"]["label_iou"] == 1.0  # the clips' hidden ground truth is the truth source


def test_no_labelled_frame_to_hold_out_is_a_data_error(poor_sources, tmp_path):
    trainer, _ = make_trainer(tmp_path, tmp_path / "weak", max_epochs=1, logger=False,
                              sources=poor_sources["sources"])
    dm = make_datamodule(poor_sources["clips"], None, label_every=8)  # one labelled frame per clip
    with pytest.raises(DataError, match=r"clips: no labelled training frame can be held out .*Eq\. 8"):
        trainer.fit(OracleNetwork(poor_sources["truth"], lambda epochs: 0.5), datamodule=dm)
    assert WeakLabelStore(tmp_path / "weak").rounds() == []


@pytest.mark.slow
def test_weak_vs_na_benchmark_pipeline(tmp_path, one_thread):
    """The pipeline of `benchmarks/weak_vs_na.py` (not which variant wins: that needs the full-size run)."""
    from benchmarks.weak_vs_na import SCORES, main

    out = tmp_path / "result.json"
    result = main(["--seeds", "3", "--epochs", "2", "--out", str(out), "--train-sequences", "2", "--frames", "10",
                   "--test-sequences", "1", "--label-every", "5", "--height", "48", "--width", "64", "--matched-steps"])
    assert out.is_file() and result["label_budget"] == pytest.approx(0.2)
    assert (result["train_frames"], result["test_frames"]) == (20, 10)
    run_ = result["runs"][0]
    assert run_["NA"]["steps"] == 2 and run_["SCNN"]["steps"] == 10 == run_["NA_steps"]["steps"]  # 4 vs 18 frames
    # SCNN: 2 kept ground-truth frames (the other 2 are held out for Eq. 8) + 16 weakly labelled ones
    trained = (run_["NA"]["trained_frames"], run_["SCNN"]["trained_frames"], run_["NA_steps"]["trained_frames"])
    assert trained == (4, 18, 4)
    for code in ("NA", "SCNN", "NA_steps"):
        assert all(0.0 <= run_[code][k] <= 1.0 for k in SCORES)
        assert result["mean"][code]["mae"] == run_[code]["mae"]
    rounds = run_["SCNN"]["weak_rounds"]
    assert [r["round"] for r in rounds] == [0, 1] and all(r["labels"] == 16 for r in rounds)
    for r in rounds:
        assert abs(sum(r["weights"].values()) - 1) < 1e-6 and 0.0 <= r["iou_hidden_gt"] <= 1.0
        assert r["heldout"]["frames"] == 2 and 0.0 <= r["heldout"]["label_iou"] <= 1.0


def test_a_run_killed_in_the_middle_of_a_round_resumes_cleanly(run, tmp_path, monkeypatch):
    """The process dies while round 2 is being written (its label files in the hidden folder, not yet published):
    the round never becomes visible, and the resumed run (from the checkpoint of epoch 0) redoes epoch 1 on round 1,
    writes round 2 whole, drops the half-written folder and trains epoch 2 on it."""
    from scnn_lightning.weak.store import VERSIONS, RoundWriter

    publish = RoundWriter.publish

    def dies_at_round_2(self, *args, **kwargs):
        if self.round == 2:
            assert any(self.folder.rglob("*.png"))  # labels written, round not yet published
            raise RuntimeError("killed mid-round")
        return publish(self, *args, **kwargs)

    monkeypatch.setattr(RoundWriter, "publish", dies_at_round_2)
    weak_dir = tmp_path / "run" / "weak"
    every_epoch = ModelCheckpoint(dirpath=str(tmp_path / "run" / "checkpoints"), filename="last", save_top_k=1,
                                  enable_version_counter=False, save_on_train_epoch_end=True)  # as run.py saves
    trainer, _ = make_trainer(tmp_path / "run", weak_dir, max_epochs=3, logger=False, checkpoint=every_epoch)
    dm = make_datamodule(run["clips"], run["root"] / "cache")
    with pytest.raises(RuntimeError, match="killed mid-round"):
        trainer.fit(make_module(), datamodule=dm)
    store = WeakLabelStore(weak_dir)
    assert store.rounds() == [0, 1] and len(list((weak_dir / VERSIONS).iterdir())) == 3  # round 2's is orphaned
    before = round_files(weak_dir, (0, 1))
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, map_location="cpu", weights_only=True)["epoch"] == 0

    monkeypatch.setattr(RoundWriter, "publish", publish)
    spy = LabelSpy()
    trainer, weak = make_trainer(tmp_path / "run", weak_dir, max_epochs=3, spy=spy, logger=False)
    trainer.fit(make_module(seed=3), datamodule=make_datamodule(run["clips"], run["root"] / "cache"), ckpt_path=str(ckpt))
    assert store.rounds() == [0, 1, 2] and round_files(weak_dir, (0, 1)) == before
    assert len(list((weak_dir / VERSIONS).iterdir())) == 3  # the orphan went when round 2 was begun again
    assert store.hash_on_disk(2) == store.labels_hash(2) == weak.labels_hash
    assert sorted(spy.seen) == [1, 2]
    for epoch in (1, 2):
        for key in spy.weak_frames(epoch):
            np.testing.assert_array_equal(spy.seen[epoch][key][1], store.read_label(epoch, *key))


def test_the_averaged_network_makes_the_map_when_asked(run, tmp_path, monkeypatch):
    """`network="averaged"`: the map fused after an epoch is made by the EMA callback's averaged copy of the
    module, not by the trained weights; without weight averaging it is an error before any round."""
    from lightning.pytorch.callbacks import EMAWeightAveraging

    used = []
    batches = WeakLabelRefresh._batches

    def spy_batches(self, dm, entries, pl_module, with_prediction):
        if with_prediction:
            used.append(pl_module)
        return batches(self, dm, entries, pl_module, with_prediction)

    monkeypatch.setattr(WeakLabelRefresh, "_batches", spy_batches)
    trainer, weak = make_trainer(tmp_path / "ema", tmp_path / "ema" / "weak", max_epochs=2, logger=False,
                                 network="averaged")
    ema = EMAWeightAveraging(decay=0.5)
    trainer.callbacks.append(ema)
    module = make_module()
    trainer.fit(module, datamodule=make_datamodule(run["clips"], run["root"] / "cache"))
    assert used and all(m is ema._average_model.module and m is not module for m in used)
    assert WeakLabelStore(tmp_path / "ema" / "weak").manifest(1)["network"] == "averaged"

    trainer, _ = make_trainer(tmp_path / "plain", tmp_path / "plain" / "weak", max_epochs=1, logger=False,
                              network="averaged")
    with pytest.raises(ValueError, match="stage2.ema_decay"):
        trainer.fit(make_module(), datamodule=make_datamodule(run["clips"], run["root"] / "cache"))
    with pytest.raises(ValueError, match="weak.network"):
        WeakLabelRefresh(root=str(tmp_path), sources=SOURCES, network="best")


def test_the_propagated_source_joins_the_fusion_without_the_held_out_masks(run, tmp_path):
    """`propagated` in weak.sources: the refresh builds it from the training sequences and the budgeted frames that
    are not held out, fuses it (Eq. 7-8) and caches its maps with the classical ones."""
    trainer, weak = make_trainer(tmp_path, tmp_path / "weak", max_epochs=1, logger=False,
                                 sources=[*SOURCES, {"propagated": {"max_distance": 4}}], cache_dir=tmp_path / "maps")
    dm = make_datamodule(run["clips"], run["root"] / "cache")
    trainer.fit(make_module(), datamodule=dm)
    manifest = WeakLabelStore(tmp_path / "weak").manifest(0)
    assert manifest["sources"] == [*SOURCES, "propagated"]
    assert 0.0 <= manifest["quality"]["sources"]["propagated"]["label_iou"] <= 1.0
    (propagated,) = [s for s in weak.sources if s.name == "propagated"]
    held = {frame_key(e) for e in dm.fusion_holdout_entries()}
    allowed = {frame_key(e) for e in dm.labelled_train_entries()} - held
    assert propagated.max_distance == 4 and propagated.propagating == allowed and not held & propagated.propagating
    frames = len(held) + len(dm.unlabelled_train_entries())
    assert len(list((tmp_path / "maps").rglob("*.png"))) == (len(SOURCES) + 1) * frames


def test_the_propagated_source_is_trusted_by_distance_when_asked(run, tmp_path, monkeypatch):
    """weak.propagated_weight=distance: each frame's Eq. 7 weights are Eq. 8's with the propagated source's weight
    raised towards 1 by `trust_by_distance`, its reach being the held-out frames' mean distance to their labels."""
    used = {}
    confidence = callback_module.weak_confidence

    def spy(maps, weights):
        used.setdefault("weights", []).append(np.asarray(weights))
        return confidence(maps, weights)

    monkeypatch.setattr(callback_module, "weak_confidence", spy)
    trainer, weak = make_trainer(tmp_path, tmp_path / "weak", max_epochs=1, logger=False,
                                 sources=[*SOURCES, "propagated"], propagated_weight="distance")
    dm = make_datamodule(run["clips"], run["root"] / "cache")
    trainer.fit(make_module(), datamodule=dm)
    manifest = WeakLabelStore(tmp_path / "weak").manifest(0)
    (propagated,) = [s for s in weak.sources if s.name == "propagated"]
    held = [propagated.distance(*e) for e in dm.fusion_holdout_entries()]
    reach = float(np.mean([d for d in held if d is not None]))
    assert manifest["propagated_weight"] == {"mode": "distance", "reach": pytest.approx(reach)}
    fitted = np.array([manifest["weights"][n] for n in manifest["sources"]])
    index = manifest["sources"].index("propagated")
    unlabelled = dm.unlabelled_train_entries()
    expected = [trust_by_distance(fitted, index, propagated.distance(*e), reach) for e in unlabelled]
    assert len(used["weights"]) == len(unlabelled)
    for got, want in zip(used["weights"], expected):
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert any(want[index] > fitted[index] + 0.1 for want in expected)  # some frame lies well inside the reach

    with pytest.raises(ValueError, match="weak.propagated_weight"):
        WeakLabelRefresh(root=str(tmp_path), sources=SOURCES, propagated_weight="always")
    trainer, _ = make_trainer(tmp_path / "none", tmp_path / "none" / "weak", max_epochs=1, logger=False,
                              propagated_weight="distance")
    with pytest.raises(ValueError, match="needs a 'propagated' source"):
        trainer.fit(make_module(), datamodule=make_datamodule(run["clips"], run["root"] / "cache"))
