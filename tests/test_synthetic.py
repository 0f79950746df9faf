"""Synthetic benchmark clips: layout, determinism, sparse GT, distractor semantics, camera motion, safety."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from scnn_lightning.data import io, preview, synthetic
from scnn_lightning.data.readers import load_index
from scnn_lightning.data.synthetic import ensure_clips, generate_clips, render_frame, sample_scene, split_sequences
from scnn_lightning.errors import DataError

SMALL = dict(sequences=4, frames=8, height=64, width=96, seed=0)
RES = synthetic.RESOLUTION


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    return generate_clips(tmp_path_factory.mktemp("synthetic") / "bench", **SMALL)


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _mask(path: Path) -> np.ndarray:
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert mask is not None, path
    return mask


def _affines(root: Path, seq: str) -> np.ndarray:
    """Per-frame world-to-image affines as 3×3 matrices."""
    rows = np.array(json.loads((root / "Meta" / seq / "scene.json").read_text())["world_to_image"])
    bottom = np.broadcast_to([0.0, 0.0, 1.0], (len(rows), 1, 3))
    return np.concatenate([rows, bottom], axis=1)


def _frame_masks(root: Path, seq: str, t: int) -> tuple[np.ndarray, np.ndarray]:
    gt = _mask(root / "Annotations" / RES / seq / f"{t:05d}.png") > 0
    distractors = _mask(root / "Meta" / seq / "distractors" / f"{t:05d}.png") > 0
    return gt, distractors


def _sequences(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "JPEGImages" / RES).iterdir())


# -- layout -----------------------------------------------------------------------------------------


def test_layout_and_counts(bench: Path):
    names = [f"syn{i:04d}" for i in range(SMALL["sequences"])]
    assert _sequences(bench) == names
    for seq in names:
        jpgs = sorted((bench / "JPEGImages" / RES / seq).iterdir())
        pngs = sorted((bench / "Annotations" / RES / seq).iterdir())
        distractors = sorted((bench / "Meta" / seq / "distractors").iterdir())
        stems = [f"{t:05d}" for t in range(SMALL["frames"])]
        assert [p.name for p in jpgs] == [s + ".jpg" for s in stems]
        assert [p.name for p in pngs] == [s + ".png" for s in stems]
        assert [p.name for p in distractors] == [s + ".png" for s in stems]
        image = cv2.imread(str(jpgs[0]), cv2.IMREAD_UNCHANGED)
        assert image.shape == (SMALL["height"], SMALL["width"], 3) and image.dtype == np.uint8
        for path in pngs + distractors:
            mask = _mask(path)
            assert mask.shape == (SMALL["height"], SMALL["width"]) and mask.dtype == np.uint8
            assert set(np.unique(mask)) <= {0, 255}, path
    info = json.loads((bench / "Meta" / "generator.json").read_text())
    assert info["version"] == synthetic.GENERATOR_VERSION
    assert info["parameters"] == {**SMALL, "sparse_every": None, "val_fraction": 0.2}
    assert not list(bench.parent.glob(".bench.*")), "staging folder left behind"
    probe = bench.parent / "probe"
    probe.mkdir()
    assert bench.stat().st_mode & 0o777 == probe.stat().st_mode & 0o777  # not a private temp-dir mode
    probe.rmdir()


def test_ground_truth_is_rarely_empty_and_objects_vary(bench: Path):
    gts = [_frame_masks(bench, s, t)[0] for s in _sequences(bench) for t in range(SMALL["frames"])]
    assert np.mean([g.any() for g in gts]) >= 0.8
    assert all(g.mean() < 0.5 for g in gts)


def test_image_sets_format(bench: Path):
    image_sets = bench / "ImageSets" / RES
    line_format = re.compile(r"^/JPEGImages/480p/(syn\d{4})/(\d{5})\.jpg /Annotations/480p/\1/\2\.png$")
    listed = {}
    for split in ("train", "val"):
        lines = (image_sets / f"{split}.txt").read_text().splitlines()
        seqs = []
        for line in lines:
            match = line_format.match(line)
            assert match, line
            for token in line.split():
                assert (bench / token.lstrip("/")).is_file(), token
            seqs.append(match.group(1))
        listed[split] = sorted(set(seqs))
        for seq in listed[split]:
            assert seqs.count(seq) == SMALL["frames"]
    assert listed["train"] and len(listed["val"]) == 1  # round(0.2 * 4) = 1
    assert sorted(listed["train"] + listed["val"]) == _sequences(bench)


def test_split_is_deterministic_and_keeps_a_train_sequence():
    names = [f"s{i}" for i in range(10)]
    assert split_sequences(names, seed=3, val_fraction=0.3) == split_sequences(names, seed=3, val_fraction=0.3)
    vals = {tuple(split_sequences(names, seed=s, val_fraction=0.3)[1]) for s in range(6)}
    assert len(vals) > 1 and all(len(v) == 3 for v in vals)
    assert split_sequences(["a"], seed=0, val_fraction=0.9) == (["a"], [])
    assert split_sequences(["a", "b"], seed=0, val_fraction=0.9)[0] != []
    assert split_sequences(["a", "b"], seed=0, val_fraction=0.0) == (["a", "b"], [])


# -- determinism ------------------------------------------------------------------------------------


def test_same_arguments_give_identical_bytes_and_seeds_differ(bench: Path, tmp_path: Path):
    again = tmp_path / "again"
    assert synthetic.main(["--out", str(again)] + [f"--{k}={v}" for k, v in SMALL.items()]) == 0
    assert _hashes(again) == _hashes(bench)

    other = generate_clips(tmp_path / "other", **{**SMALL, "seed": 1})
    first, second = _hashes(bench), _hashes(other)
    jpgs = [k for k in first if k.endswith(".jpg")]
    assert all(first[k] != second[k] for k in jpgs)


def test_clip_depends_only_on_seed_and_index(bench: Path, tmp_path: Path):
    fewer = generate_clips(tmp_path / "fewer", **{**SMALL, "sequences": 2})
    for name, digest in _hashes(fewer).items():
        if name.startswith(("JPEGImages", "Annotations")):
            assert _hashes(bench)[name] == digest


# -- sparse ground truth ----------------------------------------------------------------------------


def test_sparse_ground_truth(tmp_path: Path):
    root = generate_clips(tmp_path / "sparse", **{**SMALL, "sequences": 2, "frames": 7, "sparse_every": 3})
    for seq in _sequences(root):
        assert sorted(p.name for p in (root / "Annotations" / RES / seq).iterdir()) == [
            "00000.png",
            "00003.png",
            "00006.png",
        ]
        assert len(list((root / "JPEGImages" / RES / seq).iterdir())) == 7
        assert len(list((root / "Meta" / seq / "distractors").iterdir())) == 7
    lines = [
        line
        for split in ("train", "val")
        for line in (root / "ImageSets" / RES / f"{split}.txt").read_text().splitlines()
    ]
    assert len(lines) == 14
    for line in lines:
        tokens = line.split()
        frame = int(Path(tokens[0]).stem)
        assert len(tokens) == (2 if frame % 3 == 0 else 1), line


# -- what the clips show ----------------------------------------------------------------------------


def test_distractors_are_visible_and_never_in_ground_truth(bench: Path):
    shown = 0
    for seq in _sequences(bench):
        for t in range(SMALL["frames"]):
            gt, distractors = _frame_masks(bench, seq, t)
            assert not (gt & distractors).any(), (seq, t)
            core = cv2.erode(distractors.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            ring = cv2.dilate(distractors.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
            near_gt = cv2.dilate(gt.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
            ring &= ~cv2.dilate(distractors.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~near_gt
            if core.sum() < 10 or ring.sum() < 10:
                continue
            image = cv2.imread(str(bench / "JPEGImages" / RES / seq / f"{t:05d}.jpg")).astype(np.float64)
            # Each object colour is >= 0.35 (unit RGB) from the background mean; the blend between
            # the two colours may pass near it, hence the median over the object's pixels.
            distance = np.linalg.norm(image[core] - image[ring].mean(0), axis=1)
            assert np.median(distance) > 40, (seq, t)
            shown += 1
    assert shown >= SMALL["sequences"] * SMALL["frames"] // 2


def _valid_region(gt0: np.ndarray, gt_t: np.ndarray, to_t: np.ndarray) -> np.ndarray:
    """Frame-t pixels seen in frame 0 too and away from the moving objects of either frame (occluders)."""
    h, w = gt0.shape
    seen_before = cv2.warpAffine(np.ones((h, w), np.uint8), to_t[:2], (w, h), flags=cv2.INTER_NEAREST)
    seen_before = cv2.erode(seen_before, np.ones((3, 3), np.uint8)).astype(bool)
    warped_gt0 = cv2.warpAffine(gt0.astype(np.uint8), to_t[:2], (w, h), flags=cv2.INTER_NEAREST)
    near_objects = cv2.dilate(warped_gt0 | gt_t.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    return seen_before & ~near_objects


def _centroid(weights: np.ndarray) -> np.ndarray:
    ys, xs = np.mgrid[: weights.shape[0], : weights.shape[1]]
    return np.array([(xs * weights).sum(), (ys * weights).sum()]) / weights.sum()


def test_distractors_move_exactly_with_the_camera(bench: Path):
    """Frame 0's distractor mask, moved by the camera (scene.json), lands on frame t's within 1 px."""
    compared, errors_if_static = 0, []
    for seq in _sequences(bench):
        affines = _affines(bench, seq)
        gt0, d0 = _frame_masks(bench, seq, 0)
        h, w = d0.shape
        for t in range(1, SMALL["frames"]):
            gt_t, d_t = _frame_masks(bench, seq, t)
            to_t = affines[t] @ np.linalg.inv(affines[0])
            valid = _valid_region(gt0, gt_t, to_t)
            observed = (d_t & valid).astype(np.float64)
            predicted = cv2.warpAffine(d0.astype(np.float64), to_t[:2], (w, h), flags=cv2.INTER_LINEAR) * valid
            if observed.sum() < 30 or predicted.sum() < 30:
                continue  # distractor occluded or out of view
            error = np.linalg.norm(_centroid(observed) - _centroid(predicted))
            assert error < 1.0, (seq, t, error)
            errors_if_static.append(np.linalg.norm(_centroid(observed) - _centroid(d0 * valid + 0.0)))
            compared += 1
    assert compared >= 10
    # The camera really moved: a distractor fixed in the image would have missed by more than 2 px.
    assert max(errors_if_static) > 2.0


def _warp_iou(mask0: np.ndarray, mask_t: np.ndarray, to_t: np.ndarray, valid: np.ndarray) -> float:
    h, w = mask0.shape
    warped = cv2.warpAffine(mask0.astype(np.uint8), to_t[:2], (w, h), flags=cv2.INTER_NEAREST).astype(bool)
    union = ((warped | mask_t) & valid).sum()
    return float(((warped & mask_t) & valid).sum() / union) if union else float("nan")


def test_moving_objects_move_relative_to_the_background(bench: Path):
    """Compensating the camera re-aligns the distractors (IoU near 1) but not the moving objects."""
    t = SMALL["frames"] - 1
    moving, static = [], []
    for seq in _sequences(bench):
        affines = _affines(bench, seq)
        to_t = affines[t] @ np.linalg.inv(affines[0])
        (gt0, d0), (gt_t, d_t) = _frame_masks(bench, seq, 0), _frame_masks(bench, seq, t)
        h, w = gt0.shape
        seen_before = cv2.warpAffine(np.ones((h, w), np.uint8), to_t[:2], (w, h), flags=cv2.INTER_NEAREST) > 0
        if gt0.any() and gt_t.any():
            moving.append(_warp_iou(gt0, gt_t, to_t, seen_before))
        if d0.any() and d_t.any():
            static.append(_warp_iou(d0, d_t, to_t, _valid_region(gt0, gt_t, to_t)))
    moving = [v for v in moving if v == v]
    static = [v for v in static if v == v]
    assert len(moving) >= 2 and len(static) >= 2
    assert np.mean(static) > 0.8, static
    assert np.mean(moving) < 0.4, moving


def test_occlusions_go_both_ways_and_ground_truth_keeps_only_visible_pixels():
    """Each pixel belongs to the nearest object covering it: GT holds only visible moving-object pixels."""
    in_front, behind = 0, 0
    for index in range(12):
        scene = sample_scene(np.random.default_rng([7, index]), frames=12, height=64, width=96)
        moving = np.array([a.moving for a in scene.actors])
        depths = np.array([a.depth for a in scene.actors])
        for t in range(scene.frames):
            _, salient, distractor = render_frame(scene, t)
            alone = [render_frame(dataclasses.replace(scene, actors=(a,)), t) for a in scene.actors]
            covers = np.stack([(s | d).astype(bool) for _, s, d in alone])  # (actors, H, W)
            nearest = np.where(covers, depths[:, None, None], -1.0).argmax(0)
            covered = covers.any(0)
            assert np.array_equal(salient.astype(bool), covered & moving[nearest])
            assert np.array_equal(distractor.astype(bool), covered & ~moving[nearest])
            mover_under, still_under = covers[moving].any(0), covers[~moving].any(0)
            in_front += int((mover_under & still_under & salient.astype(bool)).sum() > 0)
            behind += int((mover_under & still_under & distractor.astype(bool)).sum() > 0)
    assert in_front >= 3 and behind >= 3, (in_front, behind)


def test_benchmark_loads_through_the_davis_reader(tmp_path: Path):
    root = generate_clips(tmp_path / "sparse", **{**SMALL, "sequences": 3, "frames": 7, "sparse_every": 3})
    index = load_index("davis", root)
    summary = index.summary()
    assert summary["sequences"] == 3 and summary["frames"] == 21
    assert summary["labelled_frames"] == 9  # frames 0, 3, 6 of each clip
    info = synthetic.read_generator_info(root)
    for split in ("train", "val"):
        assert [s.name for s in load_index("davis", root, split=split).sequences] == info["splits"][split]
    frame = next(f for f in index.frames if f.labelled)
    assert io.read_frame(frame).shape == (SMALL["height"], SMALL["width"], 3)
    mask = io.read_mask(frame)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    assert np.array_equal(mask, (_mask(frame.masks[0]) > 0).astype(np.uint8))


# -- safety and reuse -------------------------------------------------------------------------------


def test_interrupted_generation_leaves_nothing_that_looks_complete(tmp_path: Path, monkeypatch):
    real_write = synthetic._write_sequence
    calls = []

    def crash_on_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_write(*args, **kwargs)

    monkeypatch.setattr(synthetic, "_write_sequence", crash_on_second)
    out = tmp_path / "bench"
    with pytest.raises(KeyboardInterrupt):
        generate_clips(out, **SMALL)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # the staging folder was cleaned up

    monkeypatch.setattr(synthetic, "_write_sequence", real_write)
    generate_clips(out, **{**SMALL, "sequences": 1, "frames": 2})
    before = _hashes(out)
    calls.clear()
    monkeypatch.setattr(synthetic, "_write_sequence", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        generate_clips(out, **SMALL)
    assert _hashes(out) == before  # the previous complete benchmark is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["bench"]


def test_ensure_clips_reuses_or_regenerates(tmp_path: Path, monkeypatch):
    out = tmp_path / "bench"
    small = {**SMALL, "sequences": 1, "frames": 2}
    ensure_clips(out, **small)
    first = _hashes(out)

    def must_not_run(*args, **kwargs):
        raise AssertionError("regenerated an up-to-date benchmark")

    with monkeypatch.context() as patch:
        patch.setattr(synthetic, "generate_clips", must_not_run)
        assert ensure_clips(out, **small) == out

    ensure_clips(out, **{**small, "seed": 5})
    assert json.loads((out / "Meta" / "generator.json").read_text())["parameters"]["seed"] == 5
    assert _hashes(out) != first


def test_refuses_to_overwrite_a_folder_that_is_not_a_complete_benchmark(tmp_path: Path):
    foreign = tmp_path / "data"
    (foreign / "JPEGImages").mkdir(parents=True)  # e.g. left by someone else, no generator.json
    with pytest.raises(DataError, match=re.escape(str(foreign))):
        ensure_clips(foreign, **{**SMALL, "sequences": 1, "frames": 1})
    assert (foreign / "JPEGImages").is_dir()
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(DataError, match="not a folder"):
        generate_clips(a_file, **{**SMALL, "sequences": 1, "frames": 1})
    assert a_file.read_text() == "x"
    empty = tmp_path / "empty"
    empty.mkdir()
    generate_clips(empty, **{**SMALL, "sequences": np.int64(1), "frames": 1})  # numpy integers are fine
    assert json.loads((empty / "Meta" / "generator.json").read_text())["parameters"]["sequences"] == 1


@pytest.mark.parametrize(
    "change",
    [{"sequences": 0}, {"frames": True}, {"height": 8}, {"width": 2.5}, {"seed": -1}, {"sparse_every": 0},
     {"val_fraction": 1.0}],
)
def test_bad_parameters_are_rejected(tmp_path: Path, change):
    with pytest.raises(ValueError, match=next(iter(change))):
        generate_clips(tmp_path / "bench", **{**SMALL, **change})
    assert not (tmp_path / "bench").exists()


def test_cli_reports_bad_parameters(tmp_path: Path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        synthetic.main(["--out", str(tmp_path / "b"), "--sequences", "0", "--frames", "2", "--height", "32",
                        "--width", "32", "--seed", "0"])
    assert exit_info.value.code == 2
    assert "sequences must be" in capsys.readouterr().err


def test_large_frames_are_supported(tmp_path: Path):
    root = generate_clips(tmp_path / "big", sequences=1, frames=2, height=480, width=854, seed=2)
    image = cv2.imread(str(root / "JPEGImages" / RES / "syn0000" / "00001.jpg"))
    assert image.shape == (480, 854, 3)


# -- preview ----------------------------------------------------------------------------------------


def test_preview_writes_a_picture(bench: Path, tmp_path: Path):
    out = preview.render_preview(bench, tmp_path / "p.png", sequences=2, frames=3)
    picture = cv2.imread(str(out))
    assert picture is not None and picture.shape[0] > 100 and picture.shape[1] > 200
    assert not list(tmp_path.glob(".p.png.*"))


def test_preview_rejects_a_folder_that_is_not_a_benchmark(tmp_path: Path):
    with pytest.raises(DataError, match="JPEGImages"):
        preview.render_preview(tmp_path, tmp_path / "p.png")
    assert preview.main([str(tmp_path), "--out", str(tmp_path / "p.png")]) == 1
