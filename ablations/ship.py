"""Ship a study run's model as the package's default, with DAVIS-val scores anyone can re-check.

    python -m ablations.ship runs/davis-study/seed*/SCNN --davis DATA/davis-2016-half \
        [--weights scnn_lightning/weights] [--results ablations/results/davis] [--work runs/ship]

0. Of the runs given, the one whose tested weights score the best validation S-measure on its held-out *train*
   sequences (`tested.val_s_measure` in metrics.json under test_ckpt=best, else the last epoch's `val/s_measure`
   of its stage-2 CSV log) is shipped; DAVIS val plays no part in the choice.
   Every candidate's score is recorded under `selection`.

1. `WEIGHTS/scnn-davis.ckpt`: the run's final model with only what inference reads (no optimiser state),
   `WEIGHTS/temporal/region_classifier.pt`: its temporal prior's classifier (found beside the checkpoint,
   as in a run directory).
2. The shipped defaults are measured as a user would: `python -m scnn_lightning.predict` WITHOUT `--ckpt`
   on DAVIS val (the training size and the CRF as trained come from the checkpoint), then
   `python -m scnn_lightning.evaluate` of those maps (the runner's scoring code).
3. `RESULTS/shipped_per_sequence.csv` (sequence, frames, mae, s_measure, max_f, …) and
   `WEIGHTS/scnn-davis.json`: training data and settings, licence, CRF default, `metrics.davis_val`, the
   commands, and the run's own test scores beside them (they agree when predict reproduces the runner).
4. `--figure PNG`: the middle frame of each `--show` sequence: frame | ground truth | map | overlay.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
from omegaconf import OmegaConf

from experiments.run import run_tested
from scnn_lightning import evaluate, predict
from scnn_lightning.data.io import read_frame, read_mask
from scnn_lightning.data.readers import load_index
from scnn_lightning.errors import DataError
from scnn_lightning.inference.overlay import blend
from scnn_lightning.inference.checkpoint import CLASSIFIER_IN_RUN, load_checkpoint, save_inference_checkpoint
from scnn_lightning.record_paths import in_record_form, record_command, record_path
from scnn_lightning.utils import atomic_path, write_json
from scnn_lightning.weights import DEFAULT_CHECKPOINT, register_weights_resolver

SHIPPED_NAME = "scnn-davis"
PER_SEQUENCE_COLUMNS = ["sequence", "frames", "mae", "s_measure", "max_f", "mean_f", "max_e", "mean_e", "w_f"]
METRIC_KEYS = ("mae", "s_measure", "max_f", "mean_f", "max_e", "mean_e", "w_f")
LICENCE = ("Trained on DAVIS-2016 (CC BY-NC 4.0) with weak labels derived from CSNet saliency maps "
           "(CC BY-NC-SA 4.0) and on DUTS-TR images: for non-commercial research use only.")


def run_files(run: Path) -> tuple[Path, Path, dict]:
    """The checkpoint the run tested (checkpoints/last.ckpt or best.ckpt), its region classifier and its
    metrics.json; DataError when one is missing."""
    metrics = run / "metrics.json"
    ckpt = run / "checkpoints" / f"{run_tested(run)}.ckpt"  # DataError naming metrics.json when it is missing
    if not ckpt.is_file():
        raise DataError(ckpt, "missing: the checkpoint the run tested")
    config = OmegaConf.load(run / ".hydra" / "config.yaml")
    register_weights_resolver()  # data=davis names the shared classifier as ${weights:...}
    recorded = OmegaConf.select(config, "motion.classifier", default=None, throw_on_resolution_failure=False)
    classifier = Path(recorded) if recorded else run / CLASSIFIER_IN_RUN
    if not classifier.is_file():
        raise DataError(classifier, "the run's region classifier is missing (its temporal prior needs it)")
    return ckpt, classifier, json.loads(metrics.read_text())


def validation_score(run: Path) -> float:
    """The validation S (held-out train sequences) of the weights the run tested: recorded in metrics.json under
    `tested` (test_ckpt=best), else the last `val/s_measure` of its newest stage-2 CSV log."""
    tested = json.loads((run / "metrics.json").read_text()).get("tested", {}) if (run / "metrics.json").is_file() else {}
    if "val_s_measure" in tested:
        return float(tested["val_s_measure"])
    logs = sorted((run / "csv" / "stage2").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name[8:]))
    if not logs:
        raise DataError(run / "csv" / "stage2", "no CSV log of stage 2 (train with logger=csv to choose by validation)")
    with logs[-1].open(newline="") as handle:
        scores = [row["val/s_measure"] for row in csv.DictReader(handle) if row.get("val/s_measure")]
    if not scores:
        raise DataError(logs[-1], "holds no val/s_measure: the run validated on nothing")
    return float(scores[-1])


def select_run(runs: list[Path]) -> tuple[Path, dict]:
    """The run to ship (best validation S-measure of its tested weights, `validation_score`; the first on a tie)
    and the selection record. A single run is shipped as it is; its score is recorded when it has one (null when
    it validated on nothing)."""
    if len(runs) == 1:  # nothing to choose between
        try:
            scores = {runs[0]: validation_score(runs[0])}
        except DataError:
            scores = {runs[0]: None}
        best = runs[0]
    else:
        scores = {run: validation_score(run) for run in runs}
        best = max(runs, key=scores.__getitem__)
    return best, {"rule": "highest val/s_measure of the tested weights on held-out DAVIS-train sequences "
                          "(DAVIS val unused)",
                  "candidates": {record_path(run): score for run, score in scores.items()}}


def copy_weights(ckpt: Path, classifier: Path, weights: Path) -> Path:
    """Write the inference checkpoint and the classifier into `weights`; returns the checkpoint path."""
    shipped = save_inference_checkpoint(load_checkpoint(ckpt).module, weights / f"{SHIPPED_NAME}.ckpt")
    target = weights / CLASSIFIER_IN_RUN
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        shutil.copyfile(classifier, tmp)
    return shipped


def measure(davis: Path, work: Path, ckpt: Path | None) -> tuple[dict, list[dict], dict]:
    """predict + evaluate on DAVIS val: (metrics, per-sequence rows, the two commands). `ckpt` None: predict
    without --ckpt, i.e. the package's shipped model, as a user runs it."""
    maps, scores = work / "maps", work / "eval"
    predict_args = ["--input", str(davis), "--dataset", "davis", "--split", "val", "--out", str(maps), "--no-progress"]
    predict_args += ["--ckpt", str(ckpt)] if ckpt is not None else []
    evaluate_args = ["--pred", str(maps), "--gt", str(davis), "--dataset", "davis", "--split", "val",
                     "--out", str(scores), "--no-temporal"]
    if predict.main(predict_args) != 0:
        raise DataError(maps, "predict with the shipped checkpoint failed (its error is above)")
    if evaluate.main(evaluate_args) != 0:
        raise DataError(scores, "evaluating the shipped model's maps failed (its error is above)")
    metrics = json.loads((scores / "metrics.json").read_text())
    with (scores / "per_sequence.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    commands = {"predict": record_command(["python", "-m", "scnn_lightning.predict", *predict_args]),
                "evaluate": record_command(["python", "-m", "scnn_lightning.evaluate", *evaluate_args])}
    return metrics, rows, commands


def write_per_sequence(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=PER_SEQUENCE_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_figure(path: Path, davis: Path, maps: Path, sequences: list[str]) -> None:
    """Rows of frame | ground truth | the shipped model's map | overlay, for the middle frame of each sequence."""
    index = {s.name: s for s in load_index("davis", davis, "val").sequences}
    rows = []
    for name in sequences:
        if name not in index:
            raise DataError(davis, f"no val sequence {name!r} to show; val has {', '.join(sorted(index))}")
        frame = index[name].frames[len(index[name].frames) // 2]
        rgb, mask = read_frame(frame), read_mask(frame)
        saliency = cv2.imread(str(maps / name / f"{frame.name}.png"), cv2.IMREAD_GRAYSCALE)
        if saliency is None:
            raise DataError(maps / name / f"{frame.name}.png", "the shipped model's map is missing")
        gray = [np.repeat(m[..., None], 3, axis=2) for m in (mask * np.uint8(255), saliency)]
        rows.append(np.concatenate([rgb, *gray, blend(rgb, saliency / 255.0)], axis=1))
    with atomic_path(path) as tmp:  # the temporary name keeps the .png suffix cv2 needs
        if not cv2.imwrite(str(tmp), cv2.cvtColor(np.concatenate(rows), cv2.COLOR_RGB2BGR)):
            raise DataError(path, "could not write the figure")


def training_record(run: Path) -> dict:
    """What the model was trained on and how, from the run's saved Hydra config and overrides."""
    cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    overrides = OmegaConf.to_container(OmegaConf.load(run / ".hydra" / "overrides.yaml"))
    pick = lambda key: OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)  # noqa: E731
    sources = [s if isinstance(s, str) else s.get("name", s.get("folder")) for s in
               OmegaConf.to_container(pick("weak.sources"), resolve=False)]
    return {
        "from_scratch": True,  # no ImageNet weights: every layer starts from random initialisation
        "stage1": ", ".join(f"{s['dataset']} images ({Path(s['root']).name})" for s in pick("data.images"))
                  + f"; {pick('data.val_fraction')} of them held out for validation",
        "stage2": (f"DAVIS-2016 {pick('data.videos.0.split')} split, ground truth on every "
                   f"{pick('data.label_every')}th frame of each sequence, weak labels (Eq. 7-8, Algorithm 1) "
                   f"for the rest from {', '.join(sources)} and the network's own map; whole train sequences "
                   f"held out for validation (val_fraction {pick('data.val_fraction')}); DAVIS val never used"),
        "settings": {"size": list(pick("data.size")), "width": pick("model.width"),
                     "batch_size": pick("data.batch_size"), "max_epochs": pick("trainer.max_epochs"),
                     "stage1_lr": pick("stage1.lr"), "stage2_lr": pick("stage2.lr"), "seed": pick("seed"),
                     "motion_prior": pick("motion.prior")},
        "overrides": in_record_form(overrides),
    }


def ship(runs: list[Path], davis: Path, weights: Path, results: Path, work: Path, *, figure: Path | None = None,
         show: tuple[str, ...] = ()) -> dict:
    run, selection = select_run(runs)
    ckpt, classifier, run_metrics = run_files(run)
    shipped = copy_weights(ckpt, classifier, weights)
    loaded = load_checkpoint(shipped)
    metrics, rows, commands = measure(davis, work, None if shipped.resolve() == DEFAULT_CHECKPOINT else shipped)
    write_per_sequence(results / "shipped_per_sequence.csv", rows)
    if figure is not None:
        write_figure(figure, davis, work / "maps", list(show))
    card = {
        "model": loaded.code,
        "checkpoint": shipped.name,
        "checkpoint_mb": round(shipped.stat().st_size / 2**20, 2),
        "source_run": record_path(run),
        "selection": selection,
        "training": training_record(run),
        "predict_defaults": {"crf": loaded.crf is not None, "network_size": list(loaded.trained_size or []),
                             "classifier": str(CLASSIFIER_IN_RUN)},
        "licence": LICENCE,
        "metrics": {"davis_val": {**{k: metrics[k] for k in METRIC_KEYS}, "frames": metrics["frames"],
                                  "protocol": metrics["protocol"], "scored_at": "240x427 (as stored)"}},
        "run_test_scores": run_metrics.get("datasets", {}).get("davis-val"),
        "commands": {"ship": record_command(["python", "-m", "ablations.ship", *sys.argv[1:]]), **commands},
    }
    write_json(weights / f"{SHIPPED_NAME}.json", card)
    return card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+",
                        help="finished study runs (e.g. runs/davis-study/seed*/SCNN); the best by validation ships")
    parser.add_argument("--davis", type=Path, required=True, help="DAVIS-2016 root (official layout)")
    parser.add_argument("--weights", type=Path, default=Path(__file__).resolve().parents[1] / "scnn_lightning" / "weights")
    parser.add_argument("--results", type=Path, default=Path(__file__).resolve().parent / "results" / "davis")
    parser.add_argument("--work", type=Path, default=Path("runs/ship"), help="maps and scores of the check")
    parser.add_argument("--figure", type=Path, help="write frame | ground truth | map | overlay rows here")
    parser.add_argument("--show", nargs="+", default=["blackswan", "bmx-trees"], help="val sequences in --figure")
    args = parser.parse_args(argv)
    try:
        card = ship(args.runs, args.davis, args.weights, args.results, args.work, figure=args.figure,
                    show=tuple(args.show))
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(card["metrics"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
