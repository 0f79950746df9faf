"""The pre-training data check (scnn_lightning.data.verify): every frame and mask decoded, all problems at once."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import ImageFile

from experiments.run import generate_data, run
from scnn_lightning.data import verify
from scnn_lightning.data.verify import DataCheckError, verify_data
from tests.conftest import TINY_OVERRIDES, compose_run
from tests.fixtures_layouts import H, W, box_mask, save, save_frame, save_gray_mask

REPO = Path(__file__).resolve().parents[1]
DAVIS = "JPEGImages/480p", "Annotations/480p"


def build_davis(root: Path, sequences=("bear", "cows"), frames: int = 3, shape=(H, W)) -> Path:
    """A DAVIS-2016 layout whose ImageSets/480p/val.txt lists every frame of `sequences`."""
    lines = []
    for seq in sequences:
        for i in range(frames):
            save_frame(root / DAVIS[0] / seq / f"{i:05d}.jpg", seed=i, shape=shape)
            save_gray_mask(root / DAVIS[1] / seq / f"{i:05d}.png", box_mask(shape))
            lines.append(f"/{DAVIS[0]}/{seq}/{i:05d}.jpg /{DAVIS[1]}/{seq}/{i:05d}.png\n")
    (root / "ImageSets" / "480p").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "480p" / "val.txt").write_text("".join(lines))
    return root


def frame(root: Path, seq: str, i: int) -> Path:
    return root / DAVIS[0] / seq / f"{i:05d}.jpg"


def mask(root: Path, seq: str, i: int) -> Path:
    return root / DAVIS[1] / seq / f"{i:05d}.png"


def source(root: Path, split: str | None = "val") -> dict:
    return {"dataset": "davis", "root": str(root), "split": split}


def problems(data: dict, cache_dir: Path) -> list[str]:
    with pytest.raises(DataCheckError) as info:
        verify_data(data, cache_dir)
    assert str(info.value).count("\n") >= len(info.value.problems)  # the message lists every problem
    return info.value.problems


def count_decodes(monkeypatch) -> list:
    decoded = []
    real = verify.check_file

    def counting(check):
        decoded.append(check.path)
        return real(check)

    monkeypatch.setattr(verify, "check_file", counting)
    return decoded


# ---- one problem each ---------------------------------------------------------------------------


def test_clean_data_passes_and_counts_every_file(tmp_path):
    root = build_davis(tmp_path / "davis")
    found = verify_data({"videos": [source(root)], "test": [source(root, None)]}, tmp_path / "cache")
    assert found.errors == [] and found.warnings == []
    assert found.files == 2 * 12  # 6 frames + 6 masks, once per source


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_frames_are_caught_even_where_pil_would_pad_them(tmp_path, monkeypatch, suffix):
    root = build_davis(tmp_path / "davis", shape=(64, 64))
    cut = frame(root, "bear", 1).with_suffix(suffix)
    frame(root, "bear", 1).unlink()
    save_frame(cut, shape=(64, 64))
    data = cut.read_bytes()
    # JPEG: lose the last part of the scan; PNG: lose only the IEND chunk, which PIL never reads.
    cut.write_bytes(data[:-200] if suffix == ".jpg" else data[:-12])
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # set by some libraries; must not matter
    expected = "no end-of-image marker after the last scan" if suffix == ".jpg" else "no IEND chunk at the end"
    found = problems({"test": [source(root, None)]}, tmp_path / "cache")
    assert found == [f"{cut}: truncated image ({'JPEG' if suffix == '.jpg' else 'PNG'}: {expected})"]


def test_truncated_mask_is_caught_by_a_full_decode(tmp_path):
    root = build_davis(tmp_path / "davis", shape=(64, 64))
    path = mask(root, "cows", 2)
    path.write_bytes(path.read_bytes()[:-40])  # into the image data: PIL's own decode fails
    [found] = problems({"test": [source(root)]}, tmp_path / "cache")
    assert found.startswith(f"{path}: unreadable or truncated image (")


def test_fake_frame_is_named(tmp_path):
    root = build_davis(tmp_path / "davis")
    frame(root, "bear", 0).write_text("<html>404 Not Found</html>")
    assert problems({"images": [source(root)]}, tmp_path / "cache") == [
        f"{frame(root, 'bear', 0)}: unreadable or truncated image (not an image file PIL can identify)"
    ]


def test_mask_of_another_size_names_mask_frame_and_sizes(tmp_path):
    root = build_davis(tmp_path / "davis")
    save_gray_mask(mask(root, "cows", 1), box_mask((H, W + 4)))
    assert problems({"test": [source(root)]}, tmp_path / "cache") == [
        f"{mask(root, 'cows', 1)}: mask is {H}x{W + 4} (HxW) but frame {frame(root, 'cows', 1)} is {H}x{W} (HxW)"
    ]


def test_frame_size_changing_inside_a_video_is_a_problem(tmp_path):
    root = build_davis(tmp_path / "davis")
    save_frame(frame(root, "bear", 2), shape=(H, W + 2))
    save_gray_mask(mask(root, "bear", 2), box_mask((H, W + 2)))
    [found] = problems({"videos": [source(root)]}, tmp_path / "cache")
    assert found == (f"{frame(root, 'bear', 2)}: frame is {H}x{W + 2} (HxW) but the first frame of sequence bear "
                     f"(00000.jpg) is {H}x{W} (HxW)")
    as_images = {**source(root), "as_images": True}  # still images may differ in size
    assert verify_data({"images": [as_images]}, tmp_path / "cache").errors == []


def test_masks_the_threshold_cannot_read_are_problems(tmp_path):
    root = build_davis(tmp_path / "davis")
    labels = box_mask().astype(np.uint8)  # instance ids 0/1/2 instead of 0/255
    labels[0, 0] = 2
    save(mask(root, "bear", 0), labels)
    soft = np.tile(np.linspace(0, 255, W).astype(np.uint8), (H, 1))  # a saliency map, not ground truth
    save(mask(root, "bear", 1), soft)
    found = problems({"test": [source(root)]}, tmp_path / "cache")
    assert found[0].startswith(f"{mask(root, 'bear', 0)}: mask values are 0..2, so nothing reaches the "
                               "foreground level 128 (label indices or a 0/1 mask?)")
    assert found[1].startswith(f"{mask(root, 'bear', 1)}: not a binary mask: ")
    assert "of its pixels are mid-grey (32..223; a saliency map?)" in found[1]
    assert len(found) == 2


def test_anti_aliased_and_16_bit_masks_pass(tmp_path):
    root = build_davis(tmp_path / "davis")
    aa = box_mask().astype(np.uint8) * 255
    aa[1, 3:8], aa[7, 3:8] = 90, 170  # soft edges, as DUTS masks have
    save(mask(root, "bear", 0), aa)
    save(mask(root, "bear", 1), box_mask().astype(np.uint16) * 65535)
    assert verify_data({"test": [source(root)]}, tmp_path / "cache").errors == []


def test_rgb_masks_grey_passes_colour_is_a_logged_warning(tmp_path, caplog):
    root = build_davis(tmp_path / "davis")
    grey = np.repeat((box_mask() * 255).astype(np.uint8)[:, :, None], 3, axis=2)
    save(mask(root, "bear", 0), grey)  # grey saved as RGB: read as its grey value, silently
    colour = np.zeros((H, W, 3), np.uint8)
    colour[box_mask()] = (200, 0, 0)  # a coloured object: foreground where any channel >= 128
    save(mask(root, "cows", 0), colour)
    with caplog.at_level(logging.WARNING, logger="scnn_lightning.data.verify"):
        found = verify_data({"test": [source(root)]}, tmp_path / "cache")
    assert found.errors == []
    assert found.warnings == [f"{root}: colour masks, foreground where any channel >= 128: 1 file(s) (00000.png)"]
    assert any(found.warnings[0] in record.getMessage() for record in caplog.records)


def test_empty_sequence_listed_in_the_split_file_is_a_problem(tmp_path):
    root = build_davis(tmp_path / "davis")
    for seq_folder in (root / DAVIS[0] / "cows", root / DAVIS[1] / "cows"):
        for path in seq_folder.iterdir():
            path.unlink()
    found = problems({"test": [source(root)]}, tmp_path / "cache")
    assert f"{root}: sequence cows has no frames, skipped" in found
    val = root / "ImageSets" / "480p" / "val.txt"
    assert f"{val}: lists JPEGImages/480p/cows/00000.jpg, which is not on disk" in found


def test_split_entries_without_files_are_problems(tmp_path):
    root = build_davis(tmp_path / "davis")
    val = root / "ImageSets" / "480p" / "val.txt"
    val.write_text(val.read_text() + "/JPEGImages/480p/goat/00000.jpg /Annotations/480p/goat/00000.png\n"
                   "/JPEGImages/480p/bear/00007.jpg /Annotations/480p/bear/00007.png\n")
    assert problems({"test": [source(root)]}, tmp_path / "cache") == [
        f"split val from {val}: sequences not on disk: goat",
        f"{val}: lists JPEGImages/480p/bear/00007.jpg, which is not on disk",
        f"{val}: lists Annotations/480p/bear/00007.png, which is not on disk",
    ]


def test_segtrackv2_image_set_stem_without_a_frame_is_a_problem(tmp_path):
    root = tmp_path / "segtrack"
    for n in range(2):
        save_frame(root / "JPEGImages" / "frog" / f"frog_{n:05d}.png")
        save_gray_mask(root / "GroundTruth" / "frog" / f"frog_{n:05d}.png", box_mask())
    (root / "ImageSets").mkdir()
    (root / "ImageSets" / "frog.txt").write_text("frog/\nfrog_00000\nfrog_00001\nfrog_00002\n")
    found = problems({"videos": [{"dataset": "segtrackv2", "root": str(root)}]}, tmp_path / "cache")
    assert found == [f"{root / 'ImageSets' / 'frog.txt'}: stems without a frame file: frog_00002"]


def test_os_metadata_files_are_not_frames(tmp_path):
    root = build_davis(tmp_path / "davis")
    for folder in (root / DAVIS[0] / "bear", root / DAVIS[1] / "bear"):
        (folder / "._00000.jpg").write_bytes(b"\x00\x05\x16\x07" + bytes(80))  # macOS AppleDouble twin
        (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
        (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    found = verify_data({"test": [source(root)]}, tmp_path / "cache")
    assert (found.errors, found.warnings, found.notes, found.files) == ([], [], [], 12)


# ---- all at once, logged, cached, skippable -----------------------------------------------------


def test_every_problem_of_every_source_is_reported_at_once(tmp_path, caplog):
    root = build_davis(tmp_path / "davis")
    frame(root, "bear", 0).write_bytes(frame(root, "bear", 0).read_bytes()[:-30])
    save_gray_mask(mask(root, "cows", 1), box_mask((H + 1, W)))
    save(mask(root, "cows", 2), box_mask().astype(np.uint8))  # a 0/1 mask
    (root / DAVIS[0] / "deer").mkdir()  # an empty sequence folder
    missing = tmp_path / "nowhere"
    data = {"images": [source(root, None)], "test": [{"dataset": "davis", "root": str(missing)}]}
    with caplog.at_level(logging.ERROR, logger="scnn_lightning.data.verify"):
        found = problems(data, tmp_path / "cache")
    assert len(found) == 5
    assert found[0] == f"{root}: sequence deer has no frames, skipped"
    assert found[1].startswith(f"{frame(root, 'bear', 0)}: unreadable or truncated image")
    assert found[2].startswith(f"{mask(root, 'cows', 2)}: mask values are 0..1")
    assert found[3].startswith(f"{mask(root, 'cows', 1)}: mask is {H + 1}x{W} (HxW)")
    assert found[4] == f"{missing}: dataset root does not exist"
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert all(any(p in message for message in logged) for p in found)  # so they land in run.log


def test_test_sequence_without_ground_truth_is_a_logged_warning(tmp_path, caplog):
    root = build_davis(tmp_path / "davis")
    for path in (root / DAVIS[1] / "cows").iterdir():
        path.unlink()
    with caplog.at_level(logging.WARNING, logger="scnn_lightning.data.verify"):
        found = verify_data({"test": [source(root, None)]}, tmp_path / "cache")
    assert found.errors == []
    unscored = f"{root / DAVIS[0] / 'cows'}: sequence cows has no ground truth (3 frames), so none of it is scored"
    assert unscored in found.warnings
    assert any(unscored in record.getMessage() for record in caplog.records)


def test_second_check_decodes_nothing_and_a_changed_file_is_decoded_again(tmp_path, monkeypatch):
    root = build_davis(tmp_path / "davis")
    data = {"videos": [source(root)], "test": [source(root, None)]}
    decoded = count_decodes(monkeypatch)
    verify_data(data, tmp_path / "cache")
    assert len(decoded) == 12  # the two sources share their files: each is decoded once
    cache_file = tmp_path / "cache" / "verify" / "files.json"
    assert len(json.loads(cache_file.read_text())["files"]) == 12
    decoded.clear()
    assert verify_data(data, tmp_path / "cache").decoded == 0 and decoded == []
    changed = mask(root, "bear", 2)
    save_gray_mask(changed, box_mask((H, W + 1)))
    os.utime(changed, ns=(1, 1))  # a new mtime even on coarse file systems
    assert len(problems(data, tmp_path / "cache")) == 2  # reported for both sources
    assert decoded == [changed]


def test_verify_false_skips_the_check(tmp_path, monkeypatch):
    root = build_davis(tmp_path / "davis")
    frame(root, "bear", 0).write_text("not a frame")
    decoded = count_decodes(monkeypatch)
    assert verify_data({"verify": False, "test": [source(root)]}, tmp_path / "cache") is None
    assert decoded == [] and not (tmp_path / "cache").exists()


# ---- the runner ---------------------------------------------------------------------------------


def spoil_generated_data(cfg) -> tuple[Path, Path]:
    """Cut a training frame and give a test mask another size; returns both paths."""
    generate_data(cfg)
    cut = sorted((Path(cfg.data.generate.train.out) / DAVIS[0]).rglob("*.jpg"))[1]
    cut.write_bytes(cut.read_bytes()[:-50])
    small = sorted((Path(cfg.data.generate.test.out) / DAVIS[1]).rglob("*.png"))[0]
    save_gray_mask(small, box_mask((7, 9)))
    return cut, small


def test_runner_stops_before_stage1_on_bad_data(tmp_path):
    cfg = compose_run(tmp_path / "run", tmp_path / "data")
    cut, small = spoil_generated_data(cfg)
    with pytest.raises(DataCheckError) as info:
        run(cfg)
    assert not (tmp_path / "run" / "stage1").exists()
    assert [p.split(":")[0] for p in info.value.problems] == [str(cut), str(small)]


def test_cli_exits_with_the_problem_list_not_a_traceback(tmp_path):
    cfg = compose_run(tmp_path / "run", tmp_path / "data")
    cut, small = spoil_generated_data(cfg)
    result = subprocess.run(
        [sys.executable, "-m", "experiments.run", *TINY_OVERRIDES, f"paths.data_dir={tmp_path / 'data'}",
         f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode != 0
    assert f"{small}: mask is 7x9 (HxW) but frame" in result.stderr
    assert f"{cut}: unreadable or truncated image" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "stage1").exists()
    assert f"{small}: mask is 7x9 (HxW)" in (tmp_path / "run" / "run.log").read_text()
