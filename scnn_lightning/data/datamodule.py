"""One LightningDataModule for every stage and variant: merges configured sources, yields frame pairs.

A training item is frame t with its partner t+1 (t−1 for a sequence's last frame, the frame itself
for still-image datasets, flagged by `has_next`), its label and label kind, and — when a motion
provider is configured — the temporal prior `pt` and grey flow image `flow_gray` of frame t.

Labels, per frame: the manual mask when the frame has one inside the label budget; otherwise the
current weak label (set by `WeakLabelRefresh` through `use_weak_labels`); otherwise none. Training
sets hold only frames that have a label, so the weak-label rounds grow the training set (Alg. 1).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any, Sequence

import cv2
import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from scnn_lightning.data.io import check_sequence_sizes, read_frame, read_mask
from scnn_lightning.data.readers import load_index
from scnn_lightning.data.records import SequenceRef
from scnn_lightning.data.transforms import paired_augment, resize, to_tensor_image, to_tensor_map
from scnn_lightning.errors import DataError

LABEL_NONE, LABEL_MANUAL, LABEL_WEAK = 0, 1, 2
Entry = tuple[SequenceRef, int]


@dataclass(frozen=True)
class SourceSpec:
    dataset: str
    root: str
    split: str | None = None
    as_images: bool = False  # treat a video set's frames as still images (stage 1 on video data)

    @classmethod
    def parse(cls, spec: Any) -> "SourceSpec":
        if isinstance(spec, SourceSpec):
            return spec
        try:
            return cls(**dict(spec))
        except TypeError as exc:
            raise ValueError(f"a data source needs keys dataset, root and optionally split; got {spec!r}") from exc


def load_sequences(specs: Sequence[Any]) -> list[SequenceRef]:
    """Index every source and check that each sequence has one frame size."""
    sequences: list[SequenceRef] = []
    for spec in map(SourceSpec.parse, specs):
        index = load_index(spec.dataset, spec.root, spec.split)
        for seq in index.sequences:
            check_sequence_sizes(seq)
            sequences.append(SequenceRef(seq.name, seq.frames, temporal=False) if spec.as_images else seq)
    return sequences


def _stable_fraction(*parts: object) -> float:
    digest = hashlib.sha1("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_train_val(sequences: list[SequenceRef], fraction: float, seed: int) -> tuple[list[Entry], list[Entry]]:
    """Deterministic split: whole sequences for videos (no leakage between neighbouring frames),
    single frames for still-image sets. A lone video is split by frames."""
    train: list[Entry] = []
    val: list[Entry] = []
    videos = [s for s in sequences if s.temporal]
    for seq in sequences:
        by_frame = not seq.temporal or len(videos) < 2
        for i, frame in enumerate(seq.frames):
            key = (seed, seq.name, frame.name) if by_frame else (seed, seq.name)
            (val if _stable_fraction(*key) < fraction else train).append((seq, i))
    return train, val


def budget_keeps(seq: SequenceRef, index: int, label_every: int | None) -> bool:
    """Label budget, FBMS style: keep the manual label of every k-th labelled frame of a sequence."""
    if label_every is None or label_every <= 1:
        return True
    labelled = [i for i, f in enumerate(seq.frames) if f.labelled]
    return index in labelled[::label_every]


def apply_label_budget(seq: SequenceRef, label_every: int | None) -> SequenceRef:
    """A copy of `seq` whose frames outside the label budget carry no ground truth."""
    frames = [f if budget_keeps(seq, i, label_every) else replace(f, masks=()) for i, f in enumerate(seq.frames)]
    return SequenceRef(seq.name, frames, temporal=seq.temporal)


class FrameDataset(Dataset):
    def __init__(self, entries: list[Entry], *, size: tuple[int, int], augment: dict | None,
                 motion=None, labels=None, pairs: bool = True):
        self.entries = entries
        self.size = tuple(size)
        self.augment = augment
        self.motion = motion
        self.labels = labels  # callable (seq, index) -> (mask or None, kind)
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.entries)

    def partner_index(self, seq: SequenceRef, index: int) -> int:
        if not seq.temporal or len(seq.frames) == 1:
            return index
        return index + 1 if index + 1 < len(seq.frames) else index - 1

    def __getitem__(self, i: int) -> dict:
        seq, index = self.entries[i]
        frame = seq.frames[index]
        rgb = read_frame(frame)
        h, w = rgb.shape[:2]
        mask, kind = self.labels(seq, index, (h, w)) if self.labels else (None, LABEL_NONE)
        sample = {"image": to_tensor_image(rgb)}
        if self.pairs:
            partner = self.partner_index(seq, index)
            sample["next_image"] = to_tensor_image(read_frame(seq.frames[partner]) if partner != index else rgb)
        sample["mask"] = to_tensor_map(mask if mask is not None else np.zeros((h, w), np.float32))
        if self.motion is not None:
            maps = self.motion.maps(seq, index)
            sample["pt"] = to_tensor_map(maps.pt)
            sample["flow_gray"] = to_tensor_map(maps.flow_gray)
        if self.augment:
            rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,))))
            sample = paired_augment(sample, self.size, rng, **self.augment)
        else:
            sample = resize(sample, self.size)
        sample.update(
            has_next=seq.temporal and len(seq.frames) > 1,
            labelled=mask is not None,
            label_kind=kind,
            sequence=seq.name,
            name=frame.name,
            index=index,
            orig_size=torch.tensor([h, w]),
        )
        return sample


class SaliencyDataModule(L.LightningDataModule):
    """Merges `train` sources (val carved out deterministically unless `val` is given) and `test` sources.

    Args are plain lists of dicts `{dataset, root, split}` so the whole thing is a Hydra config.
    `motion` is a MotionProvider (or None for variants that use no motion cue).
    """

    def __init__(self, *, train: Sequence[Any] = (), val: Sequence[Any] = (), test: Sequence[Any] = (),
                 size: Sequence[int] = (128, 224), batch_size: int = 4, num_workers: int = 0,
                 val_fraction: float = 0.2, augment: dict | None = None, label_every: int | None = None,
                 motion=None, seed: int = 0):
        super().__init__()
        self.train_specs, self.val_specs, self.test_specs = list(train), list(val), list(test)
        self.size = (int(size[0]), int(size[1]))
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_fraction = val_fraction
        self.augment = dict(augment) if augment else None
        self.label_every = label_every
        self.motion = motion
        self.seed = seed
        self.weak_store = None
        self.weak_round: int | None = None
        self.weak_frames: set[tuple[str, str]] = set()
        self.train_entries: list[Entry] = []
        self.val_entries: list[Entry] = []
        self.test_entries: list[Entry] = []
        self._prepared = False

    # -- set-up ---------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self._prepared:
            return
        if self.train_specs:
            train_seqs = load_sequences(self.train_specs)
            if self.val_specs:
                self.train_entries = [(s, i) for s in train_seqs for i in range(len(s.frames))]
                self.val_entries = [(s, i) for s in load_sequences(self.val_specs) for i in range(len(s.frames))]
            else:
                self.train_entries, self.val_entries = split_train_val(train_seqs, self.val_fraction, self.seed)
        if self.test_specs:
            self.test_entries = [(s, i) for s in load_sequences(self.test_specs) for i in range(len(s.frames))]
        self._prepared = True

    # -- labels -----------------------------------------------------------------------------------
    def manual_label(self, seq: SequenceRef, index: int) -> bool:
        return seq.frames[index].labelled and budget_keeps(seq, index, self.label_every)

    def train_label(self, seq: SequenceRef, index: int, shape: tuple[int, int]):
        if self.manual_label(seq, index):
            return read_mask(seq.frames[index], shape), LABEL_MANUAL
        key = (seq.name, seq.frames[index].name)
        if key in self.weak_frames:
            return _fit_mask(self.weak_store.read_label(self.weak_round, *key), shape), LABEL_WEAK
        return None, LABEL_NONE

    @staticmethod
    def eval_label(seq: SequenceRef, index: int, shape: tuple[int, int]):
        mask = read_mask(seq.frames[index], shape)
        return mask, (LABEL_MANUAL if mask is not None else LABEL_NONE)

    def use_weak_labels(self, store, round_: int | None) -> None:
        """Serve `store`'s labels of `round_` to frames without a manual label (from the next epoch)."""
        self.weak_store, self.weak_round = store, round_
        self.weak_frames = set(store.frames(round_)) if store is not None and round_ is not None else set()

    def labelled_train_entries(self) -> list[Entry]:
        return [e for e in self.train_entries if self.manual_label(*e)]

    def unlabelled_train_entries(self) -> list[Entry]:
        return [e for e in self.train_entries if not self.manual_label(*e)]

    def active_train_entries(self) -> list[Entry]:
        """Frames that carry a label this epoch (manual, or weak from the current round)."""
        return [e for e in self.train_entries
                if self.manual_label(*e) or (e[0].name, e[0].frames[e[1]].name) in self.weak_frames]

    # -- loaders ----------------------------------------------------------------------------------
    def dataset(self, entries: list[Entry], *, train: bool = False) -> FrameDataset:
        return FrameDataset(entries, size=self.size, augment=self.augment if train else None,
                            motion=self.motion, labels=self.train_label if train else self.eval_label)

    def loader(self, dataset: Dataset, *, shuffle: bool) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          persistent_workers=False, drop_last=False)

    def train_dataloader(self) -> DataLoader:
        entries = self.active_train_entries()
        if not entries:
            raise DataError(", ".join(str(SourceSpec.parse(s).root) for s in self.train_specs),
                            "no labelled training frame (check the sources, split and label budget)")
        return self.loader(self.dataset(entries, train=True), shuffle=True)

    def val_dataloader(self) -> DataLoader:
        labelled = [e for e in self.val_entries if e[0].frames[e[1]].labelled]
        return self.loader(self.dataset(labelled), shuffle=False)

    def test_dataloader(self) -> DataLoader:
        labelled = [e for e in self.test_entries if e[0].frames[e[1]].labelled]
        return self.loader(self.dataset(labelled), shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self.loader(self.dataset(self.test_entries), shuffle=False)


def _fit_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Weak labels are stored at training resolution; bring them to the frame size (nearest)."""
    if mask.shape == tuple(shape):
        return mask
    return cv2.resize(mask, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)

