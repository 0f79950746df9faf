"""Ship a finished stage-1 run as the study's one shared stage 1 (`data=davis` starts every run from it).

    python -m ablations.ship_stage1 runs/stage1-duts [--weights scnn_lightning/weights]

Writes `WEIGHTS/stage1-duts.ckpt` (the stage-1 FCN with only what inference and stage 2 read: the averaged
weights when the run used EMA, as validated) and `WEIGHTS/stage1-duts.json`: the settings, the per-epoch DUTS
validation curve, where it peaked, the licence, the machine, and the command that trains it again.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from omegaconf import OmegaConf

from scnn_lightning.errors import DataError
from scnn_lightning.inference.checkpoint import load_checkpoint, save_inference_checkpoint
from scnn_lightning.record_paths import record_command, record_path
from scnn_lightning.training.records import read_curve
from scnn_lightning.utils import write_json

NAME = "stage1-duts"
LICENCE = ("Trained on DUTS-TR images and masks (DUTS, Wang et al., CVPR 2017; released for non-commercial "
           "research use): for non-commercial research use only.")
RETRAIN = ("python -m experiments.run data=davis weak=davis stage1_only=true seed=0 stage1.ckpt=null "
           "motion.classifier=null stage1.schedule=cosine stage1.warmup_steps=500 stage1.ema_decay=0.999 "
           "stage1.max_epochs=20 hydra.run.dir=runs/stage1-duts data.root.davis=DATA/davis-2016-half "
           "data.root.duts=DATA/duts-tr-5k data.root.saliency=DATA/saliency-maps/davis-2016-half")


def ship_stage1(run: Path, weights: Path) -> dict:
    ckpt, curve_file, summary = (run / "stage1" / "checkpoints" / "last.ckpt", run / "stage1" / "val_curve.csv",
                                 run / "stage1.json")
    for path in (ckpt, curve_file, summary):
        if not path.is_file():
            raise DataError(path, "missing: ship a finished stage-1 run (stage1_only=true)")
    loaded = load_checkpoint(ckpt)
    if loaded.code != "image":
        raise DataError(ckpt, f"holds a {loaded.code} model, not a stage-1 FCN")
    shipped = save_inference_checkpoint(loaded.module, weights / f"{NAME}.ckpt")
    cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    curve = read_curve(curve_file)
    peak = max(curve, key=lambda row: row["s_measure"])
    done = json.loads(summary.read_text())
    card = {
        "checkpoint": shipped.name, "checkpoint_mb": round(shipped.stat().st_size / 2**20, 2),
        "from_scratch": True,  # no ImageNet weights are reachable here: every layer starts random
        "data": f"DUTS-TR ({Path(cfg.data.root.duts).name}), but for the {cfg.data.val_fraction} share held out "
                f"for validation by a hash of (seed {cfg.seed}, image name)",
        "settings": {"size": list(cfg.data.size), "width": cfg.model.width, "fc_channels": cfg.model.fc_channels,
                     "batch_size": cfg.data.batch_size, "optimizer": cfg.model.optimizer, "lr": cfg.stage1.lr,
                     "weight_decay": cfg.stage1.weight_decay or cfg.model.weight_decay,
                     "schedule": cfg.stage1.schedule, "warmup_steps": cfg.stage1.warmup_steps,
                     "ema_decay": cfg.stage1.ema_decay, "epochs": len(curve), "seed": cfg.seed,
                     "augment": OmegaConf.to_container(cfg.data.augment)},
        "weights": "the EMA of the parameters (what was validated)" if cfg.stage1.ema_decay else "the last epoch's",
        "validation_curve": curve,
        "best_epoch": peak["epoch"], "best_val_s_measure": peak["s_measure"],
        "last_val_s_measure": curve[-1]["s_measure"],
        "train_seconds": done.get("train_seconds"), "environment": done.get("environment"),
        "licence": LICENCE,
        "commands": {"retrain": RETRAIN, "ship": record_command(["python", "-m", "ablations.ship_stage1", str(run)])},
        "source_run": record_path(run),
    }
    write_json(weights / f"{NAME}.json", card)
    return card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a finished stage-1 run (python -m experiments.run stage1_only=true)")
    parser.add_argument("--weights", type=Path, default=Path(__file__).resolve().parents[1] / "scnn_lightning" / "weights")
    args = parser.parse_args(argv)
    try:
        card = ship_stage1(args.run, args.weights)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.weights / (NAME + '.ckpt')}: best validation S {card['best_val_s_measure']:.4f} at epoch "
          f"{card['best_epoch']}, last {card['last_val_s_measure']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
