"""On-disk weak labels G_t of Algorithm 1, one folder per refresh round (§III-C, Fig. 4).

Layout seen by readers::

    root/round_003/<sequence>/<frame name>.png   8-bit label: >= 128 foreground; the level is its confidence
    root/round_003/manifest.json                 weights, source names, stats, count, hash, frames_file
    root/frames-<digest>.json                    a frame list, one frame a line, named by its content: the
                                                 rounds of a run that label the same frames name one file,
                                                 so a run keeps its frame list once (manifests written
                                                 before these files list the frames themselves)

A round is published atomically as a whole: its files are written into a fresh hidden folder
(`root/.versions/round_003-<random>/`, manifest last) and `root/round_003` is a relative symlink that
is swapped onto it with one atomic rename. A crash mid-write therefore leaves only an unreferenced
hidden folder (removed by the next write); readers see either the complete old round or the complete
new one. Several processes may write one round (DDP: each rank its own frames): one `begin_round`s it,
the others `join_round` it by the folder's name, every label file is written atomically, and after all
of them are done (a barrier) the first publishes it; the hash is then computed from the files
themselves, one at a time, so publishing needs no labels in memory. Multi-node runs need `root` on a
filesystem every node sees.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from scnn_lightning.errors import DataError
from scnn_lightning.utils import atomic_path

MANIFEST = "manifest.json"
FRAME_LIST = "frames_file"  # the manifest entry naming the frame list's file, relative to the store's root
FOREGROUND = 128  # label levels from here up are foreground
VERSIONS = ".versions"
_ROUND_RE = re.compile(r"^round_(\d{3,})$")


def labels_hash(labels: dict[tuple[str, str], np.ndarray]) -> str:
    """SHA-256 of binary labels, independent of dict order and of the PNG encoding."""
    return _hash_sorted((key, _binary_levels(labels[key])) for key in sorted(labels))


def _hash_sorted(items: Iterable[tuple[tuple[str, str], np.ndarray]]) -> str:
    """The round hash of (key, uint8 levels) pairs given in sorted key order, one label at a time: the binary
    label, then the levels themselves where they carry a confidence (so a 0/255 round hashes as it always did)."""
    digest = hashlib.sha256()
    for (seq, name), levels in items:
        digest.update(f"{seq}\0{name}\0{levels.shape[0]}x{levels.shape[1]}\0".encode())
        digest.update(np.packbits(levels >= FOREGROUND).tobytes())
        if not np.isin(levels, (0, 255)).all():
            digest.update(b"levels\0" + np.ascontiguousarray(levels, np.uint8).tobytes())
    return digest.hexdigest()


def _binary_levels(mask: np.ndarray) -> np.ndarray:
    """A {0, 1} mask as the levels its file holds (0/255)."""
    return np.asarray(mask).astype(bool).astype(np.uint8) * 255


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


def _write_png(path: Path, levels: np.ndarray) -> None:
    with atomic_path(path) as tmp:  # the temporary keeps the .png suffix cv2 needs
        if not cv2.imwrite(str(tmp), levels):
            raise DataError(path, "could not write weak label PNG")


def _read_levels(path: Path) -> np.ndarray:
    grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if grey is None:
        raise DataError(path, "unreadable weak label PNG")
    return grey


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
        extra: dict | None = None,
    ) -> Path:
        """Write all labels of one round and publish them atomically; an existing round is replaced.
        `extra` adds top-level manifest entries (fit, quality, ...)."""
        _check_round(round)
        _check_labels(labels)
        _manifest_text(round, len(labels), "", "", weights, stats, extra)  # bad values fail before any write
        writer = self.begin_round(int(round))
        try:
            for (seq, name), mask in labels.items():
                writer.write(seq, name, mask)
            return writer.publish(sorted(labels), weights=weights, stats=stats, extra=extra)
        except BaseException:
            writer.discard()
            raise

    def begin_round(self, round: int) -> "RoundWriter":
        """A fresh hidden folder for `round` (left-overs of crashed writes are removed first)."""
        _check_round(round)
        versions = self.root / VERSIONS
        self._remove_orphans(versions)
        version = versions / f"round_{int(round):03d}-{uuid.uuid4().hex[:12]}"
        version.mkdir(parents=True)
        return RoundWriter(self, int(round), version)

    def join_round(self, round: int, folder_name: str) -> "RoundWriter":
        """The writer of a round another process began (`RoundWriter.folder.name`)."""
        version = self.root / VERSIONS / folder_name
        if not folder_name.startswith(f"round_{int(round):03d}-") or not version.is_dir():
            raise DataError(version, f"no unpublished folder of weak-label round {round} to write into")
        return RoundWriter(self, int(round), version)

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

    def hash_on_disk(self, round: int) -> str:
        """`labels_hash` of the label files of `round` as they are now (read one at a time)."""
        return _hash_sorted((key, self.read_levels(round, *key)) for key in self.frames(round))

    def frames(self, round: int) -> list[tuple[str, str]]:
        manifest = self.manifest(round)
        if "frames" in manifest:  # a manifest written before the list had its own file
            listed = [(seq, name) for seq, name in manifest["frames"]]
        else:
            listed = self.read_frame_list(manifest[FRAME_LIST])
        if len(listed) != manifest["count"]:
            raise DataError(self.round_dir(round) / MANIFEST,
                            f"counts {manifest['count']} weak labels but lists {len(listed)} frames")
        return listed

    def keep_frame_list(self, frames: list[tuple[str, str]]) -> str:
        """Write a frame list under the root unless it is there already; returns the name a manifest records."""
        text = "[\n" + ",\n".join("  " + json.dumps(list(key)) for key in frames) + "\n]\n"
        name = f"frames-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
        if not (self.root / name).is_file():  # named by its content: a file of that name holds this list
            with atomic_path(self.root / name) as tmp:
                tmp.write_text(text)
        return name

    def read_frame_list(self, name: str) -> list[tuple[str, str]]:
        path = self.root / name
        if not path.is_file():
            raise DataError(path, "the frame list a weak-label manifest names is missing")
        try:
            return [(seq, frame) for seq, frame in json.loads(path.read_text())]
        except (json.JSONDecodeError, TypeError, ValueError) as err:
            raise DataError(path, f"corrupt weak-label frame list ({err})") from err

    def frame_list_files(self) -> list[Path]:
        """Every frame list kept under the root (those of replaced rounds included)."""
        return sorted(self.root.glob("frames-*.json"))

    def read_label(self, round: int, seq: str, name: str) -> np.ndarray:
        """The weak label as (H, W) uint8 in {0, 1}."""
        return (self.read_levels(round, seq, name) >= FOREGROUND).astype(np.uint8)

    def read_confidence(self, round: int, seq: str, name: str) -> np.ndarray:
        """The weak label with its confidence as (H, W) float32 in [0, 1]: >= 0.5 foreground (0 or 1 for a
        round written without confidence)."""
        return self.read_levels(round, seq, name).astype(np.float32) / 255.0

    def read_levels(self, round: int, seq: str, name: str) -> np.ndarray:
        """The label file's 8-bit levels (`FOREGROUND` and above: foreground)."""
        if not (self.round_dir(round) / MANIFEST).is_file():
            raise DataError(self.round_dir(round), f"weak-label round {round} is not complete or does not exist")
        path = self.label_path(round, seq, name)
        if not path.is_file():
            raise DataError(path, f"no weak label for frame ({seq!r}, {name!r}) in round {round}")
        return _read_levels(path)


class RoundWriter:
    """Label files of one unpublished round, in its hidden folder; `publish` makes the round visible."""

    def __init__(self, store: WeakLabelStore, round: int, folder: Path):
        self.store, self.round, self.folder = store, round, folder

    def write(self, seq: str, name: str, mask: np.ndarray) -> None:
        """A binary {0, 1} label (stored as 0/255)."""
        _check_labels({(seq, name): mask})
        _write_png(self.folder / seq / f"{name}.png", _binary_levels(mask))

    def write_confidence(self, seq: str, name: str, levels: np.ndarray) -> None:
        """A label with its confidence: uint8 levels, `FOREGROUND` and above foreground (`fusion.confidence_levels`)."""
        levels = np.asarray(levels)
        if levels.dtype != np.uint8:
            raise ValueError(f"label {(seq, name)!r}: confidence levels must be uint8, got {levels.dtype}")
        _check_labels({(seq, name): levels >= FOREGROUND})
        _write_png(self.folder / seq / f"{name}.png", levels)

    def publish(self, frames: list[tuple[str, str]], *, weights: dict[str, float], stats: dict,
                extra: dict | None = None) -> Path:
        """Check that every frame's file was written, record the manifest and swap the round in."""
        frames = sorted(frames)

        def written():
            for seq, name in frames:
                path = self.folder / seq / f"{name}.png"
                if not path.is_file():
                    raise DataError(path, f"weak label of round {self.round} was not written")
                yield (seq, name), _read_levels(path)

        digest = _hash_sorted(written())
        text = _manifest_text(self.round, len(frames), self.store.keep_frame_list(frames), digest, weights, stats,
                              extra)
        with atomic_path(self.folder / MANIFEST) as tmp:
            tmp.write_text(text)
        self.store._publish(self.round, self.folder)
        return self.store.round_dir(self.round)

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _check_round(round) -> None:
    if not isinstance(round, (int, np.integer)) or isinstance(round, bool) or round < 0:
        raise ValueError(f"round must be a non-negative integer, got {round!r}")


def _manifest_text(round: int, count: int, frame_list: str, digest: str, weights: dict[str, float], stats: dict,
                   extra: dict | None) -> str:
    """round, count, sources, weights, stats, labels_hash, frames_file (the keys readers rely on), then `extra`."""
    manifest = {"round": int(round), "count": count, "sources": list(weights),
                "weights": {str(k): float(v) for k, v in weights.items()}, "stats": stats,
                "labels_hash": digest, FRAME_LIST: frame_list}
    clash = sorted(set(extra or {}) & {*manifest, "frames"})  # "frames": where readers look for a list first
    if clash:
        raise ValueError(f"extra manifest entries may not replace {clash}")
    manifest.update(extra or {})
    return json.dumps(manifest, indent=2, default=_plain) + "\n"

