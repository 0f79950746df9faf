"""A 3-epoch SCNN fit with `WeakLabelRefresh` on 1 or N CPU processes; each rank reports what it read.

Run by `tests/test_weak_ddp.py` as `python -m tests.ddp_weak_run ...` from the repository root (Lightning's
DDP launcher starts the other ranks with the same command line). Each rank writes
`<report>/rank<r>.json`: for every round on disk, the hash of the labels as this rank reads them and the
manifest's hash, weights, fit, held-out quality, held-out frames and statistics; its own callback state; and whether the weak labels its training batches
carried equal the store's files of the round of that epoch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from scnn_lightning.utils import write_json
from tests.weak_helpers import LabelSpy, make_datamodule, make_module, make_trainer


def report(trainer, weak, spy: LabelSpy) -> dict:
    store = weak.store
    rounds = {}
    for r in store.rounds():
        manifest = store.manifest(r)
        rounds[str(r)] = {"read_hash": store.hash_on_disk(r), "manifest_hash": manifest["labels_hash"],
                          "weights": manifest["weights"],
                          **{k: manifest[k] for k in ("fit", "quality", "holdout", "stats", "oracle")}}
    served = {}
    for epoch, seen in spy.seen.items():
        labels = {key: store.read_label(epoch, *key) for key in spy.weak_frames(epoch)}
        served[str(epoch)] = {"weak_frames": len(labels),
                              "equal_to_store": all(np.array_equal(seen[k][1], m) for k, m in labels.items())}
    return {"rank": trainer.global_rank, "world": trainer.world_size, "rounds": rounds, "served": served,
            "state": weak.state_dict()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", required=True)
    parser.add_argument("--cache", required=True)
    parser.add_argument("--out", required=True, help="run folder (weak labels under <out>/weak)")
    parser.add_argument("--report", required=True, help="folder for rank<r>.json")
    parser.add_argument("--devices", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    spy = LabelSpy()
    trainer, weak = make_trainer(out, out / "weak", max_epochs=3, spy=spy, logger=False, devices=args.devices,
                                 strategy="ddp" if args.devices > 1 else "auto")
    trainer.fit(make_module(), datamodule=make_datamodule(Path(args.clips), Path(args.cache)))
    write_json(Path(args.report) / f"rank{trainer.global_rank}.json", report(trainer, weak, spy))


if __name__ == "__main__":
    main()
