"""`WeakLabelRefresh`: the weak-label loop of Algorithm 1 (paper §III-C, Fig. 4) as a Lightning callback.

The paper: "we use the data with ground truth to learn the weights in Eq. 8, and these weights are used
to fuse those saliency maps without ground truth". Fitted on the very frames the network trains on,
the network's map looks perfect there and the fit says nothing about the frames it has to label; worse,
on those frames the class-balanced loss (Eq. 3) skews its probabilities, so Eq. 8 gives it a weight near
0 and every round's labels equal round 0's (GUIDE pitfall 13). So:

* Held-out fit. At fit start a fixed, seeded share (`holdout_fraction`) of the labelled frames of each
  training sequence is kept out of the loss (`select_fusion_holdout`); Eq. 8 is fitted on those frames
  only, and each round's label quality is measured on them. They stay the same for the whole run
  (checkpointed, verified on resume).
* Calibrated network map. The network's map enters Eq. 7/8 as σ(a·z + b) of its logit z, a Platt
  calibration fitted on the held-out frames each round (`fit.py`), which removes the class-balancing
  offset; the static sources' maps are used as they are.

Round 0 (before the first epoch) fuses the saliency models alone; after each `every_n_epochs`-th epoch k
the network's calibrated map joins them, the weights are refitted and round k+1 is published, which the
datamodule serves from epoch k+1 (Lightning reloads the train loader at each epoch start, after this
hook). No round follows the last epoch: no epoch would train on it (a run resumed to train longer makes
it when it starts). The network's map comes from the
weights being trained (`network="current"`, the paper) or from their running average (`"averaged"`, the
EMA of `stage2.ema_decay`: steadier from round to round). Each label file holds the label with its
confidence (`fusion.confidence_levels`), which the loss may use (`models.losses.WeakLoss`). Each round's
manifest.json records the weights, the solver and objective of Eq. 8, the calibration, the held-out frames
(a frame list of the store) and their label quality, how many label pixels changed since the last round, and
an oracle diagnostic (`oracle`): the labels' IoU against the hidden ground truth of the frames outside the
label budget, where the data has it (DAVIS train is fully annotated), by distance to the nearest labelled
frame. It is recorded to be read; nothing fits, chooses or stops on it.

Memory does not grow with the data: one round is three streamed passes (held-out frames: the Eq. 8 and
calibration sums; held-out frames: label quality; frames without ground truth: their labels), read by
`data.num_workers` DataLoader workers; static source maps come from a disk cache (`source_cache.py`).
Under DDP every rank streams its own shard, writes its own label files into the round's hidden folder,
and only fixed-size integer sums are reduced across ranks (exact, hence bit-identical to one process);
rank 0 solves Eq. 8, broadcasts the result, and after a barrier publishes the round (hash from the
files, manifest, atomic swap). Multi-node runs need `root` on a shared filesystem.

The round is updated in `on_train_epoch_end`; a ModelCheckpoint must save after it
(`save_on_train_epoch_end=True`), otherwise a checkpoint written at validation end records the round
the finished epoch trained on, and a resumed run would train the next epoch on stale labels.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, WeightAveraging

from scnn_lightning.data.datamodule import frame_key, select_fusion_holdout
from scnn_lightning.errors import DataError
from scnn_lightning.weak.fit import (
    LEVELS,
    FitStats,
    RoundScores,
    calibrated_levels,
    logit_bins,
    platt_calibration,
)
from scnn_lightning.weak.fusion import simplex_qp_solution, trust_by_distance, weak_confidence
from scnn_lightning.weak.propagated import PropagatedSource
from scnn_lightning.weak.source_cache import SourceMapCache, refresh_loader
from scnn_lightning.weak.sources import PREDICTION, build_sources
from scnn_lightning.weak.store import FOREGROUND, FRAME_LIST
from scnn_lightning.weak.store import WeakLabelStore

log = logging.getLogger(__name__)
NETWORKS = ("current", "averaged")
PROPAGATED_WEIGHTS = ("fit", "distance")


class WeakLabelRefresh(Callback):
    """Writes weak-label round 0 at fit start and round k+1 after every `every_n_epochs`-th epoch k into
    `root` (a `WeakLabelStore`), and points the trainer's datamodule at the newest round.

    `sources` are `build_sources` specs of the fused saliency models (the network's map is added by the
    callback itself). `holdout_fraction` and `seed` choose the held-out labelled frames; `cache_dir`
    keeps the classical and propagated sources' maps on disk (None: recompute them every round). `network`
    says which weights make the network's map: "current" or "averaged" (a `WeightAveraging` callback's,
    e.g. Lightning's EMAWeightAveraging). `propagated_weight` says how a `propagated` source is weighed on
    each frame: "fit" (Eq. 8's weight everywhere) or "distance" (`fusion.trust_by_distance`: from Eq. 8's
    weight at the held-out frames' distance to its labels up to 1 next to a label). Needs
    `Trainer(reload_dataloaders_every_n_epochs=1)`.
    """

    def __init__(self, *, root: str, sources: list, every_n_epochs: int = 1, holdout_fraction: float = 0.25,
                 seed: int = 0, cache_dir: str | None = None, network: str = "current",
                 propagated_weight: str = "fit"):
        if not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be a positive integer, got {every_n_epochs!r}")
        if network not in NETWORKS:
            raise ValueError(f"weak.network must be one of {', '.join(NETWORKS)}, got {network!r}")
        self.network = network
        if propagated_weight not in PROPAGATED_WEIGHTS:
            raise ValueError(f"weak.propagated_weight must be one of {', '.join(PROPAGATED_WEIGHTS)}, "
                             f"got {propagated_weight!r}")
        self.propagated_weight = propagated_weight
        if not 0.0 < holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must lie in (0, 1), got {holdout_fraction!r}")
        self.root = str(root)
        self.source_specs = list(sources)
        self.every_n_epochs = every_n_epochs
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        # checkpointed state (plain types only)
        self.round = -1
        self.epochs = 0  # training epochs finished (a resume that trains longer makes the round they skipped)
        self.weights: list[float] = []
        self.source_names: list[str] = []
        self.labels_hash = ""
        self.holdout_fraction = float(holdout_fraction)
        self.seed = int(seed)
        self.holdout_hash = ""

    # -- checkpoint --------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"round": self.round, "epochs": self.epochs, "weights": list(self.weights),
                "source_names": list(self.source_names),
                "labels_hash": self.labels_hash, "holdout_fraction": self.holdout_fraction,
                "holdout_seed": self.seed, "holdout_hash": self.holdout_hash}

    def load_state_dict(self, state: dict) -> None:
        self.round = int(state["round"])
        self.epochs = int(state.get("epochs", 0))  # absent before rounds were skipped after the last epoch
        self.weights = [float(w) for w in state["weights"]]
        self.source_names = list(state["source_names"])
        self.labels_hash = state["labels_hash"]
        if "holdout_hash" in state:  # the resumed run keeps the held-out frames it was fitted on
            restored = (float(state["holdout_fraction"]), int(state["holdout_seed"]))
            if restored != (self.holdout_fraction, self.seed):
                log.warning("weak labels: resuming with the checkpoint's held-out frames (holdout_fraction=%s, "
                            "seed=%s), not the configured (%s, %s)", *restored, self.holdout_fraction, self.seed)
            self.holdout_fraction, self.seed = restored
            self.holdout_hash = state["holdout_hash"]

    # -- hooks ---------------------------------------------------------------------------------------
    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit" and trainer.datamodule is not None:  # before the learning-rate schedule is planned
            trainer.datamodule.weak_labels_expected = True

    def on_fit_start(self, trainer, pl_module) -> None:
        reload = trainer.reload_dataloaders_every_n_epochs
        if reload < 1 or self.every_n_epochs % reload:
            raise ValueError(f"WeakLabelRefresh(every_n_epochs={self.every_n_epochs}) needs the train loader "
                             f"rebuilt after each refresh: set Trainer(reload_dataloaders_every_n_epochs=1), "
                             f"got {reload}")
        if self.network == "averaged" and self._averaging(trainer) is None:
            raise ValueError("weak.network=averaged needs weight averaging in this stage (stage2.ema_decay)")
        self.store = WeakLabelStore(self.root)
        self.cache = SourceMapCache(self.cache_dir) if self.cache_dir is not None else None
        dm = trainer.datamodule
        held = self._holdout(dm)
        dm.set_fusion_holdout(held)
        # Built in a hook (ddp_spawn pickles callbacks), once the held-out frames are known: their ground truth
        # must not propagate.
        self.sources = build_sources(self.source_specs, propagation=_propagation(dm, held))
        if any(s.name == PREDICTION for s in self.sources):
            raise ValueError(f"weak.sources must not list '{PREDICTION}': the network's own map is added each round")
        self.distance = _label_distances(dm)
        self.trust = self._trust_by_distance(dm, held) if self.propagated_weight == "distance" else None
        if self.round >= 0:  # resumed: continue from the round the checkpoint was trained on
            self._verify_resumed_round()
            dm.use_weak_labels(self.store, self.round)
            if self.round < self.epochs // self.every_n_epochs:  # the run had ended; it trains on now
                self.refresh(trainer, pl_module, with_prediction=True, epoch=self.epochs - 1)
        else:
            self.refresh(trainer, pl_module, with_prediction=False, epoch=0)

    def _holdout(self, dm) -> list:
        """The held-out labelled frames (the same on every rank and after a resume)."""
        labelled = dm.labelled_train_entries()
        held = select_fusion_holdout(labelled, self.holdout_fraction, self.seed)
        if not held:
            raise DataError(dm.train_sources_label(),
                            f"no labelled training frame can be held out to fit the fusion weights (Eq. 8): "
                            f"{len(labelled)} frame(s) with ground truth in {len({e[0].name for e in labelled})} "
                            f"sequence(s), and only a sequence with 2 or more gives one (check the sources, "
                            f"split and data.label_every)")
        digest = _keys_hash([frame_key(e) for e in held])
        if self.holdout_hash and digest != self.holdout_hash:
            raise DataError(dm.train_sources_label(),
                            f"the held-out frames of the fusion fit differ from the checkpoint's (hash "
                            f"{digest[:12]} vs {self.holdout_hash[:12]}): the training data changed since")
        self.holdout_hash = digest
        return held

    def _trust_by_distance(self, dm, held: list) -> dict:
        """What `trust_by_distance` needs: the propagated source's index, its reach (the held-out frames' mean
        distance to the labels it carries to them) and each held-out and unlabelled frame's distance."""
        index = next((i for i, s in enumerate(self.sources) if isinstance(s, PropagatedSource)), None)
        if index is None:
            raise ValueError("weak.propagated_weight=distance needs a 'propagated' source in weak.sources")
        source = self.sources[index]
        distances = {frame_key(e): source.distance(*e) for e in [*held, *dm.unlabelled_train_entries()]}
        reach = [distances[frame_key(e)] for e in held if distances[frame_key(e)] is not None]
        if not reach:
            raise DataError(dm.train_sources_label(), "weak.propagated_weight=distance: no held-out frame has a "
                            "label the propagated source carries within reach (check its max_distance)")
        return {"source": index, "reach": float(np.mean(reach)), "distances": distances}

    def _frame_weights(self, weights: np.ndarray, key: tuple[str, str]) -> np.ndarray:
        """Eq. 7's weights for one frame: Eq. 8's, or with the propagated source trusted by distance."""
        if self.trust is None:
            return weights
        return trust_by_distance(weights, self.trust["source"], self.trust["distances"][key], self.trust["reach"])

    def _verify_resumed_round(self) -> None:
        """The round on disk (manifest and every label file) must be the one the checkpoint recorded."""
        manifest = self.store.manifest(self.round)
        on_disk = self.store.hash_on_disk(self.round)
        if manifest["labels_hash"] != self.labels_hash or on_disk != self.labels_hash:
            raise DataError(self.store.round_dir(self.round),
                            f"weak labels of round {self.round} differ from the ones this checkpoint was trained "
                            f"on (checkpoint hash {self.labels_hash[:12]}, manifest "
                            f"{manifest['labels_hash'][:12]}, files {on_disk[:12]}); restore them or start afresh")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.epochs = trainer.current_epoch + 1
        last = 0 < trainer.max_epochs <= self.epochs  # max_epochs -1: no last epoch
        if self.epochs % self.every_n_epochs == 0 and not last:
            self.refresh(trainer, pl_module, with_prediction=True, epoch=trainer.current_epoch)

    @staticmethod
    def _averaging(trainer) -> WeightAveraging | None:
        return next((c for c in trainer.callbacks if isinstance(c, WeightAveraging)), None)

    def _network_module(self, trainer, pl_module):
        """The module whose map joins the fusion: the trained one, or its running average."""
        if self.network == "current":
            return pl_module
        averaged = self._averaging(trainer)._average_model  # torch AveragedModel around a copy of the module
        return pl_module if averaged is None else averaged.module

    # -- one round of Algorithm 1 (steps 4-5) ---------------------------------------------------------
    def refresh(self, trainer, pl_module, *, with_prediction: bool, epoch: int) -> None:
        """Publish the next round; `epoch` is the finished epoch whose network joins the fusion (0 for round 0)."""
        dm = trainer.datamodule
        rank, world = trainer.global_rank, trainer.world_size
        held, unlabelled = dm.fusion_holdout_entries(), dm.unlabelled_train_entries()
        names = [s.name for s in self.sources] + ([PREDICTION] if with_prediction else [])
        next_round = self.round + 1
        network = self._network_module(trainer, pl_module)
        was_training = network.training
        network.eval()
        try:
            fit = self._fit(trainer, dm, held[rank::world], network, with_prediction)
            writer = self._round_writer(trainer, next_round)
            scores = self._label(dm, held[rank::world], unlabelled[rank::world], network, fit, writer, names)
            scores.load_vector(_sum_over_ranks(trainer, scores.vector()))
        finally:
            network.train(was_training)
        trainer.strategy.barrier("weak_labels_written")
        summary = scores.summary()
        stats = {"labels": summary["labels"], "foreground": summary["foreground"],
                 "iou_on_labelled": summary["heldout"]["label_iou"],
                 "changed_fraction": summary["changed_fraction"], "epoch": epoch}
        extra = {"fit": {k: v for k, v in fit.items() if k not in ("weights", "levels")},
                 "network": self.network if with_prediction else None,
                 "propagated_weight": ({"mode": "fit"} if self.trust is None else
                                       {"mode": "distance", "reach": self.trust["reach"]}),
                 "quality": summary["heldout"], "oracle": summary["oracle"],
                 # the held-out frames are the same every round: the store keeps their list once per run
                 "holdout": {"fraction": self.holdout_fraction, "seed": self.seed, "count": len(held),
                             "hash": self.holdout_hash,
                             FRAME_LIST: self.store.keep_frame_list([frame_key(e) for e in held])}}
        weights = dict(zip(names, map(float, fit["weights"])))
        if rank == 0:
            writer.publish([frame_key(e) for e in unlabelled], weights=weights, stats=stats, extra=extra)
        trainer.strategy.barrier("weak_labels_published")
        self.round, self.weights, self.source_names = next_round, list(weights.values()), names
        self.labels_hash = self.store.labels_hash(next_round)
        dm.use_weak_labels(self.store, next_round)
        self._log(trainer, weights, stats, extra)

    def _fit(self, trainer, dm, held_shard, pl_module, with_prediction: bool) -> dict:
        """Step 4 of Alg. 1 on the held-out frames: the Eq. 8 sums of this rank's share, summed over
        ranks; the calibration and the weights from rank 0 (`_fit_on_sums`)."""
        stats = FitStats(len(self.sources))
        for static, bins, gt, _, _ in self._batches(dm, held_shard, pl_module, with_prediction):
            stats.add(static, gt, bins)
        stats.load_vector(_sum_over_ranks(trainer, stats.vector()))
        return _on_rank_zero(trainer, lambda: _fit_on_sums(stats, with_prediction))

    def _label(self, dm, held_shard, unlabelled_shard, pl_module, fit: dict, writer, names) -> RoundScores:
        """Step 5 for this rank's frames: score the fused labels of its held-out frames, write the labels of
        its frames without ground truth (comparing them with the previous round's and, as the oracle diagnostic,
        with their hidden ground truth where the data has one)."""
        weights, levels = fit["weights"], fit["levels"]
        scores = RoundScores(names)
        for maps, gt, _, keys in self._fused_batches(dm, held_shard, pl_module, levels):
            for i, key in enumerate(keys):
                scores.add_heldout(maps[:, i], self._frame_weights(weights, key), gt[i])
        for maps, hidden, known, keys in self._fused_batches(dm, unlabelled_shard, pl_module, levels):
            for i, key in enumerate(keys):
                confidence = weak_confidence(maps[:, i], self._frame_weights(weights, key))
                writer.write_confidence(*key, confidence)
                label = (confidence >= FOREGROUND).astype(np.uint8)
                scores.add_label(label, self._previous_label(key), hidden[i] if known[i] else None, self.distance[key])
        return scores

    def _batches(self, dm, entries, pl_module, with_prediction: bool):
        """Yield (static (K_s, B, H, W) uint8, logit bins (B, H, W) of the network's map or None,
        gt (B, H, W) uint8, whether each frame has ground truth (B,), keys) for `entries`, batch by batch, at
        training size. Frames outside the label budget bring their hidden ground truth where the data has it
        (the oracle diagnostic's; nothing else reads it)."""
        if not entries:
            return
        for batch in refresh_loader(dm, entries, self.sources, self.cache):
            static = batch["static"].numpy().transpose(1, 0, 2, 3)
            bins = None
            if with_prediction:
                on_device = {k: v.to(pl_module.device) if torch.is_tensor(v) else v
                             for k, v in batch.items() if k != "static"}
                with torch.no_grad():
                    bins = logit_bins(pl_module.saliency(on_device).float().cpu().numpy())
            gt = (batch["mask"][:, 0].numpy() > 0.5).astype(np.uint8)
            yield static, bins, gt, batch["labelled"].numpy(), list(zip(batch["sequence"], batch["name"]))

    def _fused_batches(self, dm, entries, pl_module, levels: np.ndarray | None):
        """Yield (maps (K, B, H, W) float32 in [0, 1], gt, has gt, keys): the static maps, plus the network's
        calibrated map (`levels` of its logit bins) when it is fused this round."""
        for static, bins, gt, known, keys in self._batches(dm, entries, pl_module, levels is not None):
            maps = static if bins is None else np.concatenate([static, levels[bins][None]], axis=0)
            yield maps.astype(np.float32) / LEVELS, gt, known, keys

    def _round_writer(self, trainer, round_: int):
        """Rank 0 opens the round's hidden folder; every other rank writes into the same one."""
        writer = self.store.begin_round(round_) if trainer.global_rank == 0 else None
        folder = trainer.strategy.broadcast(writer.folder.name if writer else None, src=0)
        return writer or self.store.join_round(round_, folder)

    def _previous_label(self, key) -> np.ndarray | None:
        if self.round < 0 or not self.store.label_path(self.round, *key).is_file():
            return None
        return self.store.read_label(self.round, *key)

    def _log(self, trainer, weights: dict[str, float], stats: dict, extra: dict) -> None:
        quality = extra["quality"]
        metrics = {f"weak/w_{n}": w for n, w in weights.items()}
        metrics.update({f"weak/{k}": float(v) for k, v in stats.items() if v is not None})
        metrics.update({f"weak/heldout_{k}": float(quality[k]) for k in RoundScores.QUALITY if quality[k] is not None})
        metrics["weak/objective"] = float(extra["fit"]["objective"])
        metrics["weak/round"] = float(self.round)
        if extra["oracle"]["label_iou"] is not None:  # logged to be seen, never monitored
            metrics["weak/oracle_label_iou"] = extra["oracle"]["label_iou"]
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
        if trainer.is_global_zero:
            alone = quality["sources"].get(PREDICTION, {}).get("label_iou")
            log.info("weak labels round %d: weights %s; held-out label IoU %s (network alone %s), MAE %s; "
                     "label pixels changed %s; oracle label IoU %s", self.round,
                     {n: round(w, 4) for n, w in weights.items()}, _fmt(quality["label_iou"]), _fmt(alone),
                     _fmt(quality["label_mae"]), _fmt(stats["changed_fraction"]), _fmt(extra["oracle"]["label_iou"]))


def _fit_on_sums(stats: FitStats, with_prediction: bool) -> dict:
    """Calibrate the network's map (when fused) and solve Eq. 8 on the held-out sums."""
    calibration, levels = None, None
    if with_prediction:
        a, b = platt_calibration(stats.bin_count, stats.bin_foreground)
        calibration, levels = {"method": "platt", "a": a, "b": b}, calibrated_levels(a, b)
    gram, cross, energy, pixels = stats.system(levels)
    solution = simplex_qp_solution(gram, cross)
    w = solution.weights
    objective = float(w @ gram @ w - 2 * cross @ w + energy) / pixels
    return {"weights": w, "levels": levels, **solution.describe(), "objective": objective,
            "pixels": pixels, "calibration": calibration}


def _propagation(dm, held: list):
    """The factory `build_sources` makes a `propagated` source with: the training sequences, and the frames
    whose ground truth may propagate (within the label budget, not held out for Eq. 8)."""
    held_keys = {frame_key(e) for e in held}
    allowed = [frame_key(e) for e in dm.labelled_train_entries() if frame_key(e) not in held_keys]
    sequences = list({e[0].name: e[0] for e in dm.train_entries}.values())
    return lambda **options: PropagatedSource(sequences, allowed, **options)


def _label_distances(dm) -> dict[tuple[str, str], int]:
    """Frames to the nearest frame with ground truth in the label budget, for each frame without (the oracle
    diagnostic's buckets); a sequence without any counts as far away."""
    labelled: dict[str, list[int]] = {}
    for seq, index in dm.labelled_train_entries():
        labelled.setdefault(seq.name, []).append(index)
    far = 10**6
    return {frame_key((seq, index)): min((abs(index - j) for j in labelled.get(seq.name, [])), default=far)
            for seq, index in dm.unlabelled_train_entries()}


def _on_rank_zero(trainer, compute):
    """`compute()` run on rank 0 only, its result broadcast: every rank gets the same bits."""
    return trainer.strategy.broadcast(compute() if trainer.global_rank == 0 else None, src=0)


def _sum_over_ranks(trainer, vector: np.ndarray) -> np.ndarray:
    """Element-wise sum over ranks of an int64 vector (exact in any order)."""
    if trainer.world_size == 1:
        return vector
    tensor = torch.from_numpy(vector).to(trainer.strategy.root_device)
    return trainer.strategy.reduce(tensor, reduce_op="sum").cpu().numpy()


def _keys_hash(keys: list[tuple[str, str]]) -> str:
    return hashlib.sha256("\n".join(f"{s}\0{n}" for s, n in sorted(keys)).encode()).hexdigest()


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"
