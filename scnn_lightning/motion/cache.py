"""Content-keyed, crash-safe cache of flow fields and motion maps (paper §III-B is costly per frame).

Keys are sha1 digests of what determines the value: the identity of every input file, the backend
and its parameters, and (for the superpixel prior) the classifier's digest. A file's identity is
(resolved path, size, mtime_ns, video index) rather than a hash of its bytes: hashing every frame on
every epoch would cost as much as decoding it, and any rewrite of a frame changes its size or mtime.
Values are stored as float16 `.npy` (half the disk of float32; flow keeps ~0.03 px precision at
64 px of motion, [0, 1] maps keep ~5e-4), each written atomically, so a killed run leaves only
complete entries (plus, at worst, a hidden `*.part.npy` temporary that is never read).

Layout: `<root>/<kind>/<key[:2]>/<key>.npy`, kind ∈ {"flow", "maps"}.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from scnn_lightning.data.records import FrameRef
from scnn_lightning.errors import DataError
from scnn_lightning.utils import atomic_path


def file_identity(path: str | Path) -> list:
    """(resolved path, size, mtime_ns) of an input file; a missing file is a DataError."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise DataError(path, f"cannot be read ({exc.strerror or exc})") from exc
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def frame_identity(ref: FrameRef) -> list:
    return file_identity(ref.image) + [ref.video_index]


def content_key(*parts) -> str:
    """sha1 of the JSON of `parts` (strings, numbers, lists, dicts)."""
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class MotionCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / f"{key}.npy"

    def load(self, kind: str, key: str) -> np.ndarray | None:
        """The stored array as float32, or None when absent."""
        path = self.path(kind, key)
        if not path.is_file():
            return None
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise DataError(path, f"unreadable cache entry ({exc}); delete it to recompute") from exc
        if arr.dtype != np.float16 or not np.isfinite(arr).all():
            raise DataError(path, "cache entry is not a finite float16 array; delete it to recompute")
        return arr.astype(np.float32)

    def save(self, kind: str, key: str, array: np.ndarray) -> None:
        data = np.asarray(array, np.float32)
        if not np.isfinite(data).all() or np.abs(data).max(initial=0) > np.finfo(np.float16).max:
            raise ValueError(f"refusing to cache non-finite or float16-overflowing {kind} values")
        with atomic_path(self.path(kind, key)) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, data.astype(np.float16))
