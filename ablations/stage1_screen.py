"""Score stage-1 candidates on held-out data only, and report DAVIS val beside them (never used to choose).

    python -m ablations.stage1_screen runs/stage1/A runs/stage1/B --davis DATA/davis-2016-half \
        --duts DATA/duts-tr-5k --out ablations/results/davis/stage1/screen.json [--report-val]

A candidate is a finished `stage1_only=true` run. Its record holds its settings (the run's overrides), its own
validation curve (`stage1/val_curve.csv`), Ps alone on the DUTS images that stage 1 holds out (`--duts`: 10 % by a
hash of seed 0 and the name, as `data=davis` splits them; the same images for every candidate) and on every
frame of the held-out DAVIS *train* sequences (`--val-sequences`: flamingo, surf, swing, which no stage trains
on), scored as 8-bit maps at the stored frame size without the CRF (the project's evaluator, PySODMetrics
conventions), its wall time, and with `--report-val` the same on DAVIS val. `choice` ranks by the mean of
DUTS-val S and held-out Ps S; DAVIS val plays no part in it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import yaml

from ablations.temporal_prior import MAP_KEYS, davis_module, spatial_map
from scnn_lightning.data.datamodule import SaliencyDataModule
from scnn_lightning.data.io import read_frame, read_mask
from scnn_lightning.errors import DataError
from scnn_lightning.metrics.sod import SODMetrics, scalar_scores
from scnn_lightning.record_paths import record_command, record_path
from scnn_lightning.training.checkpoints import load_fcn
from scnn_lightning.training.records import read_curve
from scnn_lightning.utils import write_json


def score_ps(entries, fcn, size: tuple[int, int]) -> dict:
    """Ps alone on `entries` (frames with a mask), as saved 8-bit maps at the frame size."""
    metric = SODMetrics()
    for seq, index in entries:
        frame = read_frame(seq.frames[index])
        mask = read_mask(seq.frames[index], frame.shape[:2])
        metric.update(torch.from_numpy(spatial_map(fcn, frame, size))[None],
                      torch.from_numpy(mask.astype("float32"))[None])
    return {k: round(float(v), 4) for k, v in scalar_scores(metric.compute()).items() if k in MAP_KEYS} | {
        "frames": len(entries)}


def candidate(run: Path, duts_val, held_out, val, size: tuple[int, int]) -> dict:
    """One run's record: settings, DUTS curve, held-out Ps, wall time (and DAVIS val when `val` is given)."""
    ckpt, curve, summary = run / "stage1" / "checkpoints" / "last.ckpt", run / "stage1" / "val_curve.csv", run / "stage1.json"
    for path in (ckpt, curve, summary):
        if not path.is_file():
            raise DataError(path, "missing: screen finished stage-1 runs (stage1_only=true)")
    overrides_file = run / ".hydra" / "overrides.yaml"  # Hydra writes it; a run composed in code has none
    overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
    fcn = load_fcn(ckpt).eval()
    rows = read_curve(curve)
    record = {"run": record_path(run), "overrides": [record_command([o]) for o in overrides],
              "val_curve": rows, "train_seconds": json.loads(summary.read_text())["train_seconds"]}
    with torch.inference_mode():
        record["duts_val"] = score_ps(duts_val, fcn, size)
        record["held_out_ps"] = score_ps(held_out, fcn, size)
        if val is not None:
            record["davis_val_ps_report_only"] = score_ps(val, fcn, size)
    record["choice_score"] = round((record["duts_val"]["s_measure"] + record["held_out_ps"]["s_measure"]) / 2, 4)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished stage1_only=true run folders")
    parser.add_argument("--davis", type=Path, required=True, help="DAVIS-2016 (official layout)")
    parser.add_argument("--duts", type=Path, required=True, help="DUTS-TR (its held-out 10 %% is scored)")
    parser.add_argument("--val-sequences", nargs="+", default=["flamingo", "surf", "swing"])
    parser.add_argument("--size", nargs=2, type=int, default=[120, 216], help="network input (H W)")
    parser.add_argument("--report-val", action="store_true", help="also score DAVIS val (reported, never chosen on)")
    parser.add_argument("--out", type=Path, required=True, help="the screen's JSON record")
    args = parser.parse_args(argv)
    try:
        train = davis_module(args.davis, "train", args.val_sequences, label_every=1)
        held_out = [e for e in train.val_entries if e[0].frames[e[1]].labelled]
        val = None
        if args.report_val:
            val_dm = davis_module(args.davis, "val", [], label_every=1)
            val = [e for e in val_dm.train_entries + val_dm.val_entries if e[0].frames[e[1]].labelled]
        duts = SaliencyDataModule(train=[{"dataset": "duts", "root": str(args.duts)}], size=(16, 16), val_fraction=0.1,
                                  seed=0)
        duts.setup()
        size = tuple(args.size)
        records = {record_path(run): candidate(run, duts.val_entries, held_out, val, size) for run in args.runs}
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    ranked = sorted(records, key=lambda name: records[name]["choice_score"], reverse=True)
    write_json(args.out, {"held_out_sequences": args.val_sequences, "choice": ranked[0], "ranking": ranked,
                          "candidates": records, "command": record_command(["python", "-m", "ablations.stage1_screen",
                                                                            *sys.argv[1:]])})
    for name in ranked:
        r = records[name]
        val_s = r.get("davis_val_ps_report_only", {}).get("s_measure")
        print(f"{name}: DUTS-val S {r['duts_val']['s_measure']:.4f}  held-out Ps S {r['held_out_ps']['s_measure']:.4f} "
              f"max-F {r['held_out_ps']['max_f']:.4f} MAE {r['held_out_ps']['mae']:.4f}  "
              f"({r['train_seconds'] / 60:.0f} min){f'  [DAVIS val S {val_s:.4f}, report only]' if val_s else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
