"""Resuming a run with the README's command, `python -m experiments.run ckpt_path=RUN/.../last.ckpt`.

End to end: a run is killed with a real SIGKILL at a precise point (the test hook SCNN_TEST_KILL_AT of
experiments/resume.py) and resumed with the README's command alone. The default suite kills in stage 2; the
slow suite kills in each phase (stage 1, region classifier, stage 2, test) and compares with an uninterrupted
run. Quick in-process tests cover the command-line rewriting (contradicting and harmless overrides, DDP
relaunches), the single checkpoint file per stage and the hidden Lightning noise.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf, open_dict

from experiments.console import SHOW_ALL_ENV, hide_known_noise
from experiments.resume import KILL_ENV, RESUMED_SUBDIR, resume_argv
from experiments.run import build_trainer
from scnn_lightning.errors import DataError
from tests.conftest import CONFIG_DIR, TINY_OVERRIDES

REPO = Path(__file__).resolve().parents[1]
# Two epochs per stage, so that each stage has a checkpoint before its last epoch; the superpixel prior (the
# default) so that the region-classifier step exists; one weak-label source and no CRF to keep it short.
RUN_ARGS = [*TINY_OVERRIDES, "++trainer.max_epochs=2", "weak.sources=[ft]", "crf=null", "report=true"]
STAGE1_CKPT = Path("stage1") / "checkpoints" / "last.ckpt"
STAGE2_CKPT = Path("checkpoints") / "last.ckpt"
# (kill point, the checkpoint the README command is given, weak-label rounds finished before the kill)
PHASES = {
    "stage1": ("stage1:epoch=1", STAGE1_CKPT, ()),
    "classifier": ("classifier", STAGE1_CKPT, ()),
    "stage2": ("stage2:epoch=1", STAGE2_CKPT, ("round_000", "round_001")),
    "test": ("stage2:test_batch=0", STAGE2_CKPT, ("round_000", "round_001")),
}
NOT_OUTPUTS = {".hydra", "csv", "wandb", ".versions", "run.log"}  # logs and records, not results


def launch(project: Path, args: list[str], kill_at: str | None = None) -> subprocess.CompletedProcess:
    """`python -m experiments.run ARGS` with PROJECT_ROOT=project (its default run dir is project/logs/...)."""
    env = {k: v for k, v in os.environ.items() if k != KILL_ENV}
    env["PROJECT_ROOT"] = str(project)
    if kill_at:
        env[KILL_ENV] = kill_at
    return subprocess.run([sys.executable, "-m", "experiments.run", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=1200)


def start(project: Path, data_dir: Path, kill_at: str | None = None) -> tuple[Path, subprocess.CompletedProcess]:
    """A fresh run in its default timestamped directory; returns that directory."""
    done = launch(project, [f"paths.data_dir={data_dir}", f"paths.cache_dir={data_dir / 'cache'}", *RUN_ARGS],
                  kill_at)
    if kill_at:
        assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    else:
        assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = run_dirs(project)
    return run_dir, done


def run_dirs(project: Path) -> list[Path]:
    return sorted((project / "logs" / "runs" / "SCNN").iterdir())


def outputs(run_dir: Path) -> dict[str, str]:
    """sha256 of every result file by relative path (weak-label rounds read through their links)."""
    found = {}
    for folder, dirs, files in os.walk(run_dir, followlinks=True):
        dirs[:] = [d for d in dirs if d not in NOT_OUTPUTS]
        for name in files:
            if name not in NOT_OUTPUTS:
                path = Path(folder) / name
                found[str(path.relative_to(run_dir))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def rounds(files: dict[str, str], names) -> dict[str, str]:
    return {k: v for k, v in files.items() if any(k.startswith(f"weak_labels/{n}/") for n in names)}


def weights(ckpt: Path) -> dict:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


def same_content(a, b) -> bool:
    """Equal loaded values (torch.save's bytes carry the name of the temporary file they were written to)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_content(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_content(x, y) for x, y in zip(a, b))
    if torch.is_tensor(a) and torch.is_tensor(b):
        return torch.equal(a, b)
    return type(a) is type(b) and a == b


def loaded(path: Path):
    return torch.load(path, map_location="cpu", weights_only=True)


def kill_and_resume(project: Path, data_dir: Path, phase: str):
    """Kill a run at `phase`, resume it with the README command; (run dir, outputs at the kill, resume process)."""
    kill_at, ckpt, _ = PHASES[phase]
    run_dir, _ = start(project, data_dir, kill_at)
    at_kill = outputs(run_dir)
    assert "metrics.json" not in at_kill
    resumed = launch(project, [f"ckpt_path={run_dir / ckpt}"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert run_dirs(project) == [run_dir], "the resume must not start another run directory"
    return run_dir, at_kill, resumed


def check_finished(run_dir: Path, at_kill: dict[str, str], resumed: subprocess.CompletedProcess, phase: str):
    """What every resumed run must show, whatever the phase it was killed in."""
    finished = outputs(run_dir)
    done_rounds = PHASES[phase][2]
    assert rounds(finished, done_rounds) == rounds(at_kill, done_rounds), "finished rounds were rewritten"
    # G0, G1 after epoch 0, none after the last epoch (1)
    assert sorted(p.name for p in (run_dir / "weak_labels").glob("round_*")) == ["round_000", "round_001"]
    saved = torch.load(run_dir / STAGE2_CKPT, map_location="cpu", weights_only=True)
    assert saved["epoch"] == 1 and saved["callbacks"]["WeakLabelRefresh"]["round"] == 1
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["mae"] <= 1.0 and metrics["checkpoint"] == str(run_dir / STAGE2_CKPT)
    assert (run_dir / "report" / "report.md").is_file()
    last_line = resumed.stdout.strip().splitlines()[-1]
    assert str(run_dir / "metrics.json") in last_line and str(run_dir / "report" / "report.md") in last_line
    log = (run_dir / "run.log").read_text()
    resumed_stage = "stage 1" if PHASES[phase][1] == STAGE1_CKPT else "stage 2"
    assert f"resuming {resumed_stage} from {run_dir / PHASES[phase][1]}" in log and "done: metrics" in log
    assert (run_dir / RESUMED_SUBDIR / "overrides.yaml").is_file()  # the run's own .hydra/ stays as it was
    assert "ckpt_path" not in (run_dir / ".hydra" / "overrides.yaml").read_text()
    return finished


def test_resume_after_kill_in_stage2(tmp_path, data_dir):
    """kill -9 at the start of stage 2's second epoch; `ckpt_path=RUN/checkpoints/last.ckpt` alone finishes the
    run in its own directory, continuing the weak-label rounds without rewriting the finished ones."""
    run_dir, at_kill, resumed = kill_and_resume(tmp_path, data_dir, "stage2")
    finished = check_finished(run_dir, at_kill, resumed, "stage2")
    assert {k: v for k, v in finished.items() if k.startswith(("stage1/", "temporal/"))} == \
        {k: v for k, v in at_kill.items() if k.startswith(("stage1/", "temporal/"))}, "stage 1 was redone"
    assert "💡" not in resumed.stderr and "GPU available: False" not in resumed.stderr
    refused = launch(tmp_path, [f"ckpt_path={run_dir / STAGE2_CKPT}", "model.width=0.125"])
    assert refused.returncode == 2 and "model.width: saved 0.0625, given 0.125" in refused.stderr
    assert run_dirs(tmp_path) == [run_dir]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data_dir) -> Path:
    run_dir, _ = start(tmp_path_factory.mktemp("uninterrupted"), data_dir)
    return run_dir


@pytest.mark.slow
@pytest.mark.parametrize("phase", list(PHASES))
def test_resume_after_kill_matches_an_uninterrupted_run(phase, tmp_path, data_dir, uninterrupted):
    """Every phase: the same files as the uninterrupted run; identical where the kill came after them."""
    run_dir, at_kill, resumed = kill_and_resume(tmp_path, data_dir, phase)
    finished = check_finished(run_dir, at_kill, resumed, phase)
    reference = outputs(uninterrupted)
    assert sorted(finished) == sorted(reference)
    same = ["weak_labels/round_000/"]  # fused from the fixed saliency models only, before any training
    if phase != "stage1":  # stage 1 had finished before the kill
        assert same_content(weights(run_dir / STAGE1_CKPT), weights(uninterrupted / STAGE1_CKPT))
    if phase in ("stage2", "test"):  # and the region classifier, and stage 2's first epoch
        classifier = Path("temporal") / "region_classifier.pt"
        assert same_content(loaded(run_dir / classifier), loaded(uninterrupted / classifier))
        same += ["weak_labels/round_001/"]
    if phase == "test":  # and all of stage 2
        same += ["predictions/", "pr_curve.json"]
        assert same_content(weights(run_dir / STAGE2_CKPT), weights(uninterrupted / STAGE2_CKPT))
    assert {k: v for k, v in finished.items() if k.startswith(tuple(same))} == \
        {k: v for k, v in reference.items() if k.startswith(tuple(same))}


# -- the command line of a resume, in process ---------------------------------------------------------------
def saved_run(run_dir: Path, overrides: list[str], stage: str = "video") -> Path:
    """A run directory as Hydra and the trainer leave it: .hydra/{config,hydra,overrides}.yaml and a checkpoint."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="run", overrides=overrides, return_hydra_config=True)
    hydra_cfg = cfg.hydra
    with open_dict(cfg):
        del cfg.hydra
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create({"hydra": hydra_cfg}), run_dir / ".hydra" / "hydra.yaml")
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
    ckpt = run_dir / (STAGE2_CKPT if stage == "video" else STAGE1_CKPT)
    ckpt.parent.mkdir(parents=True)
    torch.save({"scnn": {"stage": stage, "variant": "SCNN" if stage == "video" else "image"}}, ckpt)
    return ckpt


SAVED = ["ablation=NA", "model.width=0.0625", "++trainer.max_epochs=1", "paths.data_dir=/data/one"]


@pytest.mark.parametrize("given, saved_value, given_value", [
    ("model.width=0.125", "model.width: saved 0.0625", "given 0.125"),
    ("ablation=OT", "ablation: saved NA", "given OT"),
    ("paths.data_dir=/data/two", "paths.data_dir: saved '/data/one'", "given '/data/two'"),
    ("seed=3", "seed: saved 0", "given 3"),
])
def test_contradicting_override_names_both_values(tmp_path, given, saved_value, given_value):
    ckpt = saved_run(tmp_path / "run", SAVED)
    with pytest.raises(DataError, match="resuming would change the run's configuration") as error:
        resume_argv([f"ckpt_path={ckpt}", given])
    assert saved_value in str(error.value) and given_value in str(error.value)
    assert str(tmp_path / "run" / ".hydra" / "config.yaml") in str(error.value)


def test_harmless_overrides_are_allowed_and_the_saved_ones_come_first(tmp_path):
    ckpt = saved_run(tmp_path / "run", SAVED)
    harmless = ["trainer.max_epochs=5", "logger=wandb", "data.num_workers=2", "++trainer.enable_progress_bar=true",
                "test_workers=2"]
    argv = resume_argv([f"ckpt_path={ckpt}", *harmless])
    assert argv == [*SAVED, *harmless, f"ckpt_path='{ckpt}'", f"hydra.run.dir='{tmp_path / 'run'}'",
                    f"hydra.output_subdir={RESUMED_SUBDIR}"]


def test_rewritten_command_line_is_stable_for_ddp_ranks(tmp_path, monkeypatch):
    """Lightning relaunches rank k as `python -m experiments.run <rewritten argv> hydra.run.dir="RUN" ...`:
    it must resolve to the same run, overrides and checkpoint (torchrun ranks each rewrite the same argv)."""
    ckpt = saved_run(tmp_path / "run", SAVED)
    monkeypatch.chdir(tmp_path)
    first = resume_argv([f"ckpt_path={ckpt.relative_to(tmp_path)}", "trainer.max_epochs=5"])
    relaunched = [*first, f'hydra.run.dir="{tmp_path / "run"}"', "hydra.job.name=train_ddp_process_1",
                  "hydra.output_subdir=null"]
    assert resume_argv(relaunched) == [*first, "hydra.job.name=train_ddp_process_1", "hydra.output_subdir=null"]
    assert resume_argv(first) == first


def test_stage1_checkpoint_of_a_run_in_stage2_resumes_stage2(tmp_path):
    stage1 = saved_run(tmp_path / "run", SAVED, stage="image")
    stage2 = tmp_path / "run" / STAGE2_CKPT
    stage2.parent.mkdir(parents=True)
    torch.save({"scnn": {"stage": "video", "variant": "NA"}}, stage2)
    assert f"ckpt_path='{stage2}'" in resume_argv([f"ckpt_path={stage1}"])


def test_unusable_checkpoints_are_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="checkpoint not found") as error:
        resume_argv(["ckpt_path=runs/na/checkpoints/last.ckpt"])
    assert error.value.path == tmp_path / "runs" / "na" / "checkpoints" / "last.ckpt"
    loose = tmp_path / "loose.ckpt"
    torch.save({"scnn": {"stage": "video", "variant": "NA"}}, loose)
    with pytest.raises(DataError, match="no .hydra/config.yaml"):
        resume_argv([f"ckpt_path={loose}"])
    ckpt = saved_run(tmp_path / "run", SAVED)
    with pytest.raises(DataError, match="hydra.run.dir: saved"):
        resume_argv([f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path / 'elsewhere'}"])


def test_without_ckpt_path_the_command_line_is_unchanged():
    argv = ["ablation=OT", "--cfg", "job", "hydra.run.dir=runs/x"]
    assert resume_argv(argv) == argv


# -- checkpoints and console ---------------------------------------------------------------------------------
def test_each_stage_stores_one_checkpoint_file(tmp_path):
    """last.ckpt is the only checkpoint (a plain file, no copy or link beside it) and is replaced every epoch."""
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.demos.boring_classes import BoringModel

    class Seen(Callback):
        def __init__(self):
            self.epochs = []

        def on_train_epoch_start(self, trainer, pl_module):
            ckpt = tmp_path / "checkpoints" / "last.ckpt"
            if ckpt.exists():
                self.epochs.append(torch.load(ckpt, map_location="cpu", weights_only=True)["epoch"])

    cfg = OmegaConf.create({"logger": {}, "trainer": dict(accelerator="cpu", devices=1, max_epochs=3,
                                                          limit_train_batches=2, limit_val_batches=1,
                                                          enable_progress_bar=False, enable_model_summary=False)})
    seen = Seen()
    build_trainer(cfg, tmp_path, "stage2", tmp_path / "checkpoints", [seen]).fit(BoringModel())
    files = list((tmp_path / "checkpoints").iterdir())
    assert [f.name for f in files] == ["last.ckpt"] and not files[0].is_symlink()
    assert seen.epochs == [0, 1]
    assert torch.load(files[0], map_location="cpu", weights_only=True)["epoch"] == 2


@pytest.mark.parametrize("show_all", [False, True])
def test_known_lightning_noise_is_hidden_unless_asked(monkeypatch, show_all):
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    kept_filters = list(rank_zero.filters)
    records = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = Collect()
    rank_zero.addHandler(handler)
    monkeypatch.setenv(SHOW_ALL_ENV, "1" if show_all else "0")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            hide_known_noise()
            warnings.warn("The 'train_dataloader' does not have many workers which may be a bottleneck.", UserWarning)
            warnings.warn("Checkpoint directory /x exists and is not empty.", UserWarning)
            warnings.warn("something the user must see", UserWarning)
            for line in ("💡 Tip: For seamless cloud uploads and versioning, try litmodels",
                         "GPU available: False, used: False", "GPU available: True (cuda), used: True"):
                rank_zero.info(line)
    finally:
        rank_zero.removeHandler(handler)
        rank_zero.filters[:] = kept_filters
    shown = [str(w.message) for w in caught]
    if show_all:
        assert len(shown) == 3 and len(records) == 3
    else:
        assert shown == ["something the user must see"]
        assert records == ["GPU available: True (cuda), used: True"]


@pytest.mark.ddp
def test_ddp_run_resumes_on_every_rank(tmp_path, data_dir):
    """`trainer=ddp_sim`: Lightning relaunches rank 1 with the rewritten command line, which must resolve to the
    same run, configuration and checkpoint; a finished run resumed with more epochs trains them on both ranks."""
    args = [f"paths.data_dir={data_dir}", f"paths.cache_dir={data_dir / 'cache'}", "trainer=ddp_sim", *TINY_OVERRIDES,
            "motion=magnitude", "weak.sources=[ft]", "crf=null"]
    first = launch(tmp_path, args)
    assert first.returncode == 0, first.stderr[-3000:]
    (run_dir,) = run_dirs(tmp_path)
    resumed = launch(tmp_path, [f"ckpt_path={run_dir / STAGE2_CKPT}", "trainer.max_epochs=2"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert run_dirs(tmp_path) == [run_dir]
    assert torch.load(run_dir / STAGE2_CKPT, map_location="cpu", weights_only=True)["epoch"] == 1
    # G0 of the first run; G1, made when the resumed run starts (the first run's last epoch made none)
    assert sorted(p.name for p in (run_dir / "weak_labels").glob("round_*")) == ["round_000", "round_001"]
    assert json.loads((run_dir / "metrics.json").read_text())["checkpoint"] == str(run_dir / STAGE2_CKPT)
