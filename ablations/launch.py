"""Launch the ablation study: every variant × seed as its own process (so it also works under DDP).

    python -m ablations.launch --out runs/study --seeds 0 1 2 [--variants ...] [--extras crf upsample paper]
        [-- any experiments.run overrides, e.g. data=benchmark trainer=gpu]

Per seed, stage 1 and the temporal prior's region classifier are trained once (`stage1_only=true`)
and every variant's cascade is built from that checkpoint with that classifier, so the variants differ
only in what the paper's ablation changes. The extra comparisons
are the CRF switched off (`SCNN-noCRF`, paper Fig. 9: the weights the seed's SCNN tested, last or best, tested
again with `crf=null`, not trained again), score maps from all blocks (`SCNN-allblocks`,
Fig. 10; it needs its own stage 1 because its FCN has more score layers) and the flow-magnitude
baseline in place of the paper's superpixel temporal prior (`SCNN-magnitude`); on request (not by default, it
needs data=davis), SCNN with the paper's weak labels (`SCNN-paper`: weak=davis, the Otsu label in the loss at full
weight on every frame, no image mixing) beside a study run with other weak-label settings. An extra's own
settings replace the study's overrides of the same keys.
The plan is recorded in OUT/study.json (each distinct launch command and the runs it plans), so that
`ablations.collect` quotes the command and shows which runs are still to come.
`--records DIR` (the study's committed records, e.g. ablations/results/davis/runs) makes a study span
machines: each run's records are copied there as soon as it finishes (and the plan merged into
DIR/study.json), and a run recorded there is done already, made on another machine. A run whose
checkpoint another run still needs (a seed's stage 1; SCNN for SCNN-noCRF) is made again on this machine,
since the records keep no checkpoints, and its new records replace the old (runs on different machines
need not agree bit for bit, and the records must describe the model the later runs used).
`--stage1 STUDY` builds every run from another study's stage 1 and region classifier
(STUDY/seed<N>/stage1, which must be finished) instead of training them again: a study of one lever
(more epochs, a larger label budget) then differs from the base study in stage 2 alone. `--shared-stage1`
plans no stage 1 at all: the overrides name one for every seed (data=davis starts from the shipped one).
A run whose metrics.json exists is skipped, so an interrupted study resumes where it stopped; a run
stopped midway continues from its last checkpoint (`ckpt_path=`, experiments/resume.py) instead of
starting again. For long studies, start it in the background (each run's own log is DIR/run.log):

    nohup python -m ablations.launch --out runs/davis ... > runs/davis/launch.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from experiments.report.records import copy_records
from scnn_lightning.errors import DataError
from scnn_lightning.models.variants import VARIANTS
from scnn_lightning.record_paths import record_command
from scnn_lightning.utils import write_json

STUDY_FILE = "study.json"
OWN_STAGE1 = ["stage1.ckpt=null", "motion.classifier=null"]  # train them, whatever the data config names

EXTRAS = {  # option name -> (tag, variant, overrides, needs its own stage 1); {seed_dir}: the seed's folder
    "crf": ("SCNN-noCRF", "SCNN", ["crf=null", "stage2.ckpt={seed_dir}/SCNN/checkpoints"], False),
    "upsample": ("SCNN-allblocks", "SCNN", ["model.upsample=all"], True),
    "magnitude": ("SCNN-magnitude", "SCNN", ["motion=magnitude"], False),
    "paper": ("SCNN-paper", "SCNN", ["weak=davis", "weak.target=binary", "weak.ignore_band=0.0", "weak.weight=1.0",
                                     "weak.frames_per_epoch=1.0", "weak.network=current", "weak.propagated_weight=fit",
                                     "data.image_mix=0.0"], False),
}
DEFAULT_EXTRAS = ["crf", "upsample", "magnitude"]


def override_key(override: str) -> str:
    """The key (or config group) a Hydra override sets: `+a.b=1` and `~a.b` set `a.b`."""
    return override.split("=", 1)[0].lstrip("+~")


def with_overrides(base: list[str], own: list[str]) -> list[str]:
    """`base` then `own`, where a key that `own` sets is dropped from `base` (Hydra refuses one key twice)."""
    keys = {override_key(o) for o in own}
    return [o for o in base if override_key(o) not in keys] + own


def plan(out: Path, seeds: list[int], variants: list[str], extras: list[str], overrides: list[str],
         stage1_from: Path | None = None, shared_stage1: bool = False) -> list[tuple]:
    """The ordered list of (run directory, command overrides) the study consists of; with `stage1_from`
    (another study's folder) its seeds' stage 1 runs are used and none is planned; with `shared_stage1` the
    runs' own configuration names one stage 1 and region classifier for all seeds (data=davis: the shipped
    ones) and none is planned or passed."""
    jobs = []
    for seed in seeds:
        base = out / f"seed{seed}"
        stage1 = base / "stage1" if stage1_from is None else stage1_from / f"seed{seed}" / "stage1"
        ckpt, classifier = stage1 / "stage1" / "checkpoints" / "last.ckpt", stage1 / "temporal" / "region_classifier.pt"
        if stage1_from is not None:  # a study's committed records hold stage1.json but no weights
            if not finished(stage1):
                raise DataError(stage1, "is not a finished stage-1 run (no stage1.json): --stage1 needs one per seed")
            for needed in (ckpt, classifier):
                if not needed.is_file():
                    raise DataError(needed, "is missing: --stage1 needs the study's run folder, not its records")
        elif not shared_stage1:  # trained here even where the data config names a shipped one (data=davis)
            jobs.append((stage1, [f"seed={seed}", "stage1_only=true", *OWN_STAGE1, *overrides]))
        shared = [] if shared_stage1 else [f"stage1.ckpt={ckpt}", f"motion.classifier={classifier}"]
        for code in variants:
            jobs.append((base / code, [f"ablation={code}", f"seed={seed}", *shared, *overrides]))
        for name in extras:
            tag, code, extra, own_stage1 = EXTRAS[name]
            extra = [o.format(seed_dir=base) for o in extra]
            runs = [f"ablation={code}", f"tag={tag}", f"seed={seed}", *with_overrides(overrides, extra)]
            jobs.append((base / tag, [*runs[:3], *OWN_STAGE1, *runs[3:]] if own_stage1 else [*runs, *shared]))
    return jobs


def read_study(out: Path) -> list[dict]:
    """The launches recorded in OUT/study.json ([] when there is none): [{command, runs}], runs relative to OUT."""
    path = out / STUDY_FILE
    if not path.is_file():
        return []
    try:
        launches = json.loads(path.read_text())["launches"]
        if not all(isinstance(x["command"], str) and isinstance(x["runs"], list) for x in launches):
            raise TypeError("a launch without its command and runs")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(path, f"is not a study plan of ablations.launch ({err})") from err
    return launches


def record_study(out: Path, argv: list[str], jobs: list[tuple]) -> None:
    """Add this launch to OUT/study.json, unless the same command is already its last entry (a resume)."""
    launches = read_study(out)
    entry = {"command": record_command(["python", "-m", "ablations.launch", *argv]),
             "runs": [run_dir.relative_to(out).as_posix() for run_dir, _ in jobs]}
    if not launches or launches[-1] != entry:
        write_json(out / STUDY_FILE, {"launches": [*launches, entry]})


def finished(run_dir: Path) -> bool:
    """A run is complete once its last file is written (metrics.json, or stage1.json for stage 1)."""
    return (run_dir / "metrics.json").is_file() or (run_dir / "stage1.json").is_file()


def merge_study(out: Path, records: Path) -> None:
    """Keep the study's plan in its records: the launches of OUT/study.json are added to those recorded there
    before (by other machines or sessions), each once, in order."""
    launches = read_study(records)
    new = [x for x in read_study(out) if x not in launches]
    if new:
        write_json(records / STUDY_FILE, {"launches": [*launches, *new]})


def to_run(out: Path, jobs: list[tuple], records: Path | None) -> list[bool]:
    """Per job, whether it must run here: not finished here nor recorded in `records` (finished elsewhere),
    or a job whose files (a stage-1 or SCNN checkpoint named in its overrides) a job run here needs."""
    def done(run_dir: Path) -> bool:
        return finished(run_dir) or (records is not None and finished(records / run_dir.relative_to(out)))

    needed = [not done(run_dir) for run_dir, _ in jobs]
    for i in reversed(range(len(jobs))):  # a job's inputs come before it in the plan
        if needed[i]:
            for n, (run_dir, _) in enumerate(jobs[:i]):
                if not finished(run_dir) and any(f"{run_dir}{os.sep}" in o for o in jobs[i][1]):
                    needed[n] = True
    return needed


def resume_point(run_dir: Path) -> Path | None:
    """The checkpoint an unfinished run continues from: its stage-2 one, else its stage-1 one (None: start
    afresh, e.g. a run stopped before its first epoch ended or one never started by Hydra)."""
    if not (run_dir / ".hydra" / "config.yaml").is_file():
        return None
    for ckpt in (run_dir / "checkpoints" / "last.ckpt", run_dir / "stage1" / "checkpoints" / "last.ckpt"):
        if ckpt.is_file():
            return ckpt
    return None


def command(run_dir: Path, job: list[str]) -> list[str]:
    """The experiments.run command of one job; it resumes the run's last checkpoint when there is one."""
    ckpt = resume_point(run_dir)
    resume = [f"ckpt_path={ckpt}"] if ckpt is not None else []
    return [sys.executable, "-m", "experiments.run", *job, *resume, f"hydra.run.dir={run_dir}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--extras", nargs="*", default=DEFAULT_EXTRAS, choices=list(EXTRAS))
    parser.add_argument("--records", type=Path, help="the study's records folder: runs recorded there are done; "
                                                     "each run's records are copied there when it finishes")
    parser.add_argument("--stage1", type=Path, metavar="STUDY",
                        help="use STUDY/seed<N>/stage1 (stage 1 and region classifier) instead of training them")
    parser.add_argument("--shared-stage1", action="store_true",
                        help="the overrides name one stage 1 and region classifier for every seed (data=davis does: "
                             "the shipped ones): plan no stage-1 run")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    argv = sys.argv[1:] if argv is None else argv
    args, overrides = parser.parse_known_args(argv)
    overrides = [o for o in overrides if o != "--"]
    try:
        if args.stage1 and args.shared_stage1:
            raise DataError(args.stage1, "--stage1 and --shared-stage1 both name where stage 1 comes from: give one")
        jobs = plan(args.out, args.seeds, args.variants, args.extras, overrides, args.stage1, args.shared_stage1)
        if not args.dry_run:
            args.out.mkdir(parents=True, exist_ok=True)
            record_study(args.out, argv, jobs)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for n, ((run_dir, job), needed) in enumerate(zip(jobs, to_run(args.out, jobs, args.records)), 1):
        if not needed:
            where = "" if finished(run_dir) else f" (recorded in {args.records})"
            print(f"[{n}/{len(jobs)}] done already: {run_dir}{where}", flush=True)
            continue
        cmd = command(run_dir, job)
        print(f"[{n}/{len(jobs)}] {' '.join(cmd[1:])}", flush=True)
        if args.dry_run:
            continue
        started = time.time()
        result = subprocess.run(cmd)
        if result.returncode != 0:
            print(f"run failed ({result.returncode}): {run_dir}", file=sys.stderr)
            return result.returncode
        print(f"    finished in {time.time() - started:.0f} s", flush=True)
        if args.records is not None:
            copy_records(run_dir, args.records / run_dir.relative_to(args.out))
            merge_study(args.out, args.records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
