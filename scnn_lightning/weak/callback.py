"""`WeakLabelRefresh`: the weak-label loop of Algorithm 1 (paper §III-C, Fig. 4) as a Lightning callback.

Before the first epoch it writes round 0: labels G0 fused from the saliency models alone, with
weights w0 fitted by Eq. 8 on the frames that have ground truth. After each epoch k it predicts the
training frames with the current network, adds that map as one more source, refits the weights,
thresholds the fused maps with Otsu (Eq. 7) and publishes round k+1, which the datamodule serves from
epoch k+1 (Lightning reloads the train loader at each epoch start, after this hook).

Under DDP every rank predicts its shard; the K×K Gram matrices of Eq. 8 are summed across ranks, the
weights solved on rank 0 and broadcast, the labels gathered and written once by rank 0; every rank
then reads the same published round, so all ranks train on byte-identical labels.
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
from scnn_lightning.weak.sources import build_sources
from scnn_lightning.weak.store import WeakLabelStore

PREDICTION = "prediction"
QUALITY_FRAMES = 64  # labelled frames per rank on which each round's label IoU is reported


class WeakLabelRefresh(Callback):
    def __init__(self, *, root: str, sources: list, every_n_epochs: int = 1):
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
        self.store = WeakLabelStore(self.root)
        self.sources = build_sources(self.source_specs)  # built in a hook: ddp_spawn pickles callbacks
        if self.round >= 0:  # resumed: continue from the round the checkpoint was trained on
            found = self.store.labels_hash(self.round)
            if found != self.labels_hash:
                raise DataError(self.store.round_dir(self.round),
                                "weak labels on disk differ from the ones this checkpoint was trained on")
            trainer.datamodule.use_weak_labels(self.store, self.round)
        else:
            self.refresh(trainer, pl_module, with_prediction=False)

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
            acc = GramAccumulator(len(names))
            checks = []  # a few labelled frames to report the quality of this round's labels
            for maps, gts, _ in self._source_maps(dm, dm.labelled_train_entries()[rank::world], pl_module,
                                                  with_prediction):
                acc.add(maps, gts)
                room = max(0, QUALITY_FRAMES - len(checks))
                checks.extend(list(zip(maps.transpose(1, 0, 2, 3), gts))[:room])
            weights = self._solve(trainer, acc, len(names))
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
                maps = np.stack([self._static(frames[key], img) for img, key in zip(batch["image"], keys)], axis=1)  # (K_static, B, H, W)
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

    def _solve(self, trainer, acc: GramAccumulator, k: int) -> np.ndarray:
        """Eq. 8 on the Gram matrices summed over all ranks; solved once, broadcast to every rank."""
        stacked = torch.tensor(np.concatenate([acc.gram.ravel(), acc.cross, [acc.pixels]]), dtype=torch.float64)
        stacked = trainer.strategy.reduce(stacked, reduce_op="sum")
        gram, cross, pixels = stacked[:k * k].reshape(k, k).numpy(), stacked[k * k:-1].numpy(), float(stacked[-1])
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
