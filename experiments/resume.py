"""Resuming a run with the README's command, `python -m experiments.run ckpt_path=RUN/checkpoints/last.ckpt`
(or `RUN/stage1/checkpoints/last.ckpt` when the run stopped in stage 1).

Before Hydra starts, `resume_argv` turns that command line into the run's own:

- the run directory is the checkpoint's run (`hydra.run.dir=RUN`, no new timestamped directory);
- the run's saved task overrides (`RUN/.hydra/overrides.yaml`) come first, then the given ones;
- the composed configuration must equal the saved one (`RUN/.hydra/config.yaml`, `RUN/.hydra/hydra.yaml`'s
  config-group choices) except for the keys in `HARMLESS`: any other difference (another ablation, data
  root, model width, seed, or a config file changed since the run) stops with an error naming both values;
- a stage-1 checkpoint of a run that has already reached stage 2 resumes stage 2 (`RUN/checkpoints/last.ckpt`);
- Hydra writes the resumed invocation's own config to `RUN/.hydra/resumed/`, the original stays in `RUN/.hydra/`.

`run()` then continues the stage the checkpoint was written in (see experiments/run.py). Under DDP, Lightning
relaunches the other ranks with this rewritten command line (plus `hydra.run.dir` and `hydra.output_subdir=null`),
which resolves to the same one again; torchrun or SLURM start every rank with the user's command line, and each
rank rewrites it identically from the same files (nothing here writes into `RUN/.hydra/` itself).

The module also holds the test hook `kill_point`: a process whose `SCNN_TEST_KILL_AT` environment variable
names a point sends itself SIGKILL there (tests/test_resume.py uses it to stop a run at a precise place).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from lightning.pytorch.callbacks import Callback
from omegaconf import OmegaConf

from scnn_lightning.errors import DataError
from scnn_lightning.inference.checkpoint import run_dir_of
from scnn_lightning.training.checkpoints import checkpoint_stage

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
RESUMED_SUBDIR = ".hydra/resumed"

# What a resume may change: how long it trains on, what it prints and logs, where caches live — never what
# is trained, on which data, or how it is scored. A key matches itself and everything under it.
HARMLESS = (
    "ckpt_path",                       # the resume itself
    "trainer.max_epochs",              # train longer (or stop earlier) than first planned
    "trainer.enable_progress_bar", "trainer.enable_model_summary", "trainer.log_every_n_steps",
    "logger",                          # the logger group (csv, wandb) and its settings
    "data.num_workers",                # loader processes
    "test_workers",                    # processes making the test maps: same maps and scores for any number
    "report",                          # write DIR/report/ or not
    "paths.cache_dir", "motion.cache_dir",  # the flow/prior cache: keyed by its inputs, same values anywhere
)

KILL_ENV = "SCNN_TEST_KILL_AT"


def resume_argv(argv: list[str]) -> list[str]:
    """The command line that resumes the run of a `ckpt_path=` override; `argv` unchanged without one."""
    if "-m" in argv or "--multirun" in argv:  # a sweep job resumes with its own hydra.run.dir (README)
        return list(argv)
    positions = [i for i, a in enumerate(argv) if _is_override(a)]
    given = [argv[i] for i in positions]
    parsed = OverridesParser.create().parse_overrides(given)
    ckpt_value = next((o.value() for o in reversed(parsed) if o.key_or_group == "ckpt_path"), None)
    if not ckpt_value:
        return list(argv)

    ckpt = Path(str(ckpt_value)).expanduser().absolute()
    stage = checkpoint_stage(ckpt)  # "checkpoint not found" names the path as given, made absolute
    run_dir = run_dir_of(ckpt)
    if not (run_dir / ".hydra" / "config.yaml").is_file():
        raise DataError(ckpt, f"its run directory {run_dir} has no .hydra/config.yaml, so the run cannot be "
                              f"resumed; start a new run from a stage-1 checkpoint with stage1.ckpt=PATH")
    later = run_dir / "checkpoints" / "last.ckpt"
    if stage == "image" and later.is_file():  # the run went on to stage 2: continue there, not before it
        ckpt = later

    task, hydra_given = [], []
    for text, override in zip(given, parsed):
        key = override.key_or_group
        if key.startswith("hydra"):
            if key == "hydra.run.dir":
                _check_run_dir(str(override.value()), run_dir)
            else:
                hydra_given.append(text)
        elif key != "ckpt_path":
            task.append(text)
    # A saved override given again is not repeated: a relaunched DDP rank passes them all in again, and must
    # end with the same command line
    overrides = [s for s in saved_overrides(run_dir) if s not in task] + task
    check_against_saved(run_dir, overrides)
    ours = [f"ckpt_path={_quoted(ckpt)}", f"hydra.run.dir={_quoted(run_dir)}", f"hydra.output_subdir={RESUMED_SUBDIR}"]
    flags = [a for i, a in enumerate(argv) if i not in set(positions)]
    return [*flags, *overrides, *ours, *[h for h in hydra_given if h not in ours]]


def saved_overrides(run_dir: Path) -> list[str]:
    """The task overrides the run was started with (RUN/.hydra/overrides.yaml), without any ckpt_path."""
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    try:
        saved = yaml.safe_load(path.read_text()) or []
    except yaml.YAMLError as exc:
        raise DataError(path, f"unreadable saved overrides ({exc})") from exc
    if not isinstance(saved, list) or not all(isinstance(s, str) for s in saved):
        raise DataError(path, "saved overrides must be a list of strings")
    keys = [o.key_or_group for o in OverridesParser.create().parse_overrides(saved)]
    return [s for s, key in zip(saved, keys) if key != "ckpt_path"]


def check_against_saved(run_dir: Path, overrides: list[str]) -> None:
    """DataError unless the config composed from `overrides` equals the run's saved config outside `HARMLESS`."""
    saved_path = run_dir / ".hydra" / "config.yaml"
    saved = OmegaConf.to_container(OmegaConf.load(saved_path), resolve=False)
    hydra_saved = run_dir / ".hydra" / "hydra.yaml"
    saved_choices = (OmegaConf.to_container(OmegaConf.load(hydra_saved).hydra.runtime.choices)
                     if hydra_saved.is_file() else {})
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        composed = compose(config_name="run", overrides=overrides, return_hydra_config=True)
    choices = OmegaConf.to_container(composed.hydra.runtime.choices)
    now = OmegaConf.to_container(composed, resolve=False)
    now.pop("hydra")

    problems = [f"{group}: saved {saved_choices[group]}, given {choice}" for group, choice in choices.items()
                if group in saved_choices and saved_choices[group] != choice and not _harmless(group)]
    problems += [f"{key}: saved {_short(old)}, given {_short(new)}" for key, old, new in _differences(saved, now)
                 if not _harmless(key)]
    if problems:
        raise DataError(saved_path, "resuming would change the run's configuration (given on the command line "
                                    "or by config files changed since the run):\n  " + "\n  ".join(problems)
                        + f"\nonly these may change on resume: {', '.join(HARMLESS)}")


def _differences(saved, now, prefix: str = ""):
    """(key, saved, now) for every key both configs have and whose values differ (new or removed keys are
    options added or dropped since the run, with their old behaviour as default)."""
    if isinstance(saved, dict) and isinstance(now, dict):
        for key in saved:
            if key in now:
                yield from _differences(saved[key], now[key], f"{prefix}{key}.")
    elif saved != now:
        yield prefix[:-1], saved, now


def _check_run_dir(given: str, run_dir: Path) -> None:
    if Path(given).expanduser().resolve() != run_dir.resolve():
        raise DataError(run_dir, f"hydra.run.dir: saved {run_dir}, given {given} (a resumed run stays in its "
                                 f"own directory)")


def _harmless(key: str) -> bool:
    return any(key == h or key.startswith(h + ".") for h in HARMLESS)


def _is_override(arg: str) -> bool:
    return not arg.startswith("-") and ("=" in arg or arg.startswith("~"))


def _quoted(path: Path) -> str:
    """`path` as a Hydra override value (spaces, commas, brackets and `=` need quotes)."""
    text = str(path)
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    raise DataError(path, "a path with both kinds of quotes cannot be passed to Hydra; rename it")


def _short(value, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


# -- test hook ---------------------------------------------------------------------------------------------
def kill_point(name: str) -> None:
    """Test hook: SIGKILL this process when SCNN_TEST_KILL_AT names `name` (no clean-up runs, as on a crash)."""
    if os.environ.get(KILL_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


class KillPoints(Callback):
    """`kill_point` at `<stage>:epoch=<k>` (start of training epoch k) and `<stage>:test_batch=<i>` (after test
    batch i); `build_trainer` adds it only when SCNN_TEST_KILL_AT is set."""

    def __init__(self, stage: str):
        self.stage = stage

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        kill_point(f"{self.stage}:epoch={trainer.current_epoch}")

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        kill_point(f"{self.stage}:test_batch={batch_idx}")
