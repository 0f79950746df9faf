"""Content-keyed, crash-safe cache of the motion maps of each frame (paper §III-B is costly per frame).

Keys are sha1 digests of what determines the value: the identity of every input file, the backend
and its parameters, and (for the superpixel prior) the classifier's digest. A file's identity is
(resolved path, size, mtime_ns, video index) rather than a hash of its bytes: hashing every frame on
every epoch would cost as much as decoding it, and any rewrite of a frame changes its size or mtime.

An entry holds a frame's [0, 1] maps (Pt and the grey flow image) as 8-bit arrays, `round(255·x)`,
in a deflate-compressed `.npz`: at most 2 bytes a pixel before compression (0.82 MB at 854×480),
27-230 KB measured on DAVIS frames. Rounding moves a value by at most 0.5/255; the grey flow image
is 8-bit by construction, so it comes back exactly. The flow field itself is not kept: it is a small
part of the cost of a superpixel-prior miss, and even as float16 it alone would take 1.6 MB a frame.
Each entry is written atomically, so a killed run leaves only complete entries (plus, at worst, a
hidden `*.part.npz` temporary that is never read).

Layout: `<root>/maps/<key[:2]>/<key>.npz`.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np

from scnn_lightning.data.records import FrameRef
from scnn_lightning.errors import DataError
from scnn_lightning.utils import atomic_path, to_uint8_map


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


def from_stored(stored: np.ndarray) -> np.ndarray:
    """An 8-bit stored map back as float32 in [0, 1]."""
    return stored.astype(np.float32) / 255.0


class MotionCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / "maps" / key[:2] / f"{key}.npz"

    def load(self, key: str, names: tuple[str, ...]) -> dict[str, np.ndarray] | None:
        """The maps `names` of entry `key` as float32 in [0, 1], or None when there is no entry."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as entry:
                stored = {name: entry[name] for name in names}
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            raise DataError(path, f"unreadable cache entry ({exc}); delete it to recompute") from exc
        if any(m.dtype != np.uint8 or m.ndim != 2 for m in stored.values()):
            raise DataError(path, "cache entry does not hold 8-bit (H, W) maps; delete it to recompute")
        return {name: from_stored(m) for name, m in stored.items()}

    def save(self, key: str, **maps: np.ndarray) -> dict[str, np.ndarray]:
        """Store [0, 1] maps under `key`; returns them as `load` will read them back (8-bit rounded)."""
        for name, m in maps.items():
            m = np.asarray(m)
            if not np.isfinite(m).all() or m.min(initial=0) < 0 or m.max(initial=0) > 1:
                raise ValueError(f"refusing to cache {name}: values must be finite and in [0, 1]")
        stored = {name: to_uint8_map(m) for name, m in maps.items()}
        with atomic_path(self.path(key)) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **stored)
        return {name: from_stored(m) for name, m in stored.items()}
