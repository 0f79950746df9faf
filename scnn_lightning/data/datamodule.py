"""One LightningDataModule for every stage and variant: merges configured sources, yields frame pairs.

A training item is frame t with its partner t+1 (t−1 for a sequence's last frame, the frame itself
for still-image datasets, flagged by `has_next`), its label and label kind, and — when a motion
provider is configured — the temporal prior `pt` and grey flow image `flow_gray` of frame t.

Labels, per frame: the manual mask when the frame has one inside the label budget; otherwise the
current weak label (set by `WeakLabelRefresh` through `use_weak_labels`); otherwise none. Training
sets hold only frames that have a label, so the weak-label rounds grow the training set (Alg. 1).
With weak labels, a seeded share of the manual frames is held out of the loss (`set_fusion_holdout`):
Eq. 8 is fitted on them, so the network's map is weighed on frames it did not train on.

Each epoch trains on `epoch_train_entries(epoch)`: the labelled frames above, of which only a seeded share of
the weak-labelled ones when `weak_share` < 1, plus, with `image_mix` > 0 (stage 2), a seeded draw of still
images from `mix_images` (the stage-1 sources) so the network keeps what it learned on them. Both draws hash
(seed, epoch, frame): every DDP rank and a resumed run draw the same frames, whatever the global RNG did.

Test sets are scored at the ground truth's own size: a test item also carries the name of its test set
(`dataset`, see `name_test_sets`) and the frame and mask as read (`frame_full`, `mask_full`: uint8
arrays, collated into lists by `collate_eval` since their sizes differ). Under DDP every test frame is
scored by exactly one process (`ShardSampler`; Lightning's own sampler pads with repeated frames).
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import cv2
import lightning as L
import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, DistributedSampler, default_collate

from scnn_lightning.data.augment import SampleAugment, build_augmenter
from scnn_lightning.data.io import check_sequence_sizes, find_map, read_frame, read_mask, read_soft_map
from scnn_lightning.data.readers import load_index
from scnn_lightning.data.records import FrameRef, SequenceRef
from scnn_lightning.data.transforms import resize, to_tensors
from scnn_lightning.errors import DataError

LABEL_NONE, LABEL_MANUAL, LABEL_WEAK, LABEL_TEACHER = 0, 1, 2, 3  # TEACHER: another model's map, a soft target
Entry = tuple[SequenceRef, int]
FULL_SIZE_KEYS = ("frame_full", "mask_full")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceSpec:
    dataset: str
    root: str
    split: str | None = None
    as_images: bool = False  # treat a video set's frames as still images (stage 1 on video data)
    label_every: int | None = None  # with as_images: ground truth kept on every n-th frame of a sequence only
    teacher: str | None = None  # with as_images: <teacher>/<sequence>/<frame>.{png,jpg}, another model's maps,
    #                             the soft target of every frame without ground truth (distillation)

    @classmethod
    def parse(cls, spec: Any) -> "SourceSpec":
        if isinstance(spec, SourceSpec):
            return spec
        try:
            parsed = cls(**dict(spec))
        except TypeError as exc:
            raise ValueError(f"a data source needs keys dataset, root and optionally split, as_images, label_every, "
                             f"teacher; got {spec!r}") from exc
        if (parsed.teacher or parsed.label_every) and not parsed.as_images:
            raise ValueError(f"label_every and teacher belong to a source read as still images (as_images: true), "
                             f"got {spec!r}")
        return parsed


def load_sequences(specs: Sequence[Any]) -> list[SequenceRef]:
    """Index every source and check that each sequence has one frame size. A video source read as still images
    keeps its ground truth within its `label_every` budget (counted on the video's own frames), and with a
    `teacher` each other frame takes the teacher's map of it as its label."""
    sequences: list[SequenceRef] = []
    for spec in map(SourceSpec.parse, specs):
        index = load_index(spec.dataset, spec.root, spec.split)
        for seq in index.sequences:
            check_sequence_sizes(seq)
            if spec.as_images:
                seq = apply_label_budget(seq, spec.label_every)
                frames = attach_teacher(seq, Path(spec.teacher)) if spec.teacher else seq.frames
                seq = SequenceRef(seq.name, frames, temporal=False)
            sequences.append(seq)
    return sequences


def attach_teacher(seq: SequenceRef, teacher: Path) -> list[FrameRef]:
    """`seq`'s frames, each frame without ground truth given its teacher map; a missing map is an error naming
    where it was looked for (checked here, before any training)."""
    frames = []
    for frame in seq.frames:
        if not frame.labelled:
            found = find_map(teacher, seq.name, frame.name)
            if found is None:
                raise DataError(teacher / seq.name / f"{frame.name}.png",
                                "no teacher map for this frame (looked for .png and .jpg)")
            frame = replace(frame, teacher=found)
        frames.append(frame)
    return frames


def name_of_test_set(dataset: str, split: str | None) -> str:
    """`<dataset>-<split>`, or `<dataset>` without a split: how a test source is named in outputs."""
    return dataset + (f"-{split}" if split else "")


def name_test_sets(specs: Sequence[Any]) -> list[str]:
    """One unique name per test source, `name_of_test_set` (`-2`, `-3`, ... appended to a repeat): the keys of
    metrics.json's `datasets` and the folders under `predictions/`."""
    names: list[str] = []
    for spec in map(SourceSpec.parse, specs):
        base = name_of_test_set(spec.dataset, spec.split)
        name, copy = base, 1
        while name in names:
            copy += 1
            name = f"{base}-{copy}"
        names.append(name)
    return names


@dataclass(frozen=True)
class EvalSet:
    """One test source with its unique name and its frames (labelled or not)."""

    name: str
    spec: SourceSpec
    entries: list[Entry]

    @property
    def labelled(self) -> list[Entry]:
        return [e for e in self.entries if e[0].frames[e[1]].labelled]


def _stable_fraction(*parts: object) -> float:
    digest = hashlib.sha1("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_train_val(sequences: list[SequenceRef], fraction: float, seed: int,
                    val_sequences: Sequence[str] | None = None) -> tuple[list[Entry], list[Entry]]:
    """Deterministic split: whole sequences for videos (no leakage between neighbouring frames),
    single frames for still-image sets. A lone video is split by frames. `val_sequences` names the held-out
    videos instead of the seed's hash (the same for every seed); still images keep the hash of `fraction`, but a
    named video read as still images is left out of both (stage 1 on video frames never sees a held-out one)."""
    train: list[Entry] = []
    val: list[Entry] = []
    videos = [s for s in sequences if s.temporal]
    named = set(val_sequences or ())
    missing = sorted(named - {s.name for s in videos})
    if videos and missing:
        raise ValueError(f"data.val_sequences names videos the training sources do not hold: {', '.join(missing)} "
                         f"(they hold {', '.join(sorted(s.name for s in videos)[:8])}, ...)")
    for seq in sequences:
        if not seq.temporal and seq.name in named:
            continue  # a held-out video read as still images (stage 1 on video frames): no stage may train on it
        by_frame = not seq.temporal or len(videos) < 2
        for i, frame in enumerate(seq.frames):
            if named and seq.temporal:
                held = seq.name in named
            else:
                key = (seed, seq.name, frame.name) if by_frame else (seed, seq.name)
                held = _stable_fraction(*key) < fraction
            (val if held else train).append((seq, i))
    return train, val


def frame_key(entry: Entry) -> tuple[str, str]:
    seq, index = entry
    return seq.name, seq.frames[index].name


def frame_file(entry: Entry) -> tuple[Path, int | None]:
    """The file a frame is read from (and its index in a video file): the same frame under any source's name."""
    frame = entry[0].frames[entry[1]]
    return frame.image, frame.video_index


def select_fusion_holdout(labelled: list[Entry], fraction: float, seed: int) -> list[Entry]:
    """A fixed, seeded share of the labelled frames of each training sequence, for the Eq. 8 fit.

    Per sequence with n >= 2 labelled frames, round(fraction * n) of them (at least 1, at most n - 1,
    so every sequence is represented in the fit and in training), chosen by a hash of (seed, sequence,
    frame): the same frames for the same data and seed, whatever the order or number of processes.
    Sequences with a single labelled frame keep it for training. Returned in the order of `labelled`.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the fusion hold-out fraction must lie in (0, 1), got {fraction!r}")
    by_sequence: dict[str, list[Entry]] = {}
    for entry in labelled:
        by_sequence.setdefault(entry[0].name, []).append(entry)
    held: set[tuple[str, str]] = set()
    for name, entries in by_sequence.items():
        if len(entries) < 2:
            continue
        count = min(len(entries) - 1, max(1, int(fraction * len(entries) + 0.5)))
        ranked = sorted(entries, key=lambda e: _stable_fraction(seed, "fusion-holdout", name, frame_key(e)[1]))
        held.update(frame_key(e) for e in ranked[:count])
    return [e for e in labelled if frame_key(e) in held]


def share_of(count: int, share: float) -> int:
    """round(share × count), halves rounded up (Python's `round` sends 0.5 to 0 and 2.5 to 2)."""
    return int(share * count + 0.5)


def seeded_draw(entries: list[Entry], count: int, *key: object) -> list[Entry]:
    """`count` of `entries` without replacement (all of them when `count` is larger), ranked by a hash of `key` and
    each frame: the same frames on every process and after a resume, untouched by the global RNG. Kept in the
    order of `entries`."""
    if count >= len(entries):
        return list(entries)
    ranked = sorted(range(len(entries)), key=lambda i: _stable_fraction(*key, *frame_key(entries[i])))
    chosen = set(ranked[:count])
    return [e for i, e in enumerate(entries) if i in chosen]


def labelled_still_images(specs: Sequence[Any]) -> list[Entry]:
    """Every frame with ground truth of `specs`, each as a still image (no partner frame, zero flow, no label
    budget) whatever its source: what stage 2 mixes in is the stage-1 image data, never a video cue."""
    entries: list[Entry] = []
    for seq in load_sequences(specs):
        still = SequenceRef(seq.name, seq.frames, temporal=False)
        entries.extend((still, i) for i, frame in enumerate(still.frames) if frame.labelled)
    return entries


def check_image_mix(image_mix: Any, sources: Sequence[Any]) -> float:
    if isinstance(image_mix, bool) or not isinstance(image_mix, (int, float)) or not 0 <= image_mix < math.inf:
        raise ValueError(f"data.image_mix must be a number >= 0 (still images per video frame; 0: off), "
                         f"got {image_mix!r}")
    if image_mix > 0 and not sources:
        raise ValueError(f"data.image_mix={image_mix} mixes the still images of data.images into stage 2, "
                         f"but data.images is empty")
    return float(image_mix)


def check_weak_share(weak_share: Any) -> float:
    if isinstance(weak_share, bool) or not isinstance(weak_share, (int, float)) or not 0 < weak_share <= 1:
        raise ValueError(f"weak.frames_per_epoch must be a number in (0, 1] (the share of the weak-labelled "
                         f"frames in each epoch), got {weak_share!r}")
    return float(weak_share)


def budget_keeps(seq: SequenceRef, index: int, label_every: int | None) -> bool:
    """Label budget, FBMS style: keep the manual label of every k-th labelled frame of a video. Still-image
    sets (stage 1) keep all of theirs: the budget models sparse video annotation, not fewer images."""
    if label_every is None or label_every <= 1 or not seq.temporal:
        return True
    labelled = [i for i, f in enumerate(seq.frames) if f.labelled]
    return index in labelled[::label_every]


def apply_label_budget(seq: SequenceRef, label_every: int | None) -> SequenceRef:
    """A copy of `seq` whose frames outside the label budget carry no ground truth."""
    frames = [f if budget_keeps(seq, i, label_every) else replace(f, masks=()) for i, f in enumerate(seq.frames)]
    return SequenceRef(seq.name, frames, temporal=seq.temporal)


class FrameDataset(Dataset):
    def __init__(self, entries: list[Entry], *, size: tuple[int, int], augment: SampleAugment | None = None,
                 augment_key: tuple = (), motion=None, labels=None, pairs: bool = True, tag: str | None = None,
                 full_size: bool = False):
        self.entries = entries
        self.size = tuple(size)
        self.augment = augment
        self.augment_key = augment_key  # hashed with a frame's name into the seed of its augmentation
        self.motion = motion
        self.labels = labels  # callable (seq, index) -> (mask or None, kind)
        self.pairs = pairs
        self.tag = tag  # the test set's name, as `dataset` of every item
        self.full_size = full_size  # also give the frame and mask as read (test scoring)

    def __len__(self) -> int:
        return len(self.entries)

    def partner_index(self, seq: SequenceRef, index: int) -> int:
        if not seq.temporal or len(seq.frames) == 1:
            return index
        return index + 1 if index + 1 < len(seq.frames) else index - 1

    def augment_seed(self, entry: Entry) -> int:
        """The same frame in the same epoch of the same run gets the same draw, whatever the workers or order."""
        return int(_stable_fraction(*self.augment_key, *frame_key(entry)) * 2**53)

    def __getitem__(self, i: int) -> dict:
        seq, index = self.entries[i]
        frame = seq.frames[index]
        rgb = read_frame(frame)
        h, w = rgb.shape[:2]
        mask, kind = self.labels(seq, index, (h, w)) if self.labels else (None, LABEL_NONE)
        maps = {"image": rgb}
        if self.pairs:
            partner = self.partner_index(seq, index)
            maps["next_image"] = read_frame(seq.frames[partner]) if partner != index else rgb
        maps["mask"] = np.asarray(mask, np.float32) if mask is not None else np.zeros((h, w), np.float32)
        if self.motion is not None:
            motion = self.motion.maps(seq, index)
            maps.update(pt=np.asarray(motion.pt, np.float32), flow_gray=np.asarray(motion.flow_gray, np.float32))
        if self.augment is not None:
            maps = self.augment(maps, seed=self.augment_seed((seq, index)))
        sample = resize(to_tensors(maps), self.size)
        sample.update(
            has_next=seq.temporal and len(seq.frames) > 1,
            labelled=mask is not None,
            label_kind=kind,
            sequence=seq.name,
            name=frame.name,
            index=index,
            orig_size=torch.tensor([h, w]),
        )
        if self.tag is not None:
            sample["dataset"] = self.tag
        if self.full_size:
            sample.update(frame_full=rgb, mask_full=mask)
        return sample


def collate_eval(samples: list[dict]) -> dict:
    """`default_collate`, except the original-size frames and masks: their sizes differ, so they stay lists."""
    ragged = {key: [s[key] for s in samples] for key in FULL_SIZE_KEYS if key in samples[0]}
    batch = default_collate([{k: v for k, v in s.items() if k not in ragged} for s in samples])
    return {**batch, **ragged}


class ShardSampler(DistributedSampler):
    """Rank r of W takes frames r, r+W, r+2W, ... of each consecutive set: every frame exactly once over
    all ranks (shards may differ by one frame; nothing is padded) and every rank holds frames of every set
    of at least W frames. Lightning keeps a `DistributedSampler` it is given."""

    def __init__(self, dataset: Dataset, set_sizes: Sequence[int], *, num_replicas: int, rank: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
        starts = np.cumsum([0, *set_sizes[:-1]])
        self.indices = [int(start) + i for start, size in zip(starts, set_sizes)
                        for i in range(rank, size, num_replicas)]
        self.num_samples = len(self.indices)
        self.total_size = int(sum(set_sizes))

    def __iter__(self):
        return iter(self.indices)


class SaliencyDataModule(L.LightningDataModule):
    """Merges `train` sources (val carved out deterministically unless `val` is given) and `test` sources.

    Args are plain lists of dicts `{dataset, root, split}` so the whole thing is a Hydra config.
    `motion` is a MotionProvider (or None for variants that use no motion cue). `mix_images` (sources like
    `train`) and `image_mix` add still images to every training epoch, `image_mix` of them per video frame of
    the epoch; `weak_share` is the share of the weak-labelled frames each epoch draws (`epoch_train_entries`).
    `augment` (`data.augment`, augment.py) augments training frames only, each with a draw hashed from (seed,
    epoch, frame).
    """

    def __init__(self, *, train: Sequence[Any] = (), val: Sequence[Any] = (), test: Sequence[Any] = (),
                 size: Sequence[int] = (128, 224), batch_size: int = 4, num_workers: int = 0,
                 val_fraction: float = 0.2, augment: dict | None = None, label_every: int | None = None,
                 motion=None, seed: int = 0, val_sequences: Sequence[str] | None = None,
                 mix_images: Sequence[Any] = (), image_mix: float = 0.0, weak_share: float = 1.0):
        super().__init__()
        self.train_specs, self.val_specs, self.test_specs = list(train), list(val), list(test)
        self.mix_specs = list(mix_images)
        self.image_mix = check_image_mix(image_mix, self.mix_specs)
        self.weak_share = check_weak_share(weak_share)
        self.size = (int(size[0]), int(size[1]))
        self.batch_size = batch_size
        self.num_workers = num_workers
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
        self.val_fraction = val_fraction
        self.augmenter = build_augmenter(augment, self.size)  # None: training frames are not augmented
        self.label_every = label_every
        self.motion = motion
        self.seed = seed
        self.val_sequences = list(val_sequences) if val_sequences else None
        self.weak_labels_expected = False  # set by WeakLabelRefresh before the optimizer's schedule is planned
        self.weak_store = None
        self.weak_round: int | None = None
        self.weak_frames: set[tuple[str, str]] = set()
        self.fusion_holdout: set[tuple[str, str]] = set()
        self.train_entries: list[Entry] = []
        self.val_entries: list[Entry] = []
        self.mix_entries: list[Entry] = []  # the still images an epoch draws from (`image_mix`)
        self.test_entries: list[Entry] = []
        self.test_sets: list[EvalSet] = []
        self._prepared = False

    # -- set-up ---------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        self.read_sources()
        if self.trainer is not None and not self.labelled_val_entries():
            # Nothing to validate on (val_fraction=0 and no `val` sources, as the paper trains): no
            # validation loop, rather than one that warns about an empty loader.
            self.trainer.limit_val_batches = 0

    def read_sources(self) -> None:
        """Index every source once: the train/val split and the test sets."""
        if self._prepared:
            return
        if self.train_specs:
            train_seqs = load_sequences(self.train_specs)
            if self.val_specs:
                self.train_entries = [(s, i) for s in train_seqs for i in range(len(s.frames))]
                self.val_entries = [(s, i) for s in load_sequences(self.val_specs) for i in range(len(s.frames))]
            else:
                self.train_entries, self.val_entries = split_train_val(train_seqs, self.val_fraction, self.seed,
                                                                       self.val_sequences)
            if self.image_mix > 0:
                self.mix_entries = self.read_mix_images()
        for name, spec in zip(name_test_sets(self.test_specs), map(SourceSpec.parse, self.test_specs)):
            entries = [(s, i) for s in load_sequences([spec]) for i in range(len(s.frames))]
            self.test_sets.append(EvalSet(name, spec, entries))
        self.test_entries = [e for test_set in self.test_sets for e in test_set.entries]
        self._prepared = True

    def read_mix_images(self) -> list[Entry]:
        """All labelled frames of `mix_images` (not split: validation is stage 2's own), none of a validation frame."""
        entries = labelled_still_images(self.mix_specs)
        roots = ", ".join(str(SourceSpec.parse(s).root) for s in self.mix_specs)
        if not entries:
            raise DataError(roots, "data.image_mix > 0 but data.images hold no frame with ground truth")
        validating = {frame_file(e) for e in self.val_entries}
        shared = [frame_key(e) for e in entries if frame_file(e) in validating]
        if shared:
            raise DataError(roots, f"data.images hold {len(shared)} validation frame(s) (e.g. {shared[0]}): "
                                   f"data.image_mix would train on them")
        return entries

    # -- labels -----------------------------------------------------------------------------------
    def manual_label(self, seq: SequenceRef, index: int) -> bool:
        return seq.frames[index].labelled and budget_keeps(seq, index, self.label_every)

    def train_label(self, seq: SequenceRef, index: int, shape: tuple[int, int]):
        if self.manual_label(seq, index):
            return read_mask(seq.frames[index], shape), LABEL_MANUAL
        if seq.frames[index].teacher is not None:
            return read_soft_map(seq.frames[index].teacher, shape), LABEL_TEACHER
        key = (seq.name, seq.frames[index].name)
        if key in self.weak_frames:
            # The weak label with its confidence (>= 0.5 foreground): the loss decides how much of it to use.
            return _fit_mask(self.weak_store.read_confidence(self.weak_round, *key), shape), LABEL_WEAK
        return None, LABEL_NONE

    @staticmethod
    def eval_label(seq: SequenceRef, index: int, shape: tuple[int, int]):
        mask = read_mask(seq.frames[index], shape)
        return mask, (LABEL_MANUAL if mask is not None else LABEL_NONE)

    def use_weak_labels(self, store, round_: int | None) -> None:
        """Serve `store`'s labels of `round_` to frames without a manual label (from the next epoch)."""
        self.weak_store, self.weak_round = store, round_
        self.weak_frames = set(store.frames(round_)) if store is not None and round_ is not None else set()

    def set_fusion_holdout(self, entries: list[Entry]) -> None:
        """Keep these manual frames out of the loss (the weak-label fit set); an empty list trains on all."""
        keys = {frame_key(e) for e in entries}
        stray = sorted(keys - {frame_key(e) for e in self.labelled_train_entries()})
        if stray:
            raise ValueError(f"only manually labelled training frames can be held out, not {stray[:3]}")
        self.fusion_holdout = keys

    def labelled_val_entries(self) -> list[Entry]:
        return [e for e in self.val_entries if e[0].frames[e[1]].labelled]

    def labelled_train_entries(self) -> list[Entry]:
        """Training frames with a manual label (held-out ones included)."""
        return [e for e in self.train_entries if self.manual_label(*e)]

    def fusion_holdout_entries(self) -> list[Entry]:
        return [e for e in self.train_entries if frame_key(e) in self.fusion_holdout]

    def unlabelled_train_entries(self) -> list[Entry]:
        return [e for e in self.train_entries if not self.manual_label(*e)]

    def active_train_entries(self) -> list[Entry]:
        """Frames that carry a label this epoch (manual and not held out, or weak from the current round): every
        frame an epoch may train on. `epoch_train_entries` is what one epoch does train on."""
        return [e for e in self.train_entries if (frame_key(e) not in self.fusion_holdout and self.manual_label(*e))
                or frame_key(e) in self.weak_frames or e[0].frames[e[1]].teacher is not None]

    def active_by_label(self) -> tuple[list[Entry], list[Entry]]:
        """The active training frames split into those with a manual label and those with a weak one."""
        active = self.active_train_entries()
        return [e for e in active if self.manual_label(*e)], [e for e in active if not self.manual_label(*e)]

    def epoch_draw_sizes(self, manual: int, weak: int) -> tuple[int, int]:
        """How many weak-labelled frames (`weak_share` of `weak`) and still images (`image_mix` per video frame
        drawn, at most all of them) an epoch with `manual` and `weak` active frames trains on."""
        drawn_weak = share_of(weak, self.weak_share)
        return drawn_weak, min(len(self.mix_entries), share_of(manual + drawn_weak, self.image_mix))

    def epoch_train_entries(self, epoch: int) -> list[Entry]:
        """The frames epoch `epoch` trains on: every active manual frame, a seeded share of the weak-labelled
        ones and the mixed still images, both drawn anew each epoch from (seed, epoch)."""
        manual, weak = self.active_by_label()
        weak_count, image_count = self.epoch_draw_sizes(len(manual), len(weak))
        return (manual + seeded_draw(weak, weak_count, self.seed, "weak-share", epoch)
                + seeded_draw(self.mix_entries, image_count, self.seed, "image-mix", epoch))

    def scheduled_train_frames(self) -> int:
        """The frames of a training epoch, for planning a learning-rate schedule before the first epoch. When weak
        labels are to come, every frame without ground truth counts as weak-labelled (each round labels them all)
        and the weak-label fit's held-out frames, not chosen yet, as manual: an upper bound, so the schedule ends
        a little above its last value. The count is the same for every epoch; only which frames changes."""
        manual, weak = self.active_by_label()
        weak_total = len(self.unlabelled_train_entries()) if self.weak_labels_expected else len(weak)
        return len(manual) + sum(self.epoch_draw_sizes(len(manual), weak_total))

    def train_sources_label(self) -> str:
        """The training data's root folders, for error messages."""
        return ", ".join(str(SourceSpec.parse(s).root) for s in self.train_specs)

    # -- loaders ----------------------------------------------------------------------------------
    def dataset(self, entries: list[Entry], *, train: bool = False, epoch: int = 0) -> FrameDataset:
        """Training frames are augmented (`data.augment`), each frame with a draw of its own for each epoch."""
        return FrameDataset(entries, size=self.size, augment=self.augmenter if train else None,
                            augment_key=(self.seed, "augment", epoch), motion=self.motion,
                            labels=self.train_label if train else self.eval_label)

    def loader(self, dataset: Dataset, *, shuffle: bool) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          persistent_workers=False, drop_last=False)

    def train_dataloader(self) -> DataLoader:
        """The current epoch's frames (`epoch_train_entries`; Lightning rebuilds this loader every epoch)."""
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        entries = self.epoch_train_entries(epoch)
        if not entries:
            raise DataError(self.train_sources_label(),
                            "no labelled training frame (check the sources, split and label budget)")
        self.log_epoch_draw(epoch)
        return self.loader(self.dataset(entries, train=True, epoch=epoch), shuffle=True)

    def log_epoch_draw(self, epoch: int) -> None:
        """One line per epoch on what the draws took, when there are draws (rank 0 only)."""
        drawing = self.image_mix > 0 or self.weak_share < 1
        if not drawing or (self.trainer is not None and not self.trainer.is_global_zero):
            return
        manual, weak = self.active_by_label()
        weak_count, image_count = self.epoch_draw_sizes(len(manual), len(weak))
        log.info("epoch %d trains on %d manual frames, %d of %d weak-labelled frames, %d of %d still images",
                 epoch, len(manual), weak_count, len(weak), image_count, len(self.mix_entries))

    def val_dataloader(self) -> DataLoader:
        return self.loader(self.dataset(self.labelled_val_entries()), shuffle=False)

    @property
    def test_set_names(self) -> list[str]:
        return name_test_sets(self.test_specs)

    def test_dataloader(self) -> DataLoader:
        """Every labelled frame of every test set, tagged with its set, at the network size and as read."""
        if not self.test_sets:
            raise ValueError("no test source given (`test=[...]`)")
        for test_set in self.test_sets:
            if not test_set.labelled:
                raise DataError(test_set.spec.root, f"test set {test_set.name} has no frame with ground truth")
        dataset = self.test_sets_dataset(labelled_only=True)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=False, sampler=self.test_sampler(dataset),
                          num_workers=self.num_workers, persistent_workers=False, collate_fn=collate_eval)

    def test_sampler(self, dataset: ConcatDataset) -> ShardSampler | None:
        """Under DDP each test frame is scored once (`ShardSampler`); None (one process) otherwise."""
        kwargs = self.trainer.distributed_sampler_kwargs if self.trainer is not None else None
        if not kwargs:
            return None
        world = kwargs["num_replicas"]
        for test_set, part in zip(self.test_sets, dataset.datasets):
            # Every rank needs frames of every set: torchmetrics cannot gather an empty per-frame state.
            if len(part) < world:
                raise DataError(test_set.spec.root, f"test set {test_set.name} has {len(part)} frame(s) with "
                                                    f"ground truth, fewer than the {world} processes")
        return ShardSampler(dataset, [len(p) for p in dataset.datasets], num_replicas=world, rank=kwargs["rank"])

    def predict_dataloader(self) -> DataLoader:
        """Every frame of every test set, labelled or not, tagged with its set, at the network size and as read
        (`trainer.predict`)."""
        return DataLoader(self.test_sets_dataset(labelled_only=False), batch_size=self.batch_size, shuffle=False,
                          num_workers=self.num_workers, persistent_workers=False, collate_fn=collate_eval)

    def test_sets_dataset(self, *, labelled_only: bool) -> ConcatDataset:
        """The test sets' frames one set after another, each tagged with its set, at the network size and as read."""
        return ConcatDataset([FrameDataset(test_set.labelled if labelled_only else test_set.entries, size=self.size,
                                           motion=self.motion, labels=self.eval_label, tag=test_set.name,
                                           full_size=True)
                              for test_set in self.test_sets])


def _fit_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Weak labels are stored at training resolution; bring them to the frame size (nearest)."""
    if mask.shape == tuple(shape):
        return mask
    return cv2.resize(mask, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)

