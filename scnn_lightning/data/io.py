"""Decoding frames and ground-truth masks, with errors that name the file (§IV-A data).

Frames come back as RGB `uint8 (H, W, 3)` whatever the file holds (grey, RGBA, palette, 16-bit);
masks as `uint8 (H, W)` in {0, 1}, decoded per `FrameRef.mask_format` and OR-ed over the frame's
ground-truth files (multi-object SegTrackV2). Decoding is complete: a truncated JPEG or PNG is an
error here, never a silently padded image (`data.verify` runs the same decode over a whole dataset
before training). `image_size` reads headers only.
"""

from __future__ import annotations

import io
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from scnn_lightning.data.records import FrameRef, MaskFormat, SequenceRef
from scnn_lightning.errors import DataError

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".pbm", ".tif", ".tiff", ".webp"}
)
VIDEO_SUFFIXES: frozenset[str] = frozenset(
    {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"}
)

MASK_THRESHOLD = 128  # "gray" masks: foreground where the 8-bit level is at least this

# PIL raises all of these for damaged files (SyntaxError for some broken PNG chunks).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def _pixels(image: Image.Image, path: Path) -> tuple[np.ndarray, int]:
    """Pixels as (H, W) or (H, W, 3) plus the value meaning 'full intensity' (255 or 65535)."""
    mode = image.mode
    if mode in ("1", "L"):
        return np.asarray(image.convert("L")), 255
    if mode in ("LA", "La"):
        return np.asarray(image.getchannel(0)), 255
    if mode == "I" or mode.startswith("I;16"):
        # 16-bit PNG/PGM; PIL may widen them to 32-bit "I", the range is still 16-bit.
        return np.clip(np.asarray(image), 0, 65535).astype(np.uint16), 65535
    if mode == "F":
        raise DataError(path, "floating-point images are not supported as frames or masks")
    # RGB, RGBA (alpha dropped), palette (looked up in its palette), CMYK, YCbCr ...
    return np.asarray(image.convert("RGB")), 255


_JPEG_SCAN, _JPEG_END = b"\xff\xda", b"\xff\xd9"
_PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk type and its fixed CRC
_TRAILER = 1024  # bytes some writers append after the end marker


def _missing_end(data: bytes, image_format: str | None) -> str | None:
    """Why a JPEG/PNG lacks its end marker, else None.

    PIL pads a truncated file silently when anything has set `ImageFile.LOAD_TRUNCATED_IMAGES`,
    and a PNG cut after its last image data decodes completely; the end marker tells either case.
    Neither marker can occur inside JPEG scan data (0xFF is byte-stuffed), nor by chance in PNG data.
    """
    if image_format in ("JPEG", "MPO"):
        last_scan = data.rfind(_JPEG_SCAN)
        if last_scan >= 0 and data.find(_JPEG_END, last_scan) < 0:
            return "no end-of-image marker after the last scan"
    if image_format == "PNG" and _PNG_END not in data[-(len(_PNG_END) + 4 + _TRAILER):]:
        return "no IEND chunk at the end"
    return None


def decode_pixels(path: str | Path) -> tuple[np.ndarray, int]:
    """Fully decode an image file: pixels as (H, W) or (H, W, 3) plus their full-intensity value.

    DataError for a missing, unidentifiable, damaged or truncated file (end markers checked too).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "image file not found")
    try:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # forces a full decode, so truncated files fail here
            missing = _missing_end(data, image.format)
            if missing:
                raise DataError(path, f"truncated image ({image.format}: {missing})")
            return _pixels(image, path)
    except DataError:
        raise
    except UnidentifiedImageError as err:
        raise DataError(path, "unreadable or truncated image (not an image file PIL can identify)") from err
    except _DECODE_ERRORS as err:
        raise DataError(path, f"unreadable or truncated image ({err})") from err


def _to_uint8(pixels: np.ndarray, full: int) -> np.ndarray:
    if full == 255:
        return pixels.astype(np.uint8, copy=False)
    return np.round(pixels.astype(np.float32) * (255.0 / full)).astype(np.uint8)


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to RGB `uint8 (H, W, 3)`; grey is replicated, alpha dropped, 16-bit scaled."""
    pixels, full = decode_pixels(path)
    rgb = _to_uint8(pixels, full)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    return np.ascontiguousarray(rgb)


MAP_SUFFIXES = (".png", ".jpg")  # how saliency maps of other models are stored: <root>/<sequence>/<frame><suffix>


def find_map(root: Path, sequence: str, frame: str) -> Path | None:
    """`root/sequence/frame` with the first of `MAP_SUFFIXES` that exists; None when there is none."""
    for suffix in MAP_SUFFIXES:
        path = root / sequence / f"{frame}{suffix}"
        if path.is_file():
            return path
    return None


def read_soft_map(path: str | Path, shape: tuple[int, int]) -> np.ndarray:
    """A saliency map file as (H, W) float32 in [0, 1] (grey 0..255; colour converted to grey), resized
    bilinearly to `shape` when it has another size."""
    grey = cv2.cvtColor(read_image(path), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    h, w = shape
    if grey.shape != (h, w):
        grey = np.clip(cv2.resize(grey, (w, h), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    return grey


def _open_video(path: str | Path) -> cv2.VideoCapture:
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "video file not found")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise DataError(path, "cannot open video (unsupported container or codec)")
    return capture


def iter_video(path: str | Path) -> Iterator[np.ndarray]:
    """Decode a video's frames one by one as RGB `uint8 (H, W, 3)`."""
    capture = _open_video(path)
    try:
        count = 0
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            count += 1
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if count == 0:
            raise DataError(path, "video has no decodable frames")
    finally:
        capture.release()


def count_video_frames(path: str | Path) -> int:
    """Number of decodable frames. Counted by grabbing, because container frame counts are estimates."""
    capture = _open_video(path)
    try:
        count = 0
        while capture.grab():
            count += 1
    finally:
        capture.release()
    if count == 0:
        raise DataError(path, "video has no decodable frames")
    return count


class _VideoCursor:
    """The last video read, left open at its next frame, plus its few latest frames.

    Consumers read videos frame after frame, often twice per frame (flow pairs t, t+1), so
    re-opening and seeking for every frame would decode each group of pictures again and again.
    Keyed by file identity and process id: a replaced file or a forked DataLoader worker reopens.
    """

    _KEEP = 4  # recent frames kept decoded

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._capture: cv2.VideoCapture | None = None
        self._position = 0
        self._recent: OrderedDict[int, np.ndarray] = OrderedDict()

    def _reset(self, key: tuple | None) -> None:
        if self._capture is not None and self._key is not None and self._key[-1] == os.getpid():
            self._capture.release()
        self._key, self._capture, self._position = key, None, 0
        self._recent.clear()

    def read(self, path: Path, index: int) -> np.ndarray:
        stat = path.stat() if path.is_file() else None
        key = (str(path), stat.st_mtime_ns, stat.st_size, os.getpid()) if stat else None
        with self._lock:
            if key is None or key != self._key:
                self._reset(key)
            if index in self._recent:
                return self._recent[index].copy()
            if self._capture is None:
                self._capture = _open_video(path)
            if index != self._position:
                self._capture.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, bgr = self._capture.read()
            if not ok:
                self._reset(None)
                raise DataError(path, f"cannot decode frame {index} (the video may be shorter)")
            self._position = index + 1
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            self._recent[index] = rgb
            while len(self._recent) > self._KEEP:
                self._recent.popitem(last=False)
            return rgb.copy()


_VIDEO_CURSOR = _VideoCursor()


def read_frame(ref: FrameRef) -> np.ndarray:
    """The frame's pixels, RGB `uint8 (H, W, 3)`; `ref.video_index` selects a frame of a video file."""
    if ref.video_index is None:
        return read_image(ref.image)
    if ref.video_index < 0:
        raise DataError(ref.image, f"negative frame index {ref.video_index}")
    return _VIDEO_CURSOR.read(Path(ref.image), ref.video_index)


def mask_levels(pixels: np.ndarray, full: int) -> np.ndarray:
    """The 8-bit (H, W) level a "gray" mask is thresholded on: the max over channels, so grey
    stored as RGB is unchanged and coloured objects still count."""
    gray = _to_uint8(pixels, full)
    return gray.max(axis=2) if gray.ndim == 3 else gray


def _foreground(path: Path, mask_format: MaskFormat) -> np.ndarray:
    """Boolean (H, W) foreground of one ground-truth file; see `records.MaskFormat`."""
    pixels, full = decode_pixels(path)
    if mask_format == "gray":
        return mask_levels(pixels, full) >= MASK_THRESHOLD
    if mask_format == "nonzero":
        return (pixels.max(axis=2) if pixels.ndim == 3 else pixels) > 0
    if mask_format == "nonwhite":
        return (pixels.min(axis=2) if pixels.ndim == 3 else pixels) < full
    raise DataError(path, f"unknown mask format {mask_format!r} (expected gray, nonzero or nonwhite)")


def _size_text(shape: tuple[int, int]) -> str:
    return f"{shape[0]}x{shape[1]} (HxW)"


def read_mask(ref: FrameRef, shape: tuple[int, int] | None = None) -> np.ndarray | None:
    """Binary ground truth `uint8 (H, W)` in {0, 1}: the union of `ref.masks`; None when unlabelled.

    `shape` is the frame's (H, W); a mask of another size is an error, never silently resized.
    """
    if not ref.masks:
        return None
    union: np.ndarray | None = None
    for path in ref.masks:
        foreground = _foreground(Path(path), ref.mask_format)
        if shape is not None and foreground.shape != tuple(shape):
            raise DataError(
                path,
                f"mask is {_size_text(foreground.shape)} but its frame {ref.image} is {_size_text(shape)}",
            )
        if union is None:
            union = foreground
        elif foreground.shape != union.shape:
            raise DataError(
                path,
                f"mask is {_size_text(foreground.shape)} but {ref.masks[0]} (same frame) "
                f"is {_size_text(union.shape)}",
            )
        else:
            union = union | foreground
    return union.astype(np.uint8)


def image_size(path: str | Path) -> tuple[int, int]:
    """(H, W) of an image file from its header, without decoding the pixels."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "image file not found")
    try:
        with Image.open(path) as image:
            width, height = image.size
    except _DECODE_ERRORS as err:
        raise DataError(path, f"unreadable image header ({err})") from err
    return height, width


def video_size(path: str | Path) -> tuple[int, int]:
    """(H, W) of a video's frames, from the stream properties or, failing that, the first frame."""
    capture = _open_video(path)
    try:
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        if height <= 0 or width <= 0:
            ok, bgr = capture.read()
            if not ok:
                raise DataError(path, "video has no decodable frames")
            height, width = bgr.shape[:2]
    finally:
        capture.release()
    return height, width


def frame_size(ref: FrameRef) -> tuple[int, int]:
    """(H, W) of a frame, cheaply (image header or video stream properties)."""
    return image_size(ref.image) if ref.video_index is None else video_size(ref.image)


def check_sequence_sizes(seq: SequenceRef) -> None:
    """Raise DataError naming the first frame whose size differs from the sequence's first frame.

    Still-image collections (`temporal=False`, e.g. MSRA10K) hold unrelated photos whose sizes
    legitimately differ, so only temporal sequences are checked.
    """
    if not seq.temporal or not seq.frames:
        return
    video_sizes: dict[Path, tuple[int, int]] = {}  # a video has one size: probe it once

    def size_of(ref: FrameRef) -> tuple[int, int]:
        if ref.video_index is None:
            return image_size(ref.image)
        if ref.image not in video_sizes:
            video_sizes[ref.image] = video_size(ref.image)
        return video_sizes[ref.image]

    first = seq.frames[0]
    expected = size_of(first)
    for ref in seq.frames[1:]:
        size = size_of(ref)
        if size != expected:
            raise DataError(
                ref.image,
                f"frame {ref.name} of sequence {seq.name} is {_size_text(size)} but its first frame "
                f"{first.name} is {_size_text(expected)}",
            )
