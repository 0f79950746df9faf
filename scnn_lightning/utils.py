"""Small shared helpers: atomic file writes (a killed process never leaves a half-written file)."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` only if the block finishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(path: str | Path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def to_uint8_map(saliency):
    """The 8-bit map a PNG holds: `round(255 * clip(s, 0, 1))`; a uint8 map is returned as it is."""
    import numpy as np

    m = np.asarray(saliency)
    if m.dtype == np.uint8:
        return m
    return np.round(np.clip(m.astype(np.float32), 0.0, 1.0) * 255).astype(np.uint8)


def write_png_map(path: str | Path, saliency, size: tuple[int, int] | None = None) -> None:
    """Write a [0, 1] float map (or an 8-bit one, as is) as an 8-bit PNG (atomically), resized to `size`
    (H, W) when given."""
    import cv2
    import numpy as np

    m = np.asarray(saliency)
    if m.dtype != np.uint8:
        m = np.clip(m.astype(np.float32), 0.0, 1.0)
    if size is not None and m.shape != tuple(size):
        m = cv2.resize(m, (int(size[1]), int(size[0])), interpolation=cv2.INTER_LINEAR)
    with atomic_path(path) as tmp:  # the temporary name keeps the .png suffix cv2 needs
        if not cv2.imwrite(str(tmp), to_uint8_map(m)):
            raise OSError(f"{path}: could not write PNG")
