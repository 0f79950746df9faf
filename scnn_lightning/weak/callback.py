"""`WeakLabelRefresh`: the weak-label loop of Algorithm 1 (paper §III-C, Fig. 4) as a Lightning callback.

Before the first epoch it writes round 0: labels G0 fused from the saliency models alone, with
weights w0 fitted by Eq. 8 on the frames that have ground truth. After each epoch k it predicts the
training frames with the current network, adds that map as one more source, refits the weights,
thresholds the fused maps with Otsu (Eq. 7) and publishes round k+1, which the datamodule serves from
epoch k+1 (Lightning reloads the train loader at each epoch start, after this hook).

Under DDP every rank predicts its shard; each labelled frame's K×K Gram terms of Eq. 8 are gathered and
summed in frame order (so the sum, and hence the weights, are bit-identical for any number of ranks),
the weights solved on rank 0 and broadcast, the labels gathered and written once by rank 0; every rank
then reads the same published round, so all ranks train on byte-identical labels.

The round is updated in `on_train_epoch_end`; a ModelCheckpoint must save after it
(`save_on_train_epoch_end=True`), otherwise a checkpoint written at validation end records the round
the finished epoch trained on, and a resumed run would train the next epoch on stale labels.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from scnn_lightning.data.transforms import to_uint8_image
from scnn_lightning.errors import DataError
from scnn_lightning.weak.fusion import GramAccumulator, solve_simplex_qp, weak_label
from scnn_lightning.weak.sources import PREDICTION, build_sources
from scnn_lightning.weak.store import WeakLabelStore, labels_hash

QUALITY_FRAMES = 64  # labelled frames per rank on which each round's label IoU is reported


class WeakLabelRefresh(Callback):
    """Writes weak-label round 0 at fit start and round k+1 after every `every_n_epochs`-th epoch k into
    `root` (a `WeakLabelStore`), and points the trainer's datamodule at the newest round.

    `sources` are `build_sources` specs of the fused saliency models (the network's map is added by the
    callback itself). Needs `Trainer(reload_dataloaders_every_n_epochs=1)`.
    """

    def __init__(self, *, root: str, sources: list, every_n_epochs: int = 1):
        if not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be a positive integer, got {every_n_epochs!r}")
        self.root = str(root)
        self.source_specs = list(sources)
        self.every_n_epochs = every_n_epochs
        # checkpointed state (plain types only)
        self.round = -1
        self.weights: list[float] = []
        self.source_names: list[str] = []
        self.labels_hash = ""
        self._static_maps: dict[tuple[str, str], np.ndarray] = {}

    # -- checkpoint --------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"round": self.round, "weights": list(self.weights), "source_names": list(self.source_names),
                "labels_hash": self.labels_hash}

    def load_state_dict(self, state: dict) -> None:
        self.round = int(state["round"])
        self.weights = [float(w) for w in state["weights"]]
        self.source_names = list(state["source_names"])
        self.labels_hash = state["labels_hash"]

    # -- hooks ---------------------------------------------------------------------------------------
    def on_fit_start(self, trainer, pl_module) -> None:
        reload = trainer.reload_dataloaders_every_n_epochs
        if reload < 1 or self.every_n_epochs % reload:
            raise ValueError(f"WeakLabelRefresh(every_n_epochs={self.every_n_epochs}) needs the train loader "
                             f"rebuilt after each refresh: set Trainer(reload_dataloaders_every_n_epochs=1), "
                             f"got {reload}")
        self.store = WeakLabelStore(self.root)
        self.sources = build_sources(self.source_specs)  # built in a hook: ddp_spawn pickles callbacks
        if any(s.name == PREDICTION for s in self.sources):
            raise ValueError(f"weak.sources must not list '{PREDICTION}': the network's own map is added each round")
        if self.round >= 0:  # resumed: continue from the round the checkpoint was trained on
            self._verify_resumed_round()
            trainer.datamodule.use_weak_labels(self.store, self.round)
        else:
            self.refresh(trainer, pl_module, with_prediction=False)

    def _verify_resumed_round(self) -> None:
        """The round on disk (manifest and every label file) must be the one the checkpoint recorded."""
        manifest = self.store.manifest(self.round)
        on_disk = labels_hash({key: self.store.read_label(self.round, *key) for key in self.store.frames(self.round)})
        if manifest["labels_hash"] != self.labels_hash or on_disk != self.labels_hash:
            raise DataError(self.store.round_dir(self.round),
                            f"weak labels of round {self.round} differ from the ones this checkpoint was trained "
                            f"on (checkpoint hash {self.labels_hash[:12]}, manifest "
                            f"{manifest['labels_hash'][:12]}, files {on_disk[:12]}); restore them or start afresh")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self.refresh(trainer, pl_module, with_prediction=True)

    # -- one round of Algorithm 1 (steps 4-5) ---------------------------------------------------------
    def refresh(self, trainer, pl_module, *, with_prediction: bool) -> None:
        dm = trainer.datamodule
        rank, world = trainer.global_rank, trainer.world_size
        names = [s.name for s in self.sources] + ([PREDICTION] if with_prediction else [])
        was_training = pl_module.training
        pl_module.eval()
        try:
            terms = {}  # per labelled frame: its Eq. 8 Gram terms
            checks = []  # a few labelled frames to report the quality of this round's labels
            for maps, gts, keys in self._source_maps(dm, dm.labelled_train_entries()[rank::world], pl_module,
                                                     with_prediction):
                for i, key in enumerate(keys):
                    terms[key] = _frame_terms(maps[:, i], gts[i])
                room = max(0, QUALITY_FRAMES - len(checks))
                checks.extend(list(zip(maps.transpose(1, 0, 2, 3), gts))[:room])
            weights = self._solve(trainer, _gather(terms, world), len(names))
            iou = [_iou(weak_label(maps, weights), gt) for maps, gt in checks]
            labels = {}
            for maps, _, keys in self._source_maps(dm, dm.unlabelled_train_entries()[rank::world], pl_module,
                                                   with_prediction):
                for i, key in enumerate(keys):
                    labels[key] = weak_label(maps[:, i], weights)
        finally:
            pl_module.train(was_training)
        labels, iou = _gather(labels, world), _gather({"iou": iou}, world)["iou"]
        next_round = self.round + 1
        stats = {"labels": len(labels), "foreground": float(np.mean([m.mean() for m in labels.values()]))
                 if labels else 0.0, "iou_on_labelled": float(np.mean(iou)) if iou else None,
                 "epoch": trainer.current_epoch}
        if rank == 0:
            self.store.write_round(next_round, labels, weights=dict(zip(names, map(float, weights))), stats=stats)
        trainer.strategy.barrier("weak_labels_written")
        self.round, self.weights, self.source_names = next_round, [float(w) for w in weights], names
        self.labels_hash = self.store.labels_hash(next_round)
        dm.use_weak_labels(self.store, next_round)
        self._log(trainer, names, weights, stats)

    def _source_maps(self, dm, entries, pl_module, with_prediction):
        """Yield (maps (K, B, H, W), gts (B, H, W), keys) for `entries`, batch by batch, at training size."""
        if not entries:
            return
        frames = {(seq.name, seq.frames[i].name): seq.frames[i] for seq, i in entries}
        loader = DataLoader(dm.dataset(entries), batch_size=dm.batch_size, shuffle=False)
        with torch.no_grad():
            for batch in loader:
                batch = {k: v.to(pl_module.device) if torch.is_tensor(v) else v for k, v in batch.items()}
                keys = list(zip(batch["sequence"], batch["name"]))
                # (K_static, B, H, W)
                maps = np.stack([self._static(frames[key], img) for img, key in zip(batch["image"], keys)], axis=1)
                if with_prediction:
                    pred = pl_module.saliency(batch).float().cpu().numpy()
                    maps = np.concatenate([maps, pred[None]], axis=0)
                yield maps.astype(np.float32), batch["mask"][:, 0].cpu().numpy().astype(np.uint8), keys

    def _static(self, frame, img) -> np.ndarray:
        """Maps of the external / classical models; they never change, so compute each once."""
        key = (frame.sequence, frame.name)
        if key not in self._static_maps:
            rgb = to_uint8_image(img)
            self._static_maps[key] = np.stack([s.map_for(frame, rgb) for s in self.sources]).astype(np.float32)
        return self._static_maps[key]

    def _solve(self, trainer, terms: dict, k: int) -> np.ndarray:
        """Eq. 8 on the Gram terms of every labelled frame; solved once on rank 0, broadcast to every rank.

        The terms are summed in sorted frame order, never per shard: float sums depend on their order,
        and the weights must not depend on how frames were split across ranks."""
        total = np.zeros(k * k + k + 1)
        for key in sorted(terms):
            total += terms[key]
        gram, cross, pixels = total[:k * k].reshape(k, k), total[k * k:-1], total[-1]
        if trainer.global_rank == 0:
            if pixels == 0:
                warnings.warn("no labelled training frame to fit the fusion weights (Eq. 8); using equal weights")
                weights = np.full(k, 1.0 / k)
            else:
                weights = solve_simplex_qp(gram, cross)
        else:
            weights = np.zeros(k)
        weights = trainer.strategy.broadcast(torch.tensor(weights, dtype=torch.float64), src=0)
        return np.asarray(weights, dtype=np.float64)

    def _log(self, trainer, names, weights, stats) -> None:
        metrics = {f"weak/w_{n}": float(w) for n, w in zip(names, weights)}
        metrics.update({f"weak/{k}": float(v) for k, v in stats.items() if v is not None})
        metrics["weak/round"] = float(self.round)
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)


def _frame_terms(maps: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """One frame's share of Eq. 8, flattened: [A = S Sᵀ (K×K), b = S G (K), pixel count]."""
    acc = GramAccumulator(maps.shape[0])
    acc.add(maps, gt)
    return np.concatenate([acc.gram.ravel(), acc.cross, [acc.pixels]])


def _iou(label: np.ndarray, gt: np.ndarray) -> float:
    label, gt = label.astype(bool), gt > 0
    union = (label | gt).sum()
    return float((label & gt).sum() / union) if union else 1.0


def _gather(obj: dict, world: int) -> dict:
    """Merge a per-rank dict on every rank (lists are concatenated)."""
    if world == 1 or not dist.is_available() or not dist.is_initialized():
        return obj
    parts: list = [None] * world
    dist.all_gather_object(parts, obj)
    merged: dict = {}
    for part in parts:
        for key, value in part.items():
            merged[key] = merged.get(key, []) + value if isinstance(value, list) else value
    return merged
