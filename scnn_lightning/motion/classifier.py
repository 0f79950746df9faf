"""The salient-superpixel classifier S_j of Eq. 6 (paper §III-B): a three-layer neural network.

`RegionClassifier` bundles everything needed to score a frame's superpixels — the frozen truncated
backbone, the segmentation/feature parameters, the feature normalisation and the MLP — and is saved
as one self-contained torch file that loads with `weights_only=True`. Its `digest` (sha1 of the
file's content) enters the motion cache keys, so retraining invalidates cached priors.

Training: superpixels of labelled frames, label 1 when more than half of the region's pixels are
foreground; class-balanced BCE (weights as in the paper's Eq. 3: α = fraction of negatives for the
positives, 1 − α for the negatives) because moving objects cover few superpixels.

The deep part of D(r) (3 × 512 values at full width) is reduced to `deep_dims` whitened principal
components fitted on the training regions before the MLP. Labelled video frames are few (hundreds),
and with 1.5k raw inputs the MLP fits the appearance of the training objects instead of their motion:
on held-out synthetic clips, scores inside moving objects averaged 0.30 with raw features and 0.66
with 32 components (0.06 and 0.10 outside).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from scnn_lightning.data.records import DatasetIndex, SequenceRef
from scnn_lightning.errors import DataError
from scnn_lightning.models.vgg import VGG16Backbone
from scnn_lightning.motion.regions import (DEFAULT_DEPTH, FLOW_STATS, FrameRegions, RegionFeatureExtractor,
                                           region_labels, truncate_backbone)
from scnn_lightning.motion.superpixels import SegmentationLevel
from scnn_lightning.utils import atomic_path

FILE_FORMAT = "scnn-lightning/region-classifier/1"


class RegionMLP(nn.Module):
    """Input → hidden → hidden → one logit: the paper's "three-layer neural network"."""

    def __init__(self, in_features: int, hidden: tuple[int, int] = (256, 64), dropout: float = 0.3):
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, hidden[0]), nn.ReLU(),
                                 nn.Dropout(dropout), nn.Linear(hidden[0], hidden[1]), nn.ReLU(),
                                 nn.Linear(hidden[1], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[:, 0]


@dataclass
class FeatureTransform:
    """Standardise every feature, then replace the first `projection.shape[0]` (deep) ones by their
    whitened principal components; the motion statistics pass through standardised."""

    mean: torch.Tensor
    std: torch.Tensor
    projection: torch.Tensor  # (n_deep, deep_dims)

    @classmethod
    def fit(cls, features: torch.Tensor, *, n_deep: int, deep_dims: int = 32) -> "FeatureTransform":
        mean, std = features.mean(0), features.std(0).clamp_min(1e-6)
        z = (features[:, :n_deep] - mean[:n_deep]) / std[:n_deep]
        _, sv, vt = torch.linalg.svd(z, full_matrices=False)
        k = min(deep_dims, len(sv))
        scale = (sv[:k] / max(len(z) - 1, 1) ** 0.5).clamp_min(1e-6)
        return cls(mean, std, (vt[:k].T / scale).contiguous())

    @property
    def out_features(self) -> int:
        return self.projection.shape[1] + len(self.mean) - self.projection.shape[0]

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        z = (features - self.mean) / self.std
        n_deep = self.projection.shape[0]
        return torch.cat([z[:, :n_deep] @ self.projection, z[:, n_deep:]], 1)


@dataclass
class RegionClassifier:
    extractor: RegionFeatureExtractor
    mlp: RegionMLP
    transform: FeatureTransform
    backbone_width: float
    flow: str  # the flow backend it was trained with (a different one shifts the motion statistics)

    @classmethod
    def untrained(cls, backbone: VGG16Backbone, *, depth: int = DEFAULT_DEPTH, flow: str = "dis",
                  **extractor_params) -> "RegionClassifier":
        """A randomly initialised MLP on `backbone`'s features: same cost as a trained one (benchmarks, tests)."""
        extractor = RegionFeatureExtractor.from_backbone(backbone, depth=depth, **extractor_params)
        n_deep, deep_dims = 3 * backbone.block_channels[depth - 1], 32
        dim = n_deep + len(FLOW_STATS)
        transform = FeatureTransform(torch.zeros(dim), torch.ones(dim), torch.randn(n_deep, deep_dims) / n_deep ** 0.5)
        return cls(extractor, RegionMLP(transform.out_features), transform, backbone.width, flow)

    @torch.no_grad()
    def predict(self, features: np.ndarray) -> np.ndarray:
        """P(salient) per region, (n,) float32 in [0, 1]."""
        self.mlp.eval()
        return torch.sigmoid(self.mlp(self.transform(torch.from_numpy(features)))).numpy().astype(np.float32)

    def score_levels(self, regions: FrameRegions) -> list[np.ndarray]:
        """The scores of every level's regions, from one pass of the MLP over all of them."""
        scores = self.predict(np.concatenate(regions.features))
        return np.split(scores, np.cumsum([len(f) for f in regions.features])[:-1])

    # ------------------------------------------------------------ the file
    def _payload(self) -> dict:
        return {"format": FILE_FORMAT, "mlp": self.mlp.state_dict(),
                "hidden": [self.mlp.net[1].out_features, self.mlp.net[4].out_features],
                "in_features": self.mlp.net[1].in_features, "feature_mean": self.transform.mean,
                "feature_std": self.transform.std, "projection": self.transform.projection,
                "trunk": self.extractor.trunk.state_dict(), "backbone_width": self.backbone_width,
                "extractor": self.extractor.params, "flow": self.flow}

    @property
    def digest(self) -> str:
        return payload_digest(self._payload())

    def save(self, path: str | Path) -> None:
        payload = self._payload()
        payload["digest"] = payload_digest(payload)
        # Through a file object: given a path, torch.save records the (random) temporary name in the archive,
        # and the same classifier would give different bytes on every save.
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            torch.save(payload, f)

    @classmethod
    def load(cls, path: str | Path) -> "RegionClassifier":
        path = Path(path)
        if not path.is_file():
            raise DataError(path, "region classifier not found; train one with `python -m "
                                  "scnn_lightning.motion.train_classifier --dataset NAME --root ROOT --out FILE`")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for corrupt or foreign files
            raise DataError(path, f"cannot be read as a region classifier ({type(exc).__name__}: {exc})") from exc
        if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT:
            raise DataError(path, f"not a region classifier file (expected format {FILE_FORMAT!r})")
        if payload.get("digest") != payload_digest({k: v for k, v in payload.items() if k != "digest"}):
            raise DataError(path, "content does not match its stored digest (corrupt or edited file)")
        ex = payload["extractor"]
        trunk = truncate_backbone(VGG16Backbone(width=payload["backbone_width"]), ex["depth"])
        trunk.load_state_dict(payload["trunk"])
        extractor = RegionFeatureExtractor(
            trunk, depth=ex["depth"], long_side=ex["long_side"], box_scale=ex["box_scale"],
            levels=tuple(SegmentationLevel(*lv) for lv in ex["levels"]), min_motion=ex["min_motion"])
        mlp = RegionMLP(payload["in_features"], tuple(payload["hidden"]))
        mlp.load_state_dict(payload["mlp"])
        transform = FeatureTransform(payload["feature_mean"], payload["feature_std"], payload["projection"])
        return cls(extractor, mlp, transform, payload["backbone_width"], payload["flow"])


def payload_digest(payload: dict) -> str:
    """sha1 over every tensor's bytes and every other value's JSON, in key order."""
    h = hashlib.sha1()

    def feed(key: str, value) -> None:
        h.update(key.encode())
        if isinstance(value, torch.Tensor):
            h.update(value.detach().cpu().contiguous().numpy().tobytes())
        elif isinstance(value, dict):
            for k in sorted(value):
                feed(f"{key}.{k}", value[k])
        else:
            h.update(json.dumps(value, sort_keys=True).encode())

    for k in sorted(payload):
        feed(k, payload[k])
    return h.hexdigest()


# ---------------------------------------------------------------- training

def collect_regions(index: DatasetIndex, extractor: RegionFeatureExtractor, *, flow: str = "dis",
                    max_frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features and majority-overlap labels of every superpixel (all levels) of the labelled frames."""
    from scnn_lightning.data.io import read_frame, read_mask
    from scnn_lightning.motion.flow import flow_for_frame

    jobs = [(s, i) for s in index.sequences if s.temporal and len(s.frames) > 1
            for i, f in enumerate(s.frames) if f.labelled]
    if max_frames is not None:
        jobs = jobs[:: max(1, len(jobs) // max_frames)][:max_frames]
    if not jobs:
        raise DataError(index.root, "no labelled frames in video sequences to train the region classifier on")
    feats, labels = [], []
    for seq, i in tqdm(jobs, desc="region features", unit="frame"):
        image = read_frame(seq.frames[i])
        mask = read_mask(seq.frames[i], image.shape[:2])
        regions = extractor.describe(image, flow_for_frame(seq, i, flow))
        small = cv2.resize(mask.astype(np.uint8), regions.labels[0].shape[::-1], interpolation=cv2.INTER_NEAREST)
        for lab, f in zip(regions.labels, regions.features):
            feats.append(f)
            labels.append(region_labels(lab, small))
    return np.concatenate(feats), np.concatenate(labels)


def fit_mlp(features: np.ndarray, labels: np.ndarray, *, n_deep: int, deep_dims: int = 32,
            hidden: tuple[int, int] = (256, 64), epochs: int = 20, lr: float = 1e-3, weight_decay: float = 1e-4,
            batch_size: int = 256, seed: int = 0, balanced: bool = True) -> tuple[RegionMLP, FeatureTransform]:
    """Fit the feature transform, then train the MLP with class-balanced BCE (plain BCE with `balanced=False`)."""
    torch.manual_seed(seed)
    transform = FeatureTransform.fit(torch.from_numpy(features), n_deep=n_deep, deep_dims=deep_dims)
    x = transform(torch.from_numpy(features))
    y = torch.from_numpy(labels)
    alpha = float(1 - y.mean()) if balanced else 0.5  # fraction of negatives, as in Eq. 3
    mlp = RegionMLP(x.shape[1], hidden)
    opt = torch.optim.Adam(mlp.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    mlp.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(batch_size):
            yb = y[idx]
            weight = alpha * yb + (1 - alpha) * (1 - yb)
            loss = nn.functional.binary_cross_entropy_with_logits(mlp(x[idx]), yb, weight=weight,
                                                                  reduction="sum") / weight.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return mlp.eval(), transform


def train_region_classifier(index: DatasetIndex, *, backbone: VGG16Backbone, out: str | Path | None = None,
                            flow: str = "dis", depth: int = DEFAULT_DEPTH, epochs: int = 20, deep_dims: int = 32,
                            hidden: tuple[int, int] = (256, 64), max_frames: int | None = None,
                            seed: int = 0, **extractor_params) -> RegionClassifier:
    """Train S_j of Eq. 6 on the labelled frames of `index`; saved atomically to `out` when given."""
    extractor = RegionFeatureExtractor.from_backbone(backbone, depth=depth, **extractor_params)
    features, labels = collect_regions(index, extractor, flow=flow, max_frames=max_frames)
    positives = int(labels.sum())
    if positives == 0 or positives == len(labels):
        raise DataError(index.root, f"region labels are all {'negative' if positives == 0 else 'positive'} "
                                    f"({len(labels)} regions); the classifier needs both classes")
    n_deep = 3 * backbone.block_channels[depth - 1]
    mlp, transform = fit_mlp(features, labels, n_deep=n_deep, deep_dims=deep_dims, hidden=hidden, epochs=epochs,
                             seed=seed)
    clf = RegionClassifier(extractor, mlp, transform, backbone.width, flow)
    if out is not None:
        clf.save(out)
    return clf


def index_of_entries(entries: Sequence[tuple[SequenceRef, int]], root: str | Path) -> DatasetIndex:
    """The sequences of `entries` (a datamodule's training frames), ground truth kept only on the listed
    frames. The other frames stay in place, because a frame's flow needs its neighbours, but teach
    nothing: validation frames of a sequence split by frames never reach the classifier."""
    chosen: dict[int, tuple[SequenceRef, set[int]]] = {}
    for seq, i in entries:
        chosen.setdefault(id(seq), (seq, set()))[1].add(i)
    sequences = [SequenceRef(seq.name, [f if i in keep else replace(f, masks=()) for i, f in enumerate(seq.frames)],
                             temporal=seq.temporal) for seq, keep in chosen.values()]
    return DatasetIndex("training entries", Path(root), sequences)


# How long the other ranks wait for rank 0's classifier: on the paper's data training takes tens of
# minutes, longer than torch's default 30-minute collective timeout.
RANK_ZERO_WAIT = timedelta(hours=12)
POLL_SECONDS = 2.0  # how often a rank without a process group looks for the file


def train_on_rank_zero(path: str | Path, train: Callable[[Path], object], *,
                       wait: timedelta = RANK_ZERO_WAIT) -> Path:
    """Make sure the classifier file `path` exists on every rank, trained once.

    Rank 0 calls `train(path)` when the file is missing (`RegionClassifier.save` writes atomically, so
    no rank reads half a file); every other rank waits at a barrier, or, when no process group exists
    yet (ranks started by torchrun or SLURM), until the file appears; then every rank loads that file.
    """
    import torch.distributed as dist
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    path = Path(path)
    grouped = dist.is_available() and dist.is_initialized()
    rank = dist.get_rank() if grouped else rank_zero_only.rank  # the launcher's environment
    if rank == 0 and not path.is_file():
        train(path)
    if grouped:
        group = dist.new_group(backend="gloo", timeout=wait)  # the default group's timeout may be too short
        dist.barrier(group=group)
        dist.destroy_process_group(group)
    elif rank != 0:
        _wait_for_file(path, wait, rank)
    if not path.is_file():
        raise DataError(path, f"rank {rank}: the region classifier was not written by rank 0")
    return path


def _wait_for_file(path: Path, wait: timedelta, rank: int) -> None:
    deadline = time.monotonic() + wait.total_seconds()
    while not path.is_file():
        if time.monotonic() > deadline:
            raise DataError(path, f"rank {rank} waited {wait} for rank 0 to write the region classifier")
        time.sleep(POLL_SECONDS)
