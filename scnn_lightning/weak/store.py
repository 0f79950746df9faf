"""On-disk weak labels G_t of Algorithm 1, one folder per refresh round (§III-C, Fig. 4).

Layout seen by readers::

    root/round_003/<sequence>/<frame name>.png   0/255 binary PNG
    root/round_003/manifest.json                 weights, source names, stats, count, frames, hash

A round is published atomically as a whole: its files are written into a fresh hidden folder
(`root/.versions/round_003-<random>/`, manifest last) and `root/round_003` is a relative symlink that
is swapped onto it with one atomic rename. A crash mid-write therefore leaves only an unreferenced
hidden folder (removed by the next write); readers see either the complete old round or the complete
new one. One writer at a time (rank 0 under DDP).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path

import cv2
import numpy as np

from scnn_lightning.errors import DataError

MANIFEST = "manifest.json"
VERSIONS = ".versions"
_ROUND_RE = re.compile(r"^round_(\d{3,})$")


def labels_hash(labels: dict[tuple[str, str], np.ndarray]) -> str:
    """SHA-256 of the label content, independent of dict order and of the PNG encoding."""
    digest = hashlib.sha256()
    for seq, name in sorted(labels):
        mask = np.asarray(labels[(seq, name)]).astype(bool)
        digest.update(f"{seq}\0{name}\0{mask.shape[0]}x{mask.shape[1]}\0".encode())
        digest.update(np.packbits(mask).tobytes())
    return digest.hexdigest()


def _check_labels(labels: dict[tuple[str, str], np.ndarray]) -> None:
    for key, mask in labels.items():
        if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(p, str) for p in key)):
            raise ValueError(f"label keys must be (sequence, frame name) string pairs, got {key!r}")
        for part in key:
            if part in ("", ".", "..") or "/" in part or "\\" in part or "\0" in part:
                raise ValueError(f"label key {key!r}: '{part}' is not usable as a file or folder name")
        mask = np.asarray(mask)
        if mask.ndim != 2 or mask.size == 0:
            raise ValueError(f"label {key!r} must be a non-empty (H, W) mask, got shape {mask.shape}")
        if mask.dtype != bool and not np.isin(mask, (0, 1)).all():
            raise ValueError(f"label {key!r} must be binary {{0, 1}}, got values {np.unique(mask)[:8].tolist()}")


def _plain(value):
    """JSON fallback for numpy scalars/arrays found in weights or stats."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"manifest values must be JSON-serialisable, got {type(value).__name__}")


def _write_png(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.asarray(mask).astype(bool).astype(np.uint8) * 255):
        raise DataError(path, "could not write weak label PNG")


class WeakLabelStore:
    """Versioned weak-label rounds under `root`; only complete rounds are ever visible."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def round_dir(self, round: int) -> Path:
        return self.root / f"round_{round:03d}"

    def label_path(self, round: int, seq: str, name: str) -> Path:
        return self.round_dir(round) / seq / f"{name}.png"

    def rounds(self) -> list[int]:
        """Complete (published, with manifest) rounds, ascending."""
        if not self.root.is_dir():
            return []
        found = []
        for entry in self.root.iterdir():
            match = _ROUND_RE.match(entry.name)
            if match and (entry / MANIFEST).is_file():
                found.append(int(match.group(1)))
        return sorted(found)

    def latest_round(self) -> int | None:
        complete = self.rounds()
        return complete[-1] if complete else None

    def write_round(
        self,
        round: int,
        labels: dict[tuple[str, str], np.ndarray],
        *,
        weights: dict[str, float],
        stats: dict,
    ) -> Path:
        """Write all labels of one round and publish them atomically; an existing round is replaced."""
        if not isinstance(round, (int, np.integer)) or isinstance(round, bool) or round < 0:
            raise ValueError(f"round must be a non-negative integer, got {round!r}")
        round = int(round)
        _check_labels(labels)
        manifest = {
            "round": round,
            "count": len(labels),
            "sources": list(weights),
            "weights": {str(k): float(v) for k, v in weights.items()},
            "stats": stats,
            "labels_hash": labels_hash(labels),
            "frames": [list(key) for key in sorted(labels)],
        }
        manifest_text = json.dumps(manifest, indent=2, default=_plain) + "\n"  # fails before any write

        versions = self.root / VERSIONS
        self._remove_orphans(versions)
        version = versions / f"round_{round:03d}-{uuid.uuid4().hex[:12]}"
        version.mkdir(parents=True)
        try:
            for (seq, name), mask in labels.items():
                _write_png(version / seq / f"{name}.png", mask)
            (version / MANIFEST).write_text(manifest_text)
            self._publish(round, version)
        except BaseException:
            shutil.rmtree(version, ignore_errors=True)
            raise
        return self.round_dir(round)

    def _publish(self, round: int, version: Path) -> None:
        link = self.round_dir(round)
        previous = link.resolve() if link.is_symlink() else None
        staged = self.root / f".{link.name}.link-{uuid.uuid4().hex[:12]}"
        staged.symlink_to(version.relative_to(self.root), target_is_directory=True)
        os.replace(staged, link)  # the one atomic step: readers flip from old round to new
        if previous is not None and previous != version.resolve():
            shutil.rmtree(previous, ignore_errors=True)

    def _remove_orphans(self, versions: Path) -> None:
        """Drop version folders no published round points to, and staged links (left by a crashed write)."""
        for staged in self.root.glob(".round_*.link-*"):
            staged.unlink()
        if not versions.is_dir():
            return
        live = {(self.root / f"round_{r:03d}").resolve() for r in self.rounds()}
        for entry in versions.iterdir():
            if entry.resolve() not in live:
                shutil.rmtree(entry, ignore_errors=True)

    def manifest(self, round: int) -> dict:
        path = self.round_dir(round) / MANIFEST
        if not path.is_file():
            raise DataError(path, f"weak-label round {round} is not complete or does not exist")
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise DataError(path, f"corrupt weak-label manifest ({err})") from err

    def labels_hash(self, round: int) -> str:
        return self.manifest(round)["labels_hash"]

    def frames(self, round: int) -> list[tuple[str, str]]:
        return [(seq, name) for seq, name in self.manifest(round)["frames"]]

    def read_label(self, round: int, seq: str, name: str) -> np.ndarray:
        """The weak label as (H, W) uint8 in {0, 1}."""
        if not (self.round_dir(round) / MANIFEST).is_file():
            raise DataError(self.round_dir(round), f"weak-label round {round} is not complete or does not exist")
        path = self.label_path(round, seq, name)
        if not path.is_file():
            raise DataError(path, f"no weak label for frame ({seq!r}, {name!r}) in round {round}")
        grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if grey is None:
            raise DataError(path, "unreadable weak label PNG")
        return (grey >= 128).astype(np.uint8)
