"""Frame and mask decoding: conversions, binarisation per mask format, and errors that name the file."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFile

from scnn_lightning.data import io
from scnn_lightning.data.records import FrameRef, SequenceRef
from scnn_lightning.errors import DataError
from tests.fixtures_layouts import H, W, box_mask, rgb, save, save_frame, save_gray_mask, save_video


def frame_with_masks(tmp_path, *masks, mask_format="gray"):
    image = save_frame(tmp_path / "frame.png")
    return FrameRef(sequence="s", name="frame", image=image, masks=tuple(masks), mask_format=mask_format)


# ---- frames -----------------------------------------------------------------------------------


def test_rgb_png_round_trips_exactly(tmp_path):
    pixels = rgb(1)
    out = io.read_image(save(tmp_path / "a.png", pixels))
    assert out.dtype == np.uint8 and out.shape == (H, W, 3)
    np.testing.assert_array_equal(out, pixels)


def test_grayscale_frame_is_replicated_to_three_channels(tmp_path):
    gray = rgb(2)[:, :, 0]
    out = io.read_image(save(tmp_path / "g.jpg", gray, mode="L"))
    assert out.shape == (H, W, 3)
    np.testing.assert_array_equal(out[:, :, 0], out[:, :, 2])
    assert np.abs(out[:, :, 0].astype(int) - gray).mean() < 20  # JPEG is lossy, but close


def test_rgba_frame_drops_alpha(tmp_path):
    pixels = np.dstack([rgb(3), np.full((H, W), 7, np.uint8)])
    out = io.read_image(save(tmp_path / "a.png", pixels))
    np.testing.assert_array_equal(out, pixels[:, :, :3])


def test_16bit_frame_is_scaled_to_8bit(tmp_path):
    values = np.array([[0, 32896, 65535, 257]], dtype=np.uint16)
    out = io.read_image(save(tmp_path / "deep.png", values))
    np.testing.assert_array_equal(out[0, :, 0], [0, 128, 255, 1])


def test_palette_frame_is_looked_up_in_its_palette(tmp_path):
    image = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), mode="P")
    image.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    image.save(tmp_path / "p.png")
    out = io.read_image(tmp_path / "p.png")
    assert out[0, 1].tolist() == [10, 200, 30] and out[0, 0].tolist() == [0, 0, 0]


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_image_names_the_file(tmp_path, suffix):
    path = save_frame(tmp_path / f"cut{suffix}", shape=(64, 64))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError) as info:
        io.read_image(path)
    assert str(info.value).startswith(str(path))
    assert "truncated" in str(info.value)


def test_png_without_its_iend_chunk_is_truncated(tmp_path):
    path = save_frame(tmp_path / "cut.png", shape=(32, 32))
    path.write_bytes(path.read_bytes()[:-12])  # every pixel is still there: PIL alone decodes it
    with pytest.raises(DataError, match=r"cut\.png: truncated image \(PNG: no IEND chunk at the end\)"):
        io.read_image(path)


def test_truncated_jpeg_is_caught_even_where_pil_pads_truncated_files(tmp_path, monkeypatch):
    path = save_frame(tmp_path / "cut.jpg", shape=(64, 64))
    path.write_bytes(path.read_bytes()[:-100])
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # what some libraries set globally
    with pytest.raises(DataError, match=r"cut\.jpg: truncated image \(JPEG: no end-of-image marker"):
        io.read_image(path)


def test_text_file_named_like_an_image_is_reported(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("not an image")
    with pytest.raises(DataError, match=r"notes\.jpg: unreadable or truncated image"):
        io.read_image(path)


def test_missing_image_is_reported(tmp_path):
    with pytest.raises(DataError, match=r"nothere\.png: image file not found"):
        io.read_image(tmp_path / "nothere.png")


# ---- masks ------------------------------------------------------------------------------------


def test_gray_mask_binarised_at_128_for_anti_aliased_edges(tmp_path):
    values = np.array([[0, 1, 127, 128, 200, 255]], np.uint8)
    mask_path = save(tmp_path / "aa.png", values)
    ref = FrameRef(sequence="s", name="aa", image=mask_path, masks=(mask_path,))
    out = io.read_mask(ref)
    assert out.dtype == np.uint8
    assert out.tolist() == [[0, 0, 0, 1, 1, 1]]


def test_gray_mask_stored_as_rgb_uses_its_grey_value(tmp_path):
    # SegTrackV2 stores grey masks as 3-channel files.
    mask = box_mask()
    path = save(tmp_path / "m.bmp", np.dstack([mask.astype(np.uint8) * 255] * 3))
    np.testing.assert_array_equal(io.read_mask(frame_with_masks(tmp_path, path)), mask)


def test_16bit_mask_is_converted(tmp_path):
    values = np.array([[0, 20000, 32767, 40000, 65535]], np.uint16)
    path = save(tmp_path / "m16.png", values)
    ref = FrameRef(sequence="s", name="m16", image=path, masks=(path,))
    assert io.read_mask(ref).tolist() == [[0, 0, 0, 1, 1]]


def test_palette_mask_uses_its_colours(tmp_path):
    # DAVIS-2017 style: index 0 black background, index 1 = (128, 0, 0), index 2 = (0, 128, 0).
    indices = np.array([[0, 1, 2, 0]], np.uint8)
    image = Image.fromarray(indices, mode="P")
    image.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 759)
    image.save(tmp_path / "pal.png")
    ref = FrameRef(sequence="s", name="pal", image=tmp_path / "pal.png", masks=(tmp_path / "pal.png",))
    assert io.read_mask(ref).tolist() == [[0, 1, 1, 0]]


def test_nonwhite_mask_fbms_ppm_white_background(tmp_path):
    pixels = np.full((H, W, 3), 255, np.uint8)
    pixels[1, 1] = (255, 0, 0)
    pixels[2, 2] = (0, 0, 0)
    pixels[3, 3] = (255, 255, 254)  # almost white is still an object colour
    path = save(tmp_path / "bear01_0001_gt.ppm", pixels)
    out = io.read_mask(frame_with_masks(tmp_path, path, mask_format="nonwhite"))
    assert sorted(zip(*np.nonzero(out))) == [(1, 1), (2, 2), (3, 3)]


def test_nonzero_mask_fbms_pgm_black_background(tmp_path):
    values = np.zeros((H, W), np.uint8)
    values[0, 0], values[4, 5] = 1, 200
    path = save(tmp_path / "cars1_01.pgm", values)
    out = io.read_mask(frame_with_masks(tmp_path, path, mask_format="nonzero"))
    assert sorted(zip(*np.nonzero(out))) == [(0, 0), (4, 5)]


def test_multi_object_masks_are_ored(tmp_path):
    first, second = box_mask(left=0, size=3), box_mask(top=6, left=10, size=4)
    paths = [save_gray_mask(tmp_path / str(k) / "m.png", mask) for k, mask in ((1, first), (2, second))]
    ref = frame_with_masks(tmp_path, *paths)
    np.testing.assert_array_equal(io.read_mask(ref, shape=(H, W)), first | second)


def test_unlabelled_frame_gives_none(tmp_path):
    assert io.read_mask(frame_with_masks(tmp_path)) is None


def test_mask_size_differing_from_frame_names_mask_and_both_sizes(tmp_path):
    mask_path = save_gray_mask(tmp_path / "small.png", box_mask(shape=(10, W)))
    ref = frame_with_masks(tmp_path, mask_path)
    with pytest.raises(DataError) as info:
        io.read_mask(ref, shape=io.frame_size(ref))
    message = str(info.value)
    assert message.startswith(str(mask_path))
    assert f"10x{W} (HxW)" in message and f"{H}x{W} (HxW)" in message and "frame.png" in message


def test_object_masks_of_different_sizes_are_reported(tmp_path):
    first = save_gray_mask(tmp_path / "1" / "m.png", box_mask())
    second = save_gray_mask(tmp_path / "2" / "m.png", box_mask(shape=(H, W + 2)))
    with pytest.raises(DataError, match=rf"2/m\.png: mask is {H}x{W + 2} \(HxW\) but .*1/m\.png"):
        io.read_mask(frame_with_masks(tmp_path, first, second))


def test_unknown_mask_format_is_reported(tmp_path):
    path = save_gray_mask(tmp_path / "m.png", box_mask())
    with pytest.raises(DataError, match="unknown mask format 'binary'"):
        io.read_mask(frame_with_masks(tmp_path, path, mask_format="binary"))


# ---- sizes ------------------------------------------------------------------------------------


def test_frame_size_is_height_width(tmp_path):
    ref = FrameRef(sequence="s", name="a", image=save_frame(tmp_path / "a.jpg", shape=(7, 9)))
    assert io.frame_size(ref) == (7, 9)


def test_mixed_frame_sizes_name_the_first_differing_frame(tmp_path):
    paths = [save_frame(tmp_path / f"{i:05d}.jpg", shape=(H, W)) for i in range(3)]
    paths.append(save_frame(tmp_path / "00003.jpg", shape=(H, W + 4)))
    seq = SequenceRef(name="clip", frames=[FrameRef(sequence="clip", name=p.stem, image=p) for p in paths])
    with pytest.raises(DataError) as info:
        io.check_sequence_sizes(seq)
    message = str(info.value)
    assert message.startswith(str(paths[3]))
    assert f"{H}x{W + 4} (HxW)" in message and f"first frame 00000 is {H}x{W} (HxW)" in message


def test_still_image_collections_may_mix_sizes(tmp_path):
    paths = [save_frame(tmp_path / "a.jpg", shape=(H, W)), save_frame(tmp_path / "b.jpg", shape=(W, H))]
    refs = [FrameRef(sequence="imgs", name=p.stem, image=p) for p in paths]
    io.check_sequence_sizes(SequenceRef(name="imgs", frames=refs, temporal=False))  # no error
    with pytest.raises(DataError):
        io.check_sequence_sizes(SequenceRef(name="imgs", frames=refs, temporal=True))


# ---- video ------------------------------------------------------------------------------------


def solid(red: int, green: int, blue: int, shape=(24, 32)) -> np.ndarray:
    return np.broadcast_to(np.array([red, green, blue], np.uint8), (*shape, 3)).copy()


def test_video_frames_decode_in_order_as_rgb(tmp_path):
    colours = [(250, 0, 0), (0, 250, 0), (0, 0, 250), (120, 120, 120)]
    video = save_video(tmp_path / "clip.avi", [solid(*c) for c in colours])
    decoded = list(io.iter_video(video))
    assert len(decoded) == 4 and decoded[0].shape == (24, 32, 3)
    for frame, colour in zip(decoded, colours):
        np.testing.assert_allclose(frame.reshape(-1, 3).mean(0), colour, atol=12)
    assert io.count_video_frames(video) == 4
    ref = FrameRef(sequence="clip", name="00002", image=video, video_index=2)
    np.testing.assert_allclose(io.read_frame(ref).reshape(-1, 3).mean(0), colours[2], atol=12)
    assert io.frame_size(ref) == (24, 32)


def test_video_index_past_the_end_is_reported(tmp_path):
    video = save_video(tmp_path / "short.avi", [solid(0, 0, 0)] * 2)
    with pytest.raises(DataError, match=r"short\.avi: cannot decode frame 5"):
        io.read_frame(FrameRef(sequence="short", name="00005", image=video, video_index=5))


def test_unreadable_video_is_reported(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(DataError, match=r"broken\.mp4: (cannot open video|video has no decodable frames)"):
        list(io.iter_video(path))


def test_video_random_access_matches_sequential_decoding(tmp_path):
    colours = [(i * 30 % 256, 255 - i * 20, (i * 70) % 256) for i in range(9)]
    video = save_video(tmp_path / "long.avi", [solid(*c) for c in colours])
    decoded = list(io.iter_video(video))
    # Pairs (t, t+1) as flow does, then jumps backwards and forwards.
    for index in [0, 1, 1, 2, 2, 3, 7, 4, 8, 0, 5]:
        frame = io.read_frame(FrameRef(sequence="long", name=f"{index:05d}", image=video, video_index=index))
        np.testing.assert_array_equal(frame, decoded[index])
    frame[:] = 0  # callers own the returned array; the next read must not see this
    again = io.read_frame(FrameRef(sequence="long", name="00005", image=video, video_index=5))
    np.testing.assert_array_equal(again, decoded[5])


def test_video_rewritten_in_place_is_decoded_afresh(tmp_path):
    video = tmp_path / "clip.avi"
    ref = FrameRef(sequence="clip", name="00000", image=video, video_index=0)
    save_video(video, [solid(250, 0, 0)] * 2)
    assert io.read_frame(ref)[..., 0].mean() > 200
    save_video(video, [solid(0, 0, 250)] * 3)
    assert io.read_frame(ref)[..., 2].mean() > 200
