"""Ship a finished stage-1 run as the study's one shared stage 1 (`data=davis` starts every run from it).

    python -m ablations.ship_stage1 runs/stage1-duts [--weights scnn_lightning/weights] [--screen SCREEN.json ...]

Writes `WEIGHTS/stage1-duts.ckpt` (the stage-1 FCN with only what inference and stage 2 read: the averaged
weights when the run used EMA, as validated) and `WEIGHTS/stage1-duts.json`: the settings, its training data, what
it started from, the per-epoch validation curve, where it peaked, the licence, the machine, the command that
trains it again and, with `--screen`, every candidate of the search that chose it (`ablations.stage1_screen`
records: settings, curves, held-out scores, DAVIS val report-only, wall time).
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
TEACHER_LICENCE = (" Its teacher's maps are CSNet's (Gao et al., ECCV 2020; weights CC BY-NC-SA 4.0) on DAVIS frames "
                   "(CC BY-NC 4.0): non-commercial research use.")
RETRAIN = ("python -m experiments.run data=davis weak=davis stage1_only=true seed=0 stage1.ckpt=null "
           "motion.classifier=null stage1.schedule=cosine stage1.warmup_steps=500 stage1.ema_decay=0.999 "
           "stage1.max_epochs=20 hydra.run.dir=runs/stage1-duts data.root.davis=DATA/davis-2016-half "
           "data.root.duts=DATA/duts-tr-5k data.root.saliency=DATA/saliency-maps/davis-2016-half")


def previous_card(weights: Path, init) -> dict | None:
    """The card of the shipped stage 1 when `init` is that very file (about to be replaced), without its search."""
    card = weights / f"{NAME}.json"
    if not init or not card.is_file() or Path(init).resolve() != (weights / f"{NAME}.ckpt").resolve():
        return None
    return {k: v for k, v in json.loads(card.read_text()).items() if k != "search"}


def training_data(cfg) -> list[str]:
    """The stage's image sources in words (a teacher's maps and a label budget named)."""
    described = []
    for spec in OmegaConf.to_container(cfg.data.images, resolve=True):
        text = f"{spec['dataset']} {record_path(spec['root'])}" + (f" [{spec['split']}]" if spec.get("split") else "")
        if spec.get("label_every"):
            text += f", ground truth on every {spec['label_every']}th frame"
        if spec.get("teacher"):
            text += f", the other frames learn the soft maps of {record_path(spec['teacher'])}"
        described.append(text)
    held = cfg.data.get("val_sequences")
    return described + ([f"never the held-out sequences {', '.join(held)}"] if held else [])


def ship_stage1(run: Path, weights: Path, screens: list[Path] = ()) -> dict:
    ckpt, curve_file, summary = (run / "stage1" / "checkpoints" / "last.ckpt", run / "stage1" / "val_curve.csv",
                                 run / "stage1.json")
    for path in (ckpt, curve_file, summary):
        if not path.is_file():
            raise DataError(path, "missing: ship a finished stage-1 run (stage1_only=true)")
    for screen in screens:
        if not Path(screen).is_file():
            raise DataError(screen, "missing: --screen names an ablations.stage1_screen record")
    loaded = load_checkpoint(ckpt)
    if loaded.code != "image":
        raise DataError(ckpt, f"holds a {loaded.code} model, not a stage-1 FCN")
    cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    curve = read_curve(curve_file)
    peak = max(curve, key=lambda row: row["s_measure"])
    done = json.loads(summary.read_text())
    init = cfg.stage1.get("init")
    overrides = run / ".hydra" / "overrides.yaml"
    previous = previous_card(weights, init)
    shipped = save_inference_checkpoint(loaded.module, weights / f"{NAME}.ckpt")
    card = {
        "checkpoint": shipped.name, "checkpoint_mb": round(shipped.stat().st_size / 2**20, 2),
        # no ImageNet weights are reachable here: a run starts random, or from an earlier stage 1 (`stage1.init`)
        "from_scratch": not init and not cfg.model.backbone.pretrained,
        "init": record_path(init) if init else None,
        # fine-tuned from the stage 1 this one replaces: its card (how it was trained) is kept, since its file is not
        "init_card": previous,
        "data": training_data(cfg) + [f"{cfg.data.val_fraction} of the still images held out for validation by a "
                                      f"hash of (seed {cfg.seed}, name)"],
        "settings": {"size": list(cfg.data.size), "width": cfg.model.width, "fc_channels": cfg.model.fc_channels,
                     "loss": cfg.stage1.get("loss", "balanced"),
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
        "licence": LICENCE + (TEACHER_LICENCE if any(spec.get("teacher") for spec in cfg.data.images) else ""),
        "commands": {"retrain": (record_command(["python", "-m", "experiments.run",
                                                 *OmegaConf.to_container(OmegaConf.load(overrides))])
                                 if overrides.is_file() else RETRAIN),
                     "ship": record_command(["python", "-m", "ablations.ship_stage1", str(run),
                                             *(w for screen in screens for w in ("--screen", str(screen)))])},
        "source_run": record_path(run),
        "search": [json.loads(Path(screen).read_text()) for screen in screens],
    }
    write_json(weights / f"{NAME}.json", card)
    return card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a finished stage-1 run (python -m experiments.run stage1_only=true)")
    parser.add_argument("--weights", type=Path, default=Path(__file__).resolve().parents[1] / "scnn_lightning" / "weights")
    parser.add_argument("--screen", type=Path, action="append", default=[],
                        help="an ablations.stage1_screen record of the search that chose this run (repeatable)")
    args = parser.parse_args(argv)
    try:
        card = ship_stage1(args.run, args.weights, args.screen)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.weights / (NAME + '.ckpt')}: best validation S {card['best_val_s_measure']:.4f} at epoch "
          f"{card['best_epoch']}, last {card['last_val_s_measure']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
