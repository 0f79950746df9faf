"""Real-frame check: SCNN against simple baselines on DAVIS-2016 val frames it never trained on.

    python -m ablations.real_frames --out runs/real [--shared ../shared/data] [-- experiments.run overrides]

Stage 1 trains on the DUTS-TR sample (real images), stage 2 on synthetic clips (no real video with
ground truth may be trained on here), and the test is the two DAVIS val sequences in the DAVSOD layout.
Rows: the full SCNN, its stage-1 FCN alone (trained on DUTS only, predicted with `scnn_lightning.predict`),
a centre prior and the built-in classical saliency models (ft, mbd, rbd). All methods are
evaluated by the same evaluator at the ground truth's resolution; `OUT/real_frames.json` and
`OUT/real_frames.md` hold the table.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from scnn_lightning.data.datamodule import name_of_test_set
from scnn_lightning.data.io import read_frame
from scnn_lightning.data.readers import load_index
from scnn_lightning.evaluate import evaluate_folders
from scnn_lightning.predict import predict
from scnn_lightning.utils import write_json, write_png_map
from scnn_lightning.weak.classical import CLASSICAL_MODELS, center_prior

KEYS = ("mae", "max_f", "mean_f", "s_measure", "max_e", "w_f")
DEFAULT_SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def write_baselines(davis: Path, out: Path) -> dict[str, Path]:
    """Maps of the centre prior and each classical model for every DAVIS frame (skipped if present)."""
    index = load_index("davsod", davis)
    folders = {name: out / name for name in ("centre", *CLASSICAL_MODELS)}
    for frame in index.frames:
        targets = {n: f / frame.sequence / f"{frame.name}.png" for n, f in folders.items()}
        if all(t.exists() for t in targets.values()):
            continue
        rgb = read_frame(frame)
        write_png_map(targets["centre"], center_prior(*rgb.shape[:2]))
        for name, model in CLASSICAL_MODELS.items():
            write_png_map(targets[name], model(rgb))
    return folders


def markdown_table(results: dict[str, dict]) -> str:
    lines = ["| method | " + " | ".join(KEYS) + " |", "|---|" + "---|" * len(KEYS)]
    for method, scores in results.items():
        lines.append(f"| {method} | " + " | ".join(f"{scores[k]:.3f}" for k in KEYS) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="folder with duts-tr-sample/ and davsod-format/")
    args, overrides = parser.parse_known_args(argv)
    davis = args.shared / "davsod-format" / "DAVIS"
    run_dir = args.out / "scnn"
    if not (run_dir / "metrics.json").exists():
        cmd = [sys.executable, "-m", "experiments.run", "data=real", f"data.root.duts={args.shared / 'duts-tr-sample'}",
               f"data.root.davsod={davis}", f"hydra.run.dir={run_dir}", *[o for o in overrides if o != "--"]]
        print(" ".join(cmd[1:]), flush=True)
        if subprocess.run(cmd).returncode != 0:
            return 1
    stage1_maps = args.out / "stage1_predictions"
    predict(davis, run_dir / "stage1" / "checkpoints" / "last.ckpt", stage1_maps, dataset="davsod", progress=False)
    methods = {"SCNN (ours)": run_dir / "predictions" / name_of_test_set("davsod", None), "FCN stage 1 (DUTS only)": stage1_maps,
               **write_baselines(davis, args.out / "baselines")}
    results = {}
    for name, folder in methods.items():
        scores = evaluate_folders(folder, davis, args.out / "eval" / name.split(" (")[0].replace(" ", "_"),
                                  temporal=False)
        results[name] = {k: scores[k] for k in (*KEYS, "protocol", "frames")}
    write_json(args.out / "real_frames.json", results)
    table = markdown_table(results)
    (args.out / "real_frames.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
