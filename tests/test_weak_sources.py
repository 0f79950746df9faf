"""Fusion sources S_i (Eq. 7): folder maps, classical models, the network's own predictions."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from omegaconf import OmegaConf

from scnn_lightning.data.records import FrameRef
from scnn_lightning.errors import DataError
from scnn_lightning.weak.classical import CLASSICAL_MODELS
from scnn_lightning.weak.sources import (
    ClassicalSource,
    FolderSource,
    PredictionSource,
    SaliencySource,
    build_sources,
)


def _frame(seq="cat", name="00001"):
    return FrameRef(seq, name, Path(f"/data/{seq}/{name}.jpg"))


def _image(h=30, w=40):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _write_map(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), values)


def test_folder_source_reads_and_resizes(tmp_path):
    _write_map(tmp_path / "cat" / "00001.png", np.full((15, 20), 255, np.uint8))
    grad = np.tile(np.linspace(0, 255, 40).astype(np.uint8), (30, 1))
    _write_map(tmp_path / "cat" / "00002.png", grad)
    source = FolderSource(tmp_path, name="dcl")
    full = source.map_for(_frame(), _image())
    assert full.shape == (30, 40) and full.dtype == np.float32
    np.testing.assert_allclose(full, 1.0)
    same_size = source.map_for(_frame(name="00002"), _image())
    np.testing.assert_allclose(same_size, grad / 255.0, atol=1e-6)


def test_folder_source_accepts_jpg_and_colour(tmp_path):
    colour = np.zeros((30, 40, 3), np.uint8)
    colour[:, 20:] = 255
    _write_map(tmp_path / "cat" / "00001.jpg", colour)
    saliency = FolderSource(tmp_path, name="ext").map_for(_frame(), _image())
    assert saliency[:, :15].max() < 0.1 and saliency[:, 25:].min() > 0.9


def test_folder_source_missing_maps(tmp_path):
    _write_map(tmp_path / "cat" / "00001.png", np.zeros((4, 4), np.uint8))
    source = FolderSource(tmp_path, name="dcl")
    frames = [_frame(name="00001"), _frame(name="00002"), _frame("dog", "00007")]
    assert source.check(frames) == [str(tmp_path / "cat" / "00002.png"), str(tmp_path / "dog" / "00007.png")]
    with pytest.raises(DataError, match=r"dog/00007\.png.*'dcl' missing"):
        source.map_for(frames[2], _image())
    with pytest.raises(DataError, match="does not exist"):
        FolderSource(tmp_path / "nowhere", name="x")


def test_folder_source_corrupt_map(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "00001.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"00001\.png"):
        FolderSource(tmp_path, name="dcl").map_for(_frame(), _image())


def test_classical_source_wraps_registry():
    image = _image()
    source = ClassicalSource("rbd")
    assert isinstance(source, SaliencySource) and source.name == "rbd"
    np.testing.assert_array_equal(source.map_for(_frame(), image), CLASSICAL_MODELS["rbd"](image))
    with pytest.raises(DataError, match=r"/data/cat/00001\.jpg"):
        source.map_for(_frame(), np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="valid"):
        ClassicalSource("dss")


def test_prediction_source_rounds():
    source = PredictionSource()
    image = _image()
    with pytest.raises(DataError, match="no 'prediction' map"):
        source.map_for(_frame(), image)
    source.update({("cat", "00001"): np.full((15, 20), 0.25, np.float32)})
    np.testing.assert_allclose(source.map_for(_frame(), image), 0.25)
    assert source.map_for(_frame(), image).shape == (30, 40)
    source.update({("cat", "00002"): np.zeros((30, 40), np.float32)})  # a new round replaces the old maps
    assert len(source) == 1
    with pytest.raises(DataError):
        source.map_for(_frame(), image)
    source.update({("cat", "00001"): np.full((30, 40), np.nan, np.float32)})
    with pytest.raises(DataError, match="NaN"):
        source.map_for(_frame(), image)
    source.update({("cat", "00001"): np.full((30, 40), 1.5, np.float32)})
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        source.map_for(_frame(), image)


def test_build_sources(tmp_path):
    sources = build_sources(["ft", "mbd", {"folder": str(tmp_path), "name": "dcl"}, "prediction"])
    assert [s.name for s in sources] == ["ft", "mbd", "dcl", "prediction"]
    assert [type(s) for s in sources] == [ClassicalSource, ClassicalSource, FolderSource, PredictionSource]
    assert all(isinstance(s, SaliencySource) for s in sources)
    from_config = build_sources(OmegaConf.create(["rbd", {"folder": str(tmp_path), "name": "dss"}]))
    assert [s.name for s in from_config] == ["rbd", "dss"]


@pytest.mark.parametrize(
    "specs, match",
    [
        (["ft", "dss"], r"unknown saliency source 'dss'.*'ft', 'mbd', 'rbd'"),
        ([{"folder": "/x"}], "bad saliency source spec"),
        ([42], "bad saliency source spec"),
        (["ft", "ft"], "duplicate"),
    ],
)
def test_build_sources_rejects(specs, match):
    with pytest.raises(ValueError, match=match):
        build_sources(specs)
