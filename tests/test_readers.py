"""Readers for the real on-disk layouts; every quirk of /work/shared/datasets.md has a tiny fixture here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scnn_lightning.data import io
from scnn_lightning.data.readers import DATASETS, SPLITS, load_index
from scnn_lightning.data.readers.common import natural_key
from scnn_lightning.data.readers.fbms import frame_number, parse_def_dat
from scnn_lightning.errors import DataError
from tests.fixtures_layouts import (
    REAL_DAVSOD,
    REAL_DUTS,
    H,
    W,
    box_mask,
    def_dat,
    needs,
    rgb,
    save,
    save_frame,
    save_gray_mask,
    save_video,
)


def names(index) -> dict[str, list[str]]:
    return {seq.name: [f.name for f in seq.frames] for seq in index.sequences}


# ---- registry and root errors -------------------------------------------------------------------


def test_registry_has_exactly_the_documented_names():
    assert list(DATASETS) == ["msra10k", "segtrackv2", "fbms", "davis", "davsod", "duts", "frames"]
    assert set(SPLITS) == set(DATASETS)


def test_unknown_dataset_lists_valid_names(tmp_path):
    with pytest.raises(DataError) as info:
        load_index("davis2017", tmp_path)
    assert "unknown dataset 'davis2017'" in str(info.value)
    assert "msra10k, segtrackv2, fbms, davis, davsod, duts, frames" in str(info.value)


@pytest.mark.parametrize("name", list(DATASETS))
def test_missing_and_empty_roots_are_reported(tmp_path, name):
    with pytest.raises(DataError, match=r"nowhere: dataset root does not exist"):
        load_index(name, tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".DS_Store").write_bytes(b"\0")  # OS metadata does not make a folder non-empty
    with pytest.raises(DataError, match=r"empty: dataset root is an empty folder"):
        load_index(name, tmp_path / "empty")


def test_bad_split_lists_valid_splits(tmp_path):
    save_frame(tmp_path / "JPEGImages" / "480p" / "bear" / "00000.jpg")
    with pytest.raises(DataError, match=r"unknown split 'test' for dataset davis; valid splits: train, val"):
        load_index("davis", tmp_path, split="test")
    with pytest.raises(DataError, match=r"valid splits: train, test"):
        load_index("fbms", tmp_path, split="val")


def test_natural_key_sorts_numbers_numerically():
    ordered = sorted(["f10", "f2", "F1", "1560", "75", "280"], key=natural_key)
    assert ordered == ["75", "280", "1560", "F1", "f2", "f10"]


# ---- MSRA10K ------------------------------------------------------------------------------------


def build_msra10k(imgs: Path, ids=(1560, 75, 280)) -> None:
    for i in ids:
        save_frame(imgs / f"{i}.jpg", seed=i)
        save_gray_mask(imgs / f"{i}.png", box_mask())


def test_msra10k_pairs_side_by_side_files_in_numeric_order(tmp_path):
    build_msra10k(tmp_path / "MSRA10K_Imgs_GT" / "Imgs")
    (tmp_path / "MSRA10K_Imgs_GT" / "Readme.txt").write_text("readme")
    index = load_index("msra10k", tmp_path / "MSRA10K_Imgs_GT")
    [seq] = index.sequences
    assert seq.name == "msra10k" and seq.temporal is False
    assert [f.name for f in seq.frames] == ["75", "280", "1560"]
    assert all(f.masks == (f.image.with_suffix(".png"),) for f in seq.frames)
    assert index.problems == []


def test_msra10k_double_nested_archive(tmp_path):
    build_msra10k(tmp_path / "MSRA10K_Imgs_GT" / "MSRA10K_Imgs_GT" / "Imgs", ids=(3287, 100015))
    index = load_index("msra10k", tmp_path)
    assert names(index) == {"msra10k": ["3287", "100015"]}


def test_msra10k_stray_files_and_unpaired_images_are_problems(tmp_path):
    imgs = tmp_path / "Imgs"
    build_msra10k(imgs, ids=(75,))
    save_frame(imgs / "99.jpg")  # image without its mask
    save_gray_mask(imgs / "42.png", box_mask())  # mask without its image
    (imgs / "notes.txt").write_text("x")
    index = load_index("msra10k", tmp_path)
    assert [(f.name, f.labelled) for f in index.frames] == [("75", True), ("99", False)]
    assert any("skipped non-image files: 1 file(s) (notes.txt)" in p for p in index.problems)
    assert any("frames without ground truth: 1 file(s) (99.jpg)" in p for p in index.problems)
    assert any("ground truth matching no frame: 1 file(s) (42.png)" in p for p in index.problems)


def test_msra10k_without_imgs_folder(tmp_path):
    save_frame(tmp_path / "a" / "b" / "c" / "Imgs" / "1.jpg")  # three levels down: too deep
    with pytest.raises(DataError, match=r"no Imgs/ folder here or up to two levels down"):
        load_index("msra10k", tmp_path)


# ---- SegTrackV2 ---------------------------------------------------------------------------------


def build_segtrackv2(root: Path) -> None:
    # bmx: two objects, frames start at 06668, png and bmp mixed; GT object 2 always .png.
    for k, number in enumerate((6668, 6669, 6670)):
        suffix = ".bmp" if k == 1 else ".png"
        stem, gt = f"bmx_{number:05d}", root / "GroundTruth" / "bmx"
        save_frame(root / "JPEGImages" / "bmx" / f"{stem}{suffix}", seed=k)
        save_gray_mask(gt / "1" / f"{stem}{suffix}", box_mask(left=0, size=3))
        save_gray_mask(gt / "2" / f"{stem}.png", box_mask(top=7, left=9, size=3))
    # frog: single object, frames .bmp, GT .png directly in the sequence folder.
    for number in range(3):
        save_frame(root / "JPEGImages" / "frog" / f"frog_{number:05d}.bmp", seed=number)
        save_gray_mask(root / "GroundTruth" / "frog" / f"frog_{number:05d}.png", box_mask())


def test_segtrackv2_folder_listing_mixed_extensions_and_multi_object(tmp_path):
    build_segtrackv2(tmp_path / "SegTrackv2")
    index = load_index("segtrackv2", tmp_path / "SegTrackv2")
    assert names(index) == {
        "bmx": ["bmx_06668", "bmx_06669", "bmx_06670"],
        "frog": ["frog_00000", "frog_00001", "frog_00002"],
    }
    bmx = index.sequences[0].frames[1]
    assert bmx.image.suffix == ".bmp"
    assert [m.relative_to(tmp_path / "SegTrackv2" / "GroundTruth").as_posix() for m in bmx.masks] == [
        "bmx/1/bmx_06669.bmp",
        "bmx/2/bmx_06669.png",
    ]
    union = box_mask(left=0, size=3) | box_mask(top=7, left=9, size=3)
    np.testing.assert_array_equal(io.read_mask(bmx, shape=io.frame_size(bmx)), union)
    assert all(len(f.masks) == 1 for f in index.sequences[1].frames)
    assert index.problems == []


def test_segtrackv2_follows_image_sets(tmp_path):
    build_segtrackv2(tmp_path)
    save_frame(tmp_path / "JPEGImages" / "penguin" / "penguin_00000.png")
    sets = tmp_path / "ImageSets"
    sets.mkdir()
    (sets / "all.txt").write_text("*frog\n*bmx\n")
    # First line is the path prefix; frog_00002 is left out of the list on purpose.
    (sets / "frog.txt").write_text("frog/\nfrog_00000\nfrog_00001\n")
    index = load_index("segtrackv2", tmp_path)
    assert names(index) == {
        "frog": ["frog_00000", "frog_00001"],
        "bmx": ["bmx_06668", "bmx_06669", "bmx_06670"],
    }
    assert any("not listed, skipped: penguin" in p for p in index.problems)


def test_segtrackv2_orphan_and_missing_ground_truth_are_problems(tmp_path):
    build_segtrackv2(tmp_path)
    save_gray_mask(tmp_path / "GroundTruth" / "frog" / "frog_00099.png", box_mask())
    (tmp_path / "GroundTruth" / "bmx" / "2" / "bmx_06670.png").unlink()
    index = load_index("segtrackv2", tmp_path)
    assert any("ground truth matching no frame: 1 file(s) (frog_00099.png)" in p for p in index.problems)
    partial = "frames missing from some object folders: 1 file(s) (bmx_06670.png)"
    assert any(partial in p for p in index.problems)


# ---- FBMS-59 ------------------------------------------------------------------------------------


def ppm_object(top: int, left: int) -> np.ndarray:
    """Colour GT on a white background with one red object."""
    pixels = np.full((H, W, 3), 255, np.uint8)
    pixels[top : top + 3, left : left + 3] = (255, 0, 0)
    return pixels


def build_fbms(root: Path) -> None:
    # bear01 (train): 1-based frames, Def.dat with 0-based frame numbers and annotator paths.
    bear = root / "Trainingset" / "bear01"
    for n in range(1, 6):
        save_frame(bear / f"bear01_{n:04d}.jpg", seed=n)
    (bear / "bear01.bmf").write_text("5 1\n" + "".join(f"bear01_{n:04d}.ppm\n" for n in range(1, 6)))
    save(bear / "GroundTruth" / "bear01_0001_gt.ppm", ppm_object(0, 0))
    save(bear / "GroundTruth" / "bear01_0004_gt.ppm", ppm_object(5, 5))
    save(bear / "GroundTruth" / "bear01_0004_PROB_gt.ppm", ppm_object(8, 8))
    entries = [(0, "bear01_0001_gt.ppm", "bear01_0001.ppm"), (3, "/misc/lmb/FBMS/bear01_0004_gt.ppm", None)]
    (bear / "GroundTruth" / "bear01Def.dat").write_text(def_dat(entries, total_frames=5))
    # tennis (test): no underscore, grey .pgm on black, no Def.dat, one GT for a frame that is absent.
    tennis = root / "Testset" / "tennis"
    for n in range(4):
        save_frame(tennis / f"tennis{n:03d}.jpg", seed=n)
    pgm = np.zeros((H, W), np.uint8)
    pgm[2:4, 2:4] = 80
    save(tennis / "GroundTruth" / "tennis002.pgm", pgm)
    save(tennis / "GroundTruth" / "tennis099.pgm", pgm)


def test_fbms_frame_number_skips_the_sequence_name():
    assert frame_number("bear01_0001", "bear01") == 1
    assert frame_number("bear01_0004_gt", "bear01") == 4
    assert frame_number("tennis012", "tennis") == 12
    assert frame_number("people1_03", "people1") == 3


def test_fbms_def_dat_parsing(tmp_path):
    path = tmp_path / "carsDef.dat"
    entries = [(0, "C:\\gt\\cars1_01_gt.ppm", "cars1_01.ppm"), (19, "cars1_20_gt.ppm", None)]
    path.write_text(def_dat(entries, total_frames=20))
    assert parse_def_dat(path) == [("cars1_01_gt.ppm", "cars1_01.ppm"), ("cars1_20_gt.ppm", None)]


def test_fbms_sparse_ground_truth_mapped_by_name(tmp_path):
    build_fbms(tmp_path / "FBMS")
    index = load_index("fbms", tmp_path / "FBMS", split="train")
    [bear] = index.sequences
    labelled = {f.name: f for f in bear.frames if f.labelled}
    # Def.dat says frame 0 and 3 (0-based) but the files are _0001 and _0004: names decide.
    assert sorted(labelled) == ["bear01_0001", "bear01_0004"]
    assert [m.name for m in labelled["bear01_0004"].masks] == ["bear01_0004_gt.ppm"]  # PROB file ignored
    assert [f.masks for f in bear.frames if not f.labelled] == [(), (), ()]
    frame = labelled["bear01_0004"]
    assert frame.mask_format == "nonwhite"
    expected = np.zeros((H, W), bool)
    expected[5:8, 5:8] = True
    np.testing.assert_array_equal(io.read_mask(frame, shape=io.frame_size(frame)), expected)
    assert index.problems == []  # the .bmf manifest is expected, not a skipped file


def test_fbms_pgm_fallback_tennis_and_orphans(tmp_path):
    build_fbms(tmp_path)
    index = load_index("fbms", tmp_path, split="test")
    assert names(index) == {"tennis": ["tennis000", "tennis001", "tennis002", "tennis003"]}
    [frame] = [f for f in index.frames if f.labelled]
    assert frame.name == "tennis002" and frame.mask_format == "nonzero"
    assert io.read_mask(frame).sum() == 4
    assert any("ground truth matching no frame: 1 file(s) (tennis099.pgm)" in p for p in index.problems)


def test_fbms_ppm_glob_when_def_dat_is_missing(tmp_path):
    build_fbms(tmp_path)
    (tmp_path / "Trainingset" / "bear01" / "GroundTruth" / "bear01Def.dat").unlink()
    index = load_index("fbms", tmp_path, split="train")
    assert [(f.name, [m.name for m in f.masks]) for f in index.frames if f.labelled] == [
        ("bear01_0001", ["bear01_0001_gt.ppm"]),
        ("bear01_0004", ["bear01_0004_gt.ppm"]),
    ]


def test_fbms_both_splits_and_missing_split_folder(tmp_path):
    build_fbms(tmp_path)
    assert [s.name for s in load_index("fbms", tmp_path).sequences] == ["bear01", "tennis"]
    only_train = tmp_path / "only_train"
    build_fbms(only_train)
    for path in sorted((only_train / "Testset").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (only_train / "Testset").rmdir()
    with pytest.raises(DataError, match=r"only_train: no Testset/ folder for split test"):
        load_index("fbms", only_train, split="test")


# ---- DAVIS-2016 ---------------------------------------------------------------------------------


def build_davis(root: Path, sequences=("bear", "blackswan"), frames=3) -> None:
    for seq in sequences:
        for i in range(frames):
            save_frame(root / "JPEGImages" / "480p" / seq / f"{i:05d}.jpg", seed=i)
            save_gray_mask(root / "Annotations" / "480p" / seq / f"{i:05d}.png", box_mask())
    # The synthetic clip writer may add a Meta/ folder; it must not become a sequence.
    save_frame(root / "Meta" / "preview.png")
    (root / "Meta" / "clips.json").write_text("{}")


def test_davis_all_sequences_without_split(tmp_path):
    build_davis(tmp_path)
    index = load_index("davis", tmp_path)
    assert names(index) == {"bear": ["00000", "00001", "00002"], "blackswan": ["00000", "00001", "00002"]}
    annotations = tmp_path / "Annotations" / "480p"
    assert all(f.masks == (annotations / f.sequence / f"{f.name}.png",) for f in index.frames)
    assert index.problems == []


def test_davis_split_from_image_sets_with_leading_slash_and_trailing_spaces(tmp_path):
    build_davis(tmp_path, sequences=("bear", "blackswan", "cows"))
    sets = tmp_path / "ImageSets" / "480p"
    sets.mkdir(parents=True)
    lines = [
        f"/JPEGImages/480p/{s}/{i:05d}.jpg /Annotations/480p/{s}/{i:05d}.png \n"
        for s in ("cows", "bear")
        for i in range(3)
    ]
    (sets / "val.txt").write_text("".join(lines))  # not the official split: the file must win
    assert [s.name for s in load_index("davis", tmp_path, split="val").sequences] == ["cows", "bear"]


def test_davis_split_from_db_info(tmp_path):
    build_davis(tmp_path, sequences=("bear", "blackswan", "cows"))
    (tmp_path / "Annotations" / "db_info.yml").write_text(
        "attributes: []\nsets: [training, test]\nsequences:\n"
        "  - {name: bear, set: test}\n  - {name: blackswan, set: training}\n  - {name: cows, set: test}\n"
    )
    assert [s.name for s in load_index("davis", tmp_path, split="val").sequences] == ["bear", "cows"]
    assert [s.name for s in load_index("davis", tmp_path, split="train").sequences] == ["blackswan"]


def test_davis_builtin_split_lists(tmp_path):
    build_davis(tmp_path, sequences=("bear", "blackswan", "mallard-water"))
    train = load_index("davis", tmp_path, split="train")
    assert [s.name for s in train.sequences] == ["bear", "mallard-water"]
    assert any("sequences not on disk" in p and "bmx-bumps" in p for p in train.problems)
    assert [s.name for s in load_index("davis", tmp_path, split="val").sequences] == ["blackswan"]


def test_davis_missing_annotations_and_resolution(tmp_path):
    build_davis(tmp_path, sequences=("bear",))
    (tmp_path / "Annotations" / "480p" / "bear" / "00001.png").unlink()
    index = load_index("davis", tmp_path)
    assert [f.labelled for f in index.frames] == [True, False, True]
    assert any("frames without ground truth: 1 file(s) (00001.jpg)" in p for p in index.problems)
    with pytest.raises(DataError, match=r"JPEGImages: no 1080p/ resolution folder \(found: 480p\)"):
        DATASETS["davis"](tmp_path, resolution="1080p")


# ---- DAVSOD unified layout ----------------------------------------------------------------------


@needs(REAL_DAVSOD)
def test_davsod_real_davis_sample():
    index = load_index("davsod", REAL_DAVSOD)
    summary = index.summary()
    assert (summary["sequences"], summary["frames"], summary["labelled_frames"]) == (2, 130, 130)
    assert summary["per_sequence"]["blackswan"] == {"frames": 50, "labelled_frames": 50}
    assert names(load_index("davsod", REAL_DAVSOD / "bmx-trees"))["bmx-trees"][-1] == "bmx-trees_00079"
    first = index.sequences[0].frames[0]
    assert first.name == "blackswan_00000"
    mask = io.read_mask(first, shape=io.frame_size(first))
    assert mask.shape == (480, 854) and int(mask.sum()) == 41343  # datasets.md §4: 41,343 pixels at 255


def test_davsod_gt_object_level_png_frames_and_partial_gt(tmp_path):
    seq = tmp_path / "select_0001"
    for n in (12, 13, 15):  # DHF1K frame numbers: 1-based, not contiguous
        save_frame(seq / "Imgs" / f"{n:04d}.png", seed=n)
    for n in (12, 15):
        save_gray_mask(seq / "GT_object_level" / f"{n:04d}.png", box_mask())
    save_frame(seq / "Fixation_maps" / "0012.png")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    index = load_index("davsod", tmp_path)
    assert [(f.name, f.labelled) for f in index.frames] == [("0012", True), ("0013", False), ("0015", True)]
    assert any("folders without Imgs/, skipped: notes" in p for p in index.problems)


# ---- DUTS ---------------------------------------------------------------------------------------


@needs(REAL_DUTS)
def test_duts_real_sample_and_anti_aliased_masks():
    index = load_index("duts", REAL_DUTS)
    [seq] = index.sequences
    assert seq.temporal is False and len(seq.frames) == 499 and all(f.labelled for f in seq.frames)
    assert index.problems == []
    frame = seq.frames[0]
    raw = np.asarray(Image.open(frame.masks[0]).convert("L"))
    assert 0 < np.count_nonzero((raw > 0) & (raw < 255))  # the real masks are anti-aliased
    np.testing.assert_array_equal(io.read_mask(frame, shape=io.frame_size(frame)), raw >= 128)


def test_duts_original_folder_names_and_recursive_matching(tmp_path):
    for part in ("a", "b"):
        save_frame(tmp_path / "DUTS-TR-Image" / part / f"sun_{part}.jpg")
        save_gray_mask(tmp_path / "DUTS-TR-Mask" / part / f"sun_{part}.png", box_mask())
    save_frame(tmp_path / "DUTS-TR-Image" / "b" / "lonely.jpg")
    index = load_index("duts", tmp_path)
    labelled = [(f.name, f.labelled) for f in index.frames]
    assert labelled == [("sun_a", True), ("lonely", False), ("sun_b", True)]
    assert index.frames[2].masks[0].parent.name == "b"


# ---- plain frames and videos --------------------------------------------------------------------


def test_frames_folder_natural_order_skips_non_images(tmp_path):
    clip = tmp_path / "my_clip"
    for n in (10, 2, 1):
        save_frame(clip / f"f{n}.png", seed=n)
    (clip / "flow.flo").write_bytes(b"PIEH")
    index = load_index("frames", clip)
    assert names(index) == {"my_clip": ["f1", "f2", "f10"]}
    assert not any(f.labelled for f in index.frames)
    assert index.problems == [f"{clip}: skipped non-image files: 1 file(s) (flow.flo)"]


def test_frames_folder_of_folders_and_videos(tmp_path):
    for seq in ("b", "a"):
        for n in range(2):
            save_frame(tmp_path / seq / f"{n}.jpg")
    save_video(tmp_path / "walk.avi", [rgb(i, (16, 16)) for i in range(3)])
    index = load_index("frames", tmp_path)
    assert names(index) == {"a": ["0", "1"], "b": ["0", "1"], "walk": ["00000", "00001", "00002"]}
    walk = index.sequences[2].frames[2]
    assert walk.image == tmp_path / "walk.avi" and walk.video_index == 2
    assert io.read_frame(walk).shape == (16, 16, 3)


def test_frames_video_file_root(tmp_path):
    video = save_video(tmp_path / "clip.avi", [rgb(i, (8, 8)) for i in range(4)])
    index = load_index("frames", video)
    assert names(index) == {"clip": ["00000", "00001", "00002", "00003"]}
    assert [f.video_index for f in index.frames] == [0, 1, 2, 3]


def test_frames_root_that_is_neither_folder_nor_video(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("x")
    with pytest.raises(DataError, match=r"notes\.txt: not a folder or a video file"):
        load_index("frames", path)


def test_frames_folder_without_any_frame(tmp_path):
    (tmp_path / "readme.md").write_text("x")
    with pytest.raises(DataError, match=r"no frames found for dataset frames"):
        load_index("frames", tmp_path)


# ---- hidden and OS metadata files ---------------------------------------------------------------


def build_davsod(root: Path) -> None:
    for n in range(2):
        save_frame(root / "dog" / "Imgs" / f"dog_{n:05d}.jpg", seed=n)
        save_gray_mask(root / "dog" / "ground-truth" / f"dog_{n:05d}.png", box_mask())


def build_duts(root: Path) -> None:
    for name in ("sun_1", "sun_2"):
        save_frame(root / "img" / "part_000" / f"{name}.jpg")
        save_gray_mask(root / "gt" / "part_000" / f"{name}.png", box_mask())


def build_frames(root: Path) -> None:
    for n in range(2):
        save_frame(root / "clip" / f"{n}.jpg", seed=n)
    save_video(root / "walk.avi", [rgb(i, (16, 16)) for i in range(3)])


LAYOUT_BUILDERS = {
    "msra10k": lambda root: build_msra10k(root / "Imgs"),
    "segtrackv2": build_segtrackv2,
    "fbms": build_fbms,
    "davis": build_davis,
    "davsod": build_davsod,
    "duts": build_duts,
    "frames": build_frames,
}


def add_os_litter(root: Path) -> None:
    """What copying a dataset through macOS or Windows leaves: an AppleDouble `._` twin of every file,
    `.DS_Store`, `Thumbs.db`, a `__MACOSX/` mirror, and hidden folders holding real images."""
    folders = [root, *(p for p in root.rglob("*") if p.is_dir())]
    for folder in folders:
        for path in [p for p in folder.iterdir() if p.is_file()]:
            (folder / f"._{path.name}").write_bytes(b"\x00\x05\x16\x07" + bytes(80))
            twin = root / "__MACOSX" / path.relative_to(root).parent / f"._{path.name}"
            twin.parent.mkdir(parents=True, exist_ok=True)
            twin.write_bytes(b"\x00\x05\x16\x07")
        (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
        (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
        save_frame(folder / ".ipynb_checkpoints" / "00000.jpg")


@pytest.mark.parametrize("name", list(LAYOUT_BUILDERS))
def test_every_reader_ignores_hidden_and_os_metadata_files(tmp_path, name):
    LAYOUT_BUILDERS[name](tmp_path)
    clean = load_index(name, tmp_path).summary()
    add_os_litter(tmp_path)
    assert load_index(name, tmp_path).summary() == clean
