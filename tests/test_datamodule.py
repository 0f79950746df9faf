"""The datamodule: merging sources, pairs, label kinds, budget, deterministic splits (augmentation: test_augment)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from scnn_lightning.data.datamodule import (LABEL_MANUAL, LABEL_NONE, LABEL_WEAK, SaliencyDataModule,
                                            budget_keeps, split_train_val)
from scnn_lightning.data.records import FrameRef, SequenceRef
from scnn_lightning.data.synthetic import generate_clips
from scnn_lightning.errors import DataError
from scnn_lightning.weak.store import WeakLabelStore
DUTS_IMAGES = 12


@pytest.fixture(scope="module")
def duts(tmp_path_factory):
    """A small still-image set in the DUTS layout (img/part_000/*.jpg, gt/part_000/*.png), sizes differing."""
    root = tmp_path_factory.mktemp("duts")
    rng = np.random.default_rng(0)
    for i in range(DUTS_IMAGES):
        h, w = 30 + i, 40 + 2 * i
        (root / "img" / "part_000").mkdir(parents=True, exist_ok=True)
        (root / "gt" / "part_000").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "img" / "part_000" / f"im{i:03d}.jpg"), rng.integers(0, 255, (h, w, 3), np.uint8))
        mask = np.zeros((h, w), np.uint8)
        mask[5:15, 5:20] = 255
        cv2.imwrite(str(root / "gt" / "part_000" / f"im{i:03d}.png"), mask)
    return root


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    generate_clips(root, sequences=3, frames=6, height=40, width=56, seed=3, sparse_every=2, val_fraction=0.0)
    return root


def seq(name, n, labelled=(), temporal=True):
    frames = [FrameRef(name, f"{i:05d}", image=Path(f"/x/{i}.jpg"), masks=(Path(f"/x/{i}.png"),) if i in labelled else ())
              for i in range(n)]
    return SequenceRef(name, frames, temporal=temporal)


def test_split_is_deterministic_and_by_sequence_for_videos():
    seqs = [seq(f"s{i}", 4) for i in range(10)]
    a = split_train_val(seqs, 0.3, seed=1)
    b = split_train_val(seqs, 0.3, seed=1)
    assert [(s.name, i) for s, i in a[0]] == [(s.name, i) for s, i in b[0]]
    train_names = {s.name for s, _ in a[0]}
    val_names = {s.name for s, _ in a[1]}
    assert train_names and val_names and not train_names & val_names  # no sequence leaks into both
    images = [seq("stills", 50, temporal=False)]
    tr, va = split_train_val(images, 0.3, seed=1)
    assert len(tr) + len(va) == 50 and 5 <= len(va) <= 25  # still images split frame by frame


def test_label_budget_keeps_every_kth_labelled_frame():
    s = seq("a", 10, labelled=range(10))
    assert [i for i in range(10) if budget_keeps(s, i, 5)] == [0, 5]
    sparse = seq("b", 10, labelled=(1, 4, 7, 9))
    assert [i for i in range(10) if budget_keeps(sparse, i, 2)] == [1, 7]
    assert all(budget_keeps(s, i, None) for i in range(10))
    stills = seq("stills", 10, labelled=range(10), temporal=False)  # stage-1 images are never thinned
    assert all(budget_keeps(stills, i, 5) for i in range(10))


def test_merged_sources_pairs_and_label_kinds(clips, duts):
    dm = SaliencyDataModule(train=[{"dataset": "davis", "root": str(clips)},
                                   {"dataset": "duts", "root": str(duts)}],
                            val=[{"dataset": "davis", "root": str(clips)}], size=(32, 48), batch_size=4)
    dm.setup("fit")
    names = {s.name for s, _ in dm.train_entries}
    assert "syn0000" in names and any(not s.temporal for s, _ in dm.train_entries)
    assert len(dm.train_entries) == 3 * 6 + DUTS_IMAGES
    # sparse GT: unlabelled video frames are not trained on until they get a weak label
    active = dm.active_train_entries()
    assert len(active) == 3 * 3 + DUTS_IMAGES
    batch = next(iter(dm.val_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 48) and batch["next_image"].shape == (4, 3, 32, 48)
    assert batch["mask"].shape == (4, 1, 32, 48) and set(batch["mask"].unique().tolist()) <= {0.0, 1.0}
    assert batch["label_kind"].tolist() == [LABEL_MANUAL] * 4 and batch["has_next"].all()


def test_image_dataset_has_no_next_frame(duts):
    dm = SaliencyDataModule(train=[{"dataset": "duts", "root": str(duts)}], size=(32, 32), val_fraction=0.0)
    dm.setup("fit")
    item = dm.dataset(dm.train_entries[:1])[0]
    assert item["has_next"] is False and torch.equal(item["image"], item["next_image"])


def test_last_frame_pairs_with_previous(clips):
    dm = SaliencyDataModule(test=[{"dataset": "davis", "root": str(clips)}], size=(40, 56))
    dm.setup("test")
    ds = dm.dataset(dm.test_entries)
    seq0 = dm.test_entries[0][0]
    assert ds.partner_index(seq0, 0) == 1 and ds.partner_index(seq0, 5) == 4


def test_weak_labels_join_the_training_set(clips, tmp_path):
    dm = SaliencyDataModule(train=[{"dataset": "davis", "root": str(clips)}], val_fraction=0.0, size=(40, 56))
    dm.setup("fit")
    unlabelled = dm.unlabelled_train_entries()
    assert len(unlabelled) == 9
    store = WeakLabelStore(tmp_path / "weak")
    s, i = unlabelled[0]
    label = np.zeros((40, 56), np.uint8)
    label[10:20, 10:30] = 1
    store.write_round(0, {(s.name, s.frames[i].name): label}, weights={"ft": 1.0}, stats={})
    dm.use_weak_labels(store, 0)
    assert len(dm.active_train_entries()) == 10
    mask, kind = dm.train_label(s, i, (40, 56))
    assert kind == LABEL_WEAK and np.array_equal(mask, label)
    other = unlabelled[1]
    assert dm.train_label(other[0], other[1], (40, 56)) == (None, LABEL_NONE)


def test_no_labelled_frame_is_a_clear_error(tmp_path):
    root = tmp_path / "frames" / "clip"
    root.mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(root / f"{i:05d}.png"), np.full((16, 16, 3), 100, np.uint8))
    dm = SaliencyDataModule(train=[{"dataset": "frames", "root": str(root)}], size=(16, 16), val_fraction=0.0)
    dm.setup("fit")
    with pytest.raises(DataError, match="no labelled training frame"):
        dm.train_dataloader()
