"""The weak-label lever table (docs/davis.md, "Making the weak labels help"): SCNN on the shipped stage 1 and
temporal prior, each weak-label option alone, chosen on the held-out *train* sequences only.

    python -m ablations.weak_levers run --out runs/levers --records ablations/results/davis/levers \
        [--levers propagated soft ...] [--seeds 0] -- data=davis weak=davis data.root.davis=... ...
    python -m ablations.weak_levers table ablations/results/davis/levers --base ablations/results/davis/recipe/runs
    python -m ablations.weak_levers oracle runs/recipe/seed0/SCNN --davis DATA/davis-2016-half \
        --out ablations/results/davis/recipe/runs/seed0/SCNN/oracle.json

`run` launches each lever as its own study of one variant (`ablations.launch`, so an interrupted table resumes
and runs recorded under --records are not made again); the test phase runs without the CRF (the table decides
on validation, and the CRF is most of a test). `table` reads the records alone: per lever and seed the best
validation S and its epoch, the last epoch's, the held-out label IoU of the first and last round, and the oracle
label IoU (a diagnostic against hidden ground truth: reported, never used to choose), and the test scores for
the report. It writes levers.csv and levers.md beside the records. `oracle` scores the label files of a run made
before the manifests carried the oracle diagnostic (the run folder, not its records: those keep no labels) the way
the refresh does (`RoundScores.oracle_summary`), into a JSON file that `table` reads beside the run's records.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from ablations.launch import with_overrides
from experiments.report.runs import seed_stat
from scnn_lightning.data.datamodule import budget_keeps
from scnn_lightning.data.io import read_mask
from scnn_lightning.data.readers import load_index
from scnn_lightning.record_paths import record_path
from scnn_lightning.utils import write_json
from scnn_lightning.weak.fit import RoundScores
from scnn_lightning.weak.store import WeakLabelStore

# lever -> (variant, overrides on top of the recipe): each option of the weak-label issue alone, and the ceiling
LEVERS = {
    "propagated": ("SCNN", ["weak=davis_propagated"]),
    "soft": ("SCNN", ["weak.target=soft"]),
    "band": ("SCNN", ["weak.ignore_band=0.1"]),
    "weight": ("SCNN", ["weak.weight=0.3"]),
    "subsample": ("SCNN", ["weak.frames_per_epoch=0.3"]),
    "averaged": ("SCNN", ["weak.network=averaged"]),
    "images": ("SCNN", ["data.image_mix=0.25"]),
    "NA-allGT": ("NA", ["data.label_every=1"]),  # ground truth on every training frame: the ceiling
    # combinations of the levers that helped alone (seed 0): better labels, and a loss that distrusts unsure pixels
    "propagated+band": ("SCNN", ["weak=davis_propagated", "weak.ignore_band=0.1"]),
    "propagated+soft": ("SCNN", ["weak=davis_propagated", "weak.target=soft"]),
    # the propagated source trusted more near the labels it carries (Eq. 8 sees it only ~10 frames away)
    "propagated+soft+distance": ("SCNN", ["weak=davis_propagated", "weak.target=soft", "weak.propagated_weight=distance"]),
}
ORACLE_FILE = "oracle.json"
RETESTED_WITH_CRF = "-CRF"  # a lever run's tested weights scored again with the CRF (stage2.ckpt=RUN/checkpoints)
FIELDS = ["lever", "variant", "seed", "val_s_best", "best_epoch", "val_s_last", "heldout_iou_first",
          "heldout_iou_last", "oracle_iou_first", "oracle_iou_last", "test_s", "test_max_f", "test_mae", "crf"]


def launch(args, overrides: list[str]) -> None:
    for name in args.levers:
        variant, extra = LEVERS[name]
        command = [sys.executable, "-m", "ablations.launch", "--out", str(args.out / name), "--seeds",
                   *map(str, args.seeds), "--variants", variant, "--extras", "--shared-stage1",
                   "--records", str(args.records / name / "runs"), "--", *with_overrides([*overrides, "crf=null"], extra)]
        print("+", " ".join(command), flush=True)
        subprocess.run(command, check=True)


def run_row(lever: str, run_dir: Path) -> dict:
    """One run's row from its records (metrics.json, val_curve.csv, weak_labels/round_*/manifest.json)."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    curve_file = run_dir / "val_curve.csv"  # none for a run that only tested (SCNN-noCRF)
    curve = list(csv.DictReader(curve_file.open())) if curve_file.is_file() else []
    best = max(curve, key=lambda r: float(r["s_measure"])) if curve else None
    manifests = [json.loads(p.read_text()) for p in sorted(run_dir.glob("weak_labels/round_*/manifest.json"))]
    heldout = [m["quality"]["label_iou"] for m in manifests]
    oracle = [m.get("oracle", {}).get("label_iou") for m in manifests]
    if (run_dir / ORACLE_FILE).is_file() and not any(oracle):  # scored after the run (`oracle`)
        oracle = [r["label_iou"] for r in json.loads((run_dir / ORACLE_FILE).read_text())["rounds"]]
    return {"lever": lever, "variant": metrics.get("tag", metrics["variant"]), "seed": metrics["seed"],
            "val_s_best": float(best["s_measure"]) if best else None, "best_epoch": int(best["epoch"]) if best else None,
            "val_s_last": float(curve[-1]["s_measure"]) if curve else None,
            "heldout_iou_first": heldout[0] if heldout else None, "heldout_iou_last": heldout[-1] if heldout else None,
            "oracle_iou_first": oracle[0] if oracle else None, "oracle_iou_last": oracle[-1] if oracle else None,
            "test_s": metrics["s_measure"], "test_max_f": metrics["max_f"], "test_mae": metrics["mae"],
            "crf": metrics["crf"]}


def rows(levers_dir: Path, base: Path | None) -> list[dict]:
    found = []
    if base is not None:
        found += [run_row("base", d) for code in ("NA", "SCNN", "SCNN-noCRF") for d in sorted(base.glob(f"seed*/{code}"))
                  if (d / "metrics.json").is_file()]
    for name in LEVERS:
        variant = LEVERS[name][0]
        for tag in (variant, variant + RETESTED_WITH_CRF):
            found += [run_row(name, d) for d in sorted((levers_dir / name / "runs").glob(f"seed*/{tag}"))
                      if (d / "metrics.json").is_file()]
    return found


def summary(found: list[dict]) -> list[dict]:
    """Mean ± sample std (ddof=1, as the study's summary.csv) over the seeds of each lever and tag run on several."""
    groups: dict[tuple, list[dict]] = {}
    for r in found:
        groups.setdefault((r["lever"], r["variant"]), []).append(r)
    out = []
    for (lever, tag), runs in groups.items():
        if len(runs) < 2:
            continue
        row = {"lever": lever, "variant": tag, "seeds": len(runs)}
        for key in ("val_s_best", "test_s", "test_max_f", "test_mae"):
            values = [r[key] for r in runs if r[key] is not None]
            stat = seed_stat(values) if len(values) > 1 else None
            row[key] = (stat.mean, stat.std) if stat else None
        out.append(row)
    return out


def table(levers_dir: Path, base: Path | None) -> list[dict]:
    found = rows(levers_dir, base)
    with (levers_dir / "levers.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(found)
    fmt = lambda v: "–" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
    lines = ["| " + " | ".join(FIELDS) + " |", "|" + "---|" * len(FIELDS)]
    lines += ["| " + " | ".join(fmt(r[k]) for k in FIELDS) + " |" for r in found]
    means = summary(found)
    if means:
        pm = lambda v: "–" if v is None else f"{v[0]:.3f} ± {v[1]:.3f}"  # noqa: E731
        keys = ["val_s_best", "test_s", "test_max_f", "test_mae"]
        lines += ["", "Over seeds (mean ± std):", "", "| lever | variant | seeds | " + " | ".join(keys) + " |",
                  "|" + "---|" * (3 + len(keys))]
        lines += [f"| {r['lever']} | {r['variant']} | {r['seeds']} | " + " | ".join(pm(r[k]) for k in keys) + " |"
                  for r in means]
    note = ("Chosen on `val_s_best` (held-out train sequences). `oracle_iou_*` scores labels against hidden "
            "ground truth: a diagnostic, never a criterion. Test scores (DAVIS val) are reported, not used.")
    (levers_dir / "levers.md").write_text("# Weak-label levers\n\n" + note + "\n\n" + "\n".join(lines) + "\n")
    write_json(levers_dir / "levers.json", {"note": note, "rows": found, "over_seeds": means})
    return found


def oracle(run_dir: Path, davis: Path, out: Path) -> dict:
    """Each weak-label round of `run_dir` scored against the hidden ground truth of DAVIS train, by distance to
    the nearest frame of the run's label budget; labels and ground truth compared at the training size (the
    mask resized by nearest neighbour, as the datamodule does)."""
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    every, size = cfg.data.label_every, tuple(cfg.data.size)
    sequences = {s.name: s for s in load_index("davis", davis, "train").sequences}
    store = WeakLabelStore(run_dir / "weak_labels")
    rounds = []
    for r in store.rounds():
        scores = RoundScores([])
        for name, frame in store.frames(r):
            seq = sequences[name]
            index = next(i for i, f in enumerate(seq.frames) if f.name == frame)
            budget = [i for i, f in enumerate(seq.frames) if f.labelled and budget_keeps(seq, i, every)]
            hidden = read_mask(seq.frames[index])
            hidden = F.interpolate(torch.from_numpy(hidden)[None, None].float(), size=size, mode="nearest")[0, 0]
            scores.add_label(store.read_label(r, name, frame), None, hidden.numpy().astype(np.uint8),
                             min(abs(index - j) for j in budget))
        rounds.append({"round": r, **scores.oracle_summary()})
    result = {"run": record_path(run_dir), "davis": record_path(davis), "rounds": rounds}
    write_json(out, result)
    return result


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    go = sub.add_parser("run", help="launch the levers (resumable)")
    go.add_argument("--out", type=Path, required=True)
    go.add_argument("--records", type=Path, required=True)
    go.add_argument("--levers", nargs="+", default=list(LEVERS), choices=list(LEVERS))
    go.add_argument("--seeds", type=int, nargs="+", default=[0])
    show = sub.add_parser("table", help="levers.csv / levers.md from the records")
    show.add_argument("levers_dir", type=Path)
    show.add_argument("--base", type=Path, help="the recipe study's records (its NA, SCNN and SCNN-noCRF runs: the "
                                                "base rows; the levers are tested without the CRF)")
    score = sub.add_parser("oracle", help="score a run's weak-label files against hidden ground truth")
    score.add_argument("run_dir", type=Path)
    score.add_argument("--davis", type=Path, required=True, help="DAVIS-2016 root (its train split)")
    score.add_argument("--out", type=Path, required=True, help=f"the JSON file ({ORACLE_FILE} beside the records)")
    args = parser.parse_args(argv)
    if args.command == "run":
        launch(args, overrides)
    elif args.command == "oracle":
        for row in oracle(args.run_dir, args.davis, args.out)["rounds"]:
            print(f"round {row['round']}: oracle label IoU {row['label_iou']:.4f} over {row['frames']} frames")
    else:
        for row in table(args.levers_dir, args.base):
            print(row["lever"], row["variant"], row["seed"], f"val S {row['val_s_best']}", f"test S {row['test_s']:.4f}")


if __name__ == "__main__":
    main()
