"""WeakLabelStore: round trip, content hash, atomic publication of whole rounds."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import scnn_lightning.weak.store as store_module
from scnn_lightning.errors import DataError
from scnn_lightning.weak.store import WeakLabelStore, labels_hash


def _labels(seed: int, n: int = 4) -> dict[tuple[str, str], np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        (f"seq{i % 2}", f"frame_{i:05d}"): (rng.random((12 + i, 20 - i)) < 0.4).astype(np.uint8) for i in range(n)
    }


def _write(store, round, labels, weights=None):
    return store.write_round(round, labels, weights=weights or {"ft": 0.25, "mbd": 0.75}, stats={"fg_ratio": 0.4})


def test_round_trip(tmp_path):
    store = WeakLabelStore(tmp_path / "weak")
    assert store.latest_round() is None and store.rounds() == []
    labels = _labels(0)
    weights = {"ft": np.float32(0.25), "prediction": 0.75}
    path = store.write_round(0, labels, weights=weights, stats={"mean_fg": np.float64(0.4), "n": np.int64(4)})
    assert path == tmp_path / "weak" / "round_000"
    assert store.latest_round() == 0
    for (seq, name), mask in labels.items():
        assert store.label_path(0, seq, name) == path / seq / f"{name}.png"
        back = store.read_label(0, seq, name)
        assert back.dtype == np.uint8 and back.shape == mask.shape
        np.testing.assert_array_equal(back, mask)
    manifest = store.manifest(0)
    assert manifest["count"] == 4 and manifest["round"] == 0
    assert manifest["sources"] == ["ft", "prediction"]
    assert manifest["weights"] == {"ft": 0.25, "prediction": 0.75}
    assert manifest["stats"] == {"mean_fg": 0.4, "n": 4}
    assert store.frames(0) == sorted(labels)
    # Labels are stored as 0/255 PNGs readable by any tool.
    raw = np.asarray(Image.open(store.label_path(0, "seq0", "frame_00000")))
    assert set(np.unique(raw)) <= {0, 255}


def test_hash_is_content_based_and_stable(tmp_path):
    store = WeakLabelStore(tmp_path)
    labels = _labels(1)
    reordered = dict(reversed(list(labels.items())))
    assert labels_hash(labels) == labels_hash(reordered)
    as_bool = {k: v.astype(bool) for k, v in labels.items()}
    assert labels_hash(as_bool) == labels_hash(labels)
    _write(store, 0, labels)
    _write(store, 1, reordered)
    assert store.labels_hash(0) == store.labels_hash(1) == labels_hash(labels)
    read_back = {key: store.read_label(0, *key) for key in labels}
    assert labels_hash(read_back) == store.labels_hash(0)
    changed = {k: v.copy() for k, v in labels.items()}
    changed[("seq0", "frame_00000")][0, 0] ^= 1
    assert labels_hash(changed) != labels_hash(labels)
    renamed = {("seqX", name): v for (_, name), v in labels.items()}
    assert labels_hash(renamed) != labels_hash(labels)


def test_rewrite_replaces_round(tmp_path):
    store = WeakLabelStore(tmp_path)
    _write(store, 2, _labels(2, n=4))
    new = _labels(3, n=2)
    _write(store, 2, new, weights={"rbd": 1.0})
    assert store.rounds() == [2]
    assert store.manifest(2)["count"] == 2 and store.manifest(2)["weights"] == {"rbd": 1.0}
    assert store.labels_hash(2) == labels_hash(new)
    assert not store.label_path(2, "seq1", "frame_00003").exists()  # frames of the old version are gone
    assert len(list((tmp_path / store_module.VERSIONS).iterdir())) == 1  # old version deleted


def test_failed_write_leaves_previous_round(tmp_path, monkeypatch):
    store = WeakLabelStore(tmp_path)
    _write(store, 0, _labels(4))
    before = store.labels_hash(0)
    real_write = store_module._write_png
    calls = []

    def failing_write(path, mask):
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full (simulated)")
        real_write(path, mask)

    monkeypatch.setattr(store_module, "_write_png", failing_write)
    for round in (1, 0):  # a new round, and a rewrite of the existing one
        calls.clear()
        with pytest.raises(OSError, match="simulated"):
            _write(store, round, _labels(5))
        assert store.latest_round() == 0 and store.rounds() == [0]
        assert store.labels_hash(0) == before
        assert not store.round_dir(1).exists()
    assert len(list((tmp_path / store_module.VERSIONS).iterdir())) == 1


def test_killed_writer_never_exposes_partial_round(tmp_path):
    """A process killed mid-write (no cleanup at all) leaves the previous round as the latest."""
    store = WeakLabelStore(tmp_path)
    _write(store, 0, _labels(6))
    script = textwrap.dedent(
        f"""
        import os
        import numpy as np
        import scnn_lightning.weak.store as m
        real, calls = m._write_png, []
        def dying(path, mask):
            calls.append(path)
            if len(calls) == 3:
                os._exit(9)
            real(path, mask)
        m._write_png = dying
        labels = {{("s", f"f{{i}}"): np.ones((4, 4), np.uint8) for i in range(5)}}
        m.WeakLabelStore({str(tmp_path)!r}).write_round(1, labels, weights={{"ft": 1.0}}, stats={{}})
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[1])
    assert result.returncode == 9
    assert store.latest_round() == 0 and store.rounds() == [0]
    assert not store.round_dir(1).exists()
    with pytest.raises(DataError, match="round_001"):
        store.read_label(1, "s", "f0")
    orphans = list((tmp_path / store_module.VERSIONS).iterdir())
    assert len(orphans) == 2  # the published round 0 and the dead writer's hidden folder
    _write(store, 1, _labels(7))  # the next write cleans the orphan up
    assert store.rounds() == [0, 1]
    assert len(list((tmp_path / store_module.VERSIONS).iterdir())) == 2


def test_manifest_is_plain_json(tmp_path):
    store = WeakLabelStore(tmp_path)
    path = _write(store, 5, _labels(8))
    text = json.loads((path / "manifest.json").read_text())
    assert text["labels_hash"] == store.labels_hash(5)
    assert [tuple(f) for f in json.loads((tmp_path / text["frames_file"]).read_text())] == sorted(_labels(8))


def test_a_run_keeps_its_frame_list_once_and_manifests_that_list_the_frames_still_read(tmp_path):
    store = WeakLabelStore(tmp_path)
    labels = _labels(8, n=6)
    for round in range(3):
        _write(store, round, labels)
    (listed,) = tmp_path.glob("frames-*.json")  # one file for the three rounds that label the same frames
    assert listed.read_text().splitlines()[1] == '  ["seq0", "frame_00000"],'  # one frame a line
    for round in range(3):
        manifest = json.loads((store.round_dir(round) / "manifest.json").read_text())
        assert "frames" not in manifest and tmp_path / manifest["frames_file"] == listed
        assert store.frames(round) == sorted(labels)
    _write(store, 3, _labels(9, n=2))  # other frames: a file of their own
    assert len(list(tmp_path.glob("frames-*.json"))) == 2 and store.frames(1) == sorted(labels)

    # A manifest written before the frame list had its own file holds the list itself.
    path = store.round_dir(1) / "manifest.json"
    old = json.loads(path.read_text())
    del old["frames_file"]
    path.write_text(json.dumps({**old, "frames": [list(key) for key in sorted(labels)]}, indent=2))
    assert store.frames(1) == sorted(labels)
    assert store.hash_on_disk(1) == store.labels_hash(1)
    path.write_text(json.dumps({**old, "frames": [list(key) for key in sorted(labels)[1:]]}))
    with pytest.raises(DataError, match="counts 6 weak labels but lists 5 frames"):
        store.frames(1)


@pytest.mark.parametrize(
    "labels, match",
    [
        ({("s", "f"): np.full((3, 3), 2, np.uint8)}, "binary"),
        ({("s", "f"): np.zeros((3, 3, 3), np.uint8)}, r"\(H, W\)"),
        ({("s/x", "f"): np.zeros((3, 3), np.uint8)}, "file or folder name"),
        ({("s", ".."): np.zeros((3, 3), np.uint8)}, "file or folder name"),
        ({"s/f": np.zeros((3, 3), np.uint8)}, "string pairs"),
    ],
)
def test_rejects_bad_labels(tmp_path, labels, match):
    store = WeakLabelStore(tmp_path)
    with pytest.raises(ValueError, match=match):
        store.write_round(0, labels, weights={}, stats={})
    assert store.rounds() == []


def test_rejects_bad_round_and_unserialisable_stats(tmp_path):
    store = WeakLabelStore(tmp_path)
    with pytest.raises(ValueError, match="non-negative"):
        store.write_round(-1, _labels(9), weights={}, stats={})
    with pytest.raises(TypeError, match="JSON"):
        store.write_round(0, _labels(9), weights={}, stats={"bad": object()})
    assert store.rounds() == [] and not (tmp_path / store_module.VERSIONS).exists()


def test_missing_round_and_frame_name_the_path(tmp_path):
    store = WeakLabelStore(tmp_path)
    with pytest.raises(DataError, match="round_003"):
        store.manifest(3)
    _write(store, 3, _labels(10))
    with pytest.raises(DataError, match=r"round_003/seq0/nope\.png"):
        store.read_label(3, "seq0", "nope")


def test_several_writers_publish_one_round(tmp_path):
    """DDP: one process begins the round, the others join it by its folder name and write their own frames;
    the publication checks every frame was written and hashes the files."""
    store = WeakLabelStore(tmp_path)
    labels = _labels(11, n=6)
    keys = sorted(labels)
    first = store.begin_round(4)
    other = store.join_round(4, first.folder.name)
    for i, key in enumerate(keys):
        (first if i % 2 else other).write(*key, labels[key])
    assert store.rounds() == []  # nothing visible before the publication
    first.publish(keys, weights={"ft": 1.0}, stats={}, extra={"quality": {"label_iou": 0.5}})
    assert store.rounds() == [4] and store.labels_hash(4) == labels_hash(labels) == store.hash_on_disk(4)
    assert store.manifest(4)["quality"] == {"label_iou": 0.5}
    with pytest.raises(DataError, match="no unpublished folder"):
        store.join_round(5, first.folder.name)


def test_publishing_a_round_with_a_missing_frame_fails(tmp_path):
    store = WeakLabelStore(tmp_path)
    labels = _labels(12, n=3)
    writer = store.begin_round(0)
    for key in sorted(labels)[:2]:
        writer.write(*key, labels[key])
    with pytest.raises(DataError, match="was not written"):
        writer.publish(sorted(labels), weights={"ft": 1.0}, stats={})
    assert store.rounds() == []


def test_extra_manifest_entries_cannot_replace_the_standard_ones(tmp_path):
    store = WeakLabelStore(tmp_path)
    with pytest.raises(ValueError, match="labels_hash"):
        store.write_round(0, _labels(13), weights={"ft": 1.0}, stats={}, extra={"labels_hash": "x"})
    assert store.rounds() == [] and not (tmp_path / store_module.VERSIONS).exists()


def test_labels_with_confidence_round_trip_and_count_in_the_hash(tmp_path):
    store = WeakLabelStore(tmp_path)
    levels = np.array([[0, 90, 127], [128, 200, 255]], np.uint8)
    binary = (levels >= 128).astype(np.uint8)
    writer = store.begin_round(0)
    writer.write_confidence("seq", "f0", levels)
    writer.publish([("seq", "f0")], weights={"a": 1.0}, stats={})
    np.testing.assert_array_equal(store.read_levels(0, "seq", "f0"), levels)
    np.testing.assert_array_equal(store.read_label(0, "seq", "f0"), binary)
    np.testing.assert_allclose(store.read_confidence(0, "seq", "f0"), levels / 255.0)
    assert store.labels_hash(0) == store.hash_on_disk(0) != labels_hash({("seq", "f0"): binary})
    store.write_round(1, {("seq", "f0"): binary}, weights={"a": 1.0}, stats={})  # 0/255 files: the binary hash
    assert store.labels_hash(1) == labels_hash({("seq", "f0"): binary})
    with pytest.raises(ValueError, match="uint8"):
        store.begin_round(2).write_confidence("seq", "f0", levels.astype(np.float32))
