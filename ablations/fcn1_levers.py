"""The FCN1 lever table: how each `stage2.fcn1` option trains, chosen on validation S (held-out train sequences).

    python -m ablations.fcn1_levers runs/fcn1/train runs/fcn1/frozen runs/fcn1/supervised runs/fcn1/OT \
        --stage1 scnn_lightning/weights/stage1-duts.ckpt --davis DATA/davis-2016-half \
        --out ablations/results/davis/levers/fcn1

Each run is a finished stage-2 run (`python -m experiments.run data=davis ... stage2.fcn1=...`). Per run the
record gives its option, the validation S of the tested epoch (what chooses), Ps of its trained FCN1 scored alone
on every frame of the held-out train sequences beside stage 1's Ps on the same frames (is FCN1 still a saliency
prior after stage 2? the issue's bar: no worse than stage 1's minus 0.02 S), the validation curve's last Ps and P
columns, its wall time, and DAVIS val with its `priors` block (report only). Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from ablations.stage1_screen import score_ps
from ablations.temporal_prior import davis_module
from scnn_lightning.errors import DataError
from scnn_lightning.record_paths import record_command, record_path
from scnn_lightning.training.checkpoints import load_fcn
from scnn_lightning.training.records import read_curve
from scnn_lightning.utils import write_json

PS_MARGIN = 0.02  # how far below stage 1's Ps a trained FCN1's Ps may fall and still count as a saliency prior


def lever_row(run: Path, held_out, size: tuple[int, int], stage1_ps: float) -> dict:
    metrics_file = run / "metrics.json"
    if not metrics_file.is_file():
        raise DataError(metrics_file, "missing: give finished stage-2 runs")
    metrics = json.loads(metrics_file.read_text())
    cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    curve = read_curve(run / "val_curve.csv")
    row = {"run": record_path(run), "variant": metrics["variant"], "seed": metrics["seed"],
           "fcn1": cfg.stage2.get("fcn1", "train"), "fcn1_lr_scale": cfg.stage2.get("fcn1_lr_scale", 1.0),
           "fcn1_loss_weight": cfg.stage2.get("fcn1_loss_weight", 1.0), "stage2_loss": cfg.stage2.get("loss", "balanced"),
           "val_s_measure": round(metrics["tested"].get("val_s_measure", curve[-1]["s_measure"]), 4),
           "tested_epoch": metrics["tested"].get("epoch"),
           "val_curve_last": {k: round(v, 4) for k, v in curve[-1].items() if k.startswith(("ps_", "p_"))},
           "train_seconds": metrics["train_seconds"],
           "davis_val_report_only": {k: round(metrics[k], 4) for k in ("s_measure", "max_f", "mae")},
           "davis_val_priors_report_only": metrics.get("priors", {})}
    if metrics["variant"] in ("SCNN", "NA", "FP", "FG", "OS"):  # the variants with FCN1
        with torch.inference_mode():
            ps = score_ps(held_out, load_fcn(run / "checkpoints" / f"{metrics['tested']['checkpoint']}.ckpt").eval(), size)
        row["held_out_fcn1_ps"] = ps
        row["fcn1_still_a_prior"] = ps["s_measure"] >= stage1_ps - PS_MARGIN
    return row


def markdown(rows: list[dict], stage1: dict) -> str:
    lines = [f"Stage 1's Ps alone on the held-out train sequences: S {stage1['s_measure']:.4f}, MAE {stage1['mae']:.4f}.",
             "", "| run | variant | fcn1 | validation S (chooses) | FCN1 Ps S held-out | still a prior | "
             "DAVIS val S / MAE (report only) | minutes |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ps = r.get("held_out_fcn1_ps", {}).get("s_measure")
        lines.append(f"| {r['run']} | {r['variant']} | {r['fcn1'] if 'held_out_fcn1_ps' in r else '—'} | "
                     f"{r['val_s_measure']:.4f} | {f'{ps:.4f}' if ps is not None else '—'} | "
                     f"{r.get('fcn1_still_a_prior', '—')} | {r['davis_val_report_only']['s_measure']:.4f} / "
                     f"{r['davis_val_report_only']['mae']:.4f} | {r['train_seconds'] / 60:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished stage-2 runs")
    parser.add_argument("--stage1", type=Path, required=True, help="the stage 1 they started from")
    parser.add_argument("--davis", type=Path, required=True)
    parser.add_argument("--val-sequences", nargs="+", default=["flamingo", "surf", "swing"])
    parser.add_argument("--size", nargs=2, type=int, default=[120, 216])
    parser.add_argument("--out", type=Path, required=True, help="OUT.json and OUT.md are written")
    args = parser.parse_args(argv)
    try:
        train = davis_module(args.davis, "train", args.val_sequences, label_every=1)
        held_out = [e for e in train.val_entries if e[0].frames[e[1]].labelled]
        size = tuple(args.size)
        with torch.inference_mode():
            stage1 = score_ps(held_out, load_fcn(args.stage1).eval(), size)
        rows = [lever_row(run, held_out, size, stage1["s_measure"]) for run in args.runs]
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rows.sort(key=lambda r: r["val_s_measure"], reverse=True)
    record = {"stage1": record_path(args.stage1), "held_out_sequences": args.val_sequences,
              "stage1_held_out_ps": stage1, "ps_margin": PS_MARGIN, "rows": rows,
              "command": record_command(["python", "-m", "ablations.fcn1_levers", *sys.argv[1:]])}
    write_json(args.out.with_suffix(".json"), record)
    args.out.with_suffix(".md").write_text(markdown(rows, stage1))
    print(markdown(rows, stage1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
