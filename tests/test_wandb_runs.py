"""`logger=wandb`: each stage is its own W&B run, read back from the offline run files.

Offline W&B writes no summary or config file: everything a run logged is in its transaction log,
`offline-run-*/run-<id>.wandb` (what `wandb sync` uploads), a LevelDB-format log of protobuf records.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments.run import run
from scnn_lightning.training.module import VariantModule
from tests.conftest import compose_run

BLOCK, HEADER = 32768, 7  # LevelDB log: 32 KiB blocks of records, each with a 7-byte header (crc, length, type)
FULL, FIRST, LAST = 1, 2, 4  # record types (3, MIDDLE, continues a FIRST)


@dataclass
class OfflineRun:
    name: str
    job_type: str
    group: str
    config: dict
    keys: set[str]  # every history and summary key the run logged
    exit_code: int | None


def _records(path: Path) -> Iterator[bytes]:
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    pos, pending = HEADER, b""  # the file starts with a 7-byte W&B header
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        chunk, pos = data[pos + HEADER:pos + HEADER + length], pos + HEADER + length
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            yield pending


def read_offline_run(folder: Path) -> OfflineRun:
    from wandb.proto import wandb_internal_pb2 as pb

    (log,) = folder.glob("run-*.wandb")
    found = OfflineRun("", "", "", {}, set(), None)
    for data in _records(log):
        record = pb.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            found.name, found.job_type, found.group = record.run.display_name, record.run.job_type, record.run.run_group
            found.config = {item.key: json.loads(item.value_json) for item in record.run.config.update}
        elif kind in ("history", "summary"):
            items = record.history.item if kind == "history" else record.summary.update
            found.keys |= {item.key or "/".join(item.nested_key) for item in items}
        elif kind == "exit":
            found.exit_code = record.exit.exit_code
    return found


def offline_runs(root: Path) -> dict[str, OfflineRun]:
    import wandb

    # finish() only tells the W&B service that a run ended; the service writes the run's file out when it closes
    # the stream, some time later (a file of just its 7-byte header was read 1 time in 40). teardown() waits for
    # the service to exit, so every file is complete; the next wandb.init starts a new service.
    wandb.teardown()
    runs = [read_offline_run(folder) for folder in sorted(root.rglob("offline-run-*")) if folder.is_dir()]
    by_name = {r.name: r for r in runs}
    assert len(by_name) == len(runs), f"two runs share a name: {[r.name for r in runs]}"
    return by_name


@pytest.fixture(scope="module")
def wandb_env(tmp_path_factory) -> Iterator[None]:
    """Offline, quiet, and every W&B file under a temporary folder."""
    home = tmp_path_factory.mktemp("wandb_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
            mp.setenv(var, str(home))
        yield
        import wandb

        wandb.finish()  # a failed test must not leave a run open for the next one


@pytest.fixture(scope="module")
def two_stage_run(tmp_path_factory, data_dir, wandb_env) -> Path:
    """The whole schedule (stage 1, stage 2 with weak labels, test) of one variant, logged to W&B."""
    out = tmp_path_factory.mktemp("wandb_run")
    run(compose_run(out, data_dir, ["ablation=OS", "logger=wandb", "crf=null", "seed=3"]))
    return out


def test_each_stage_is_its_own_run(two_stage_run):
    import wandb

    assert wandb.run is None, "the stage-2 run was left open"
    runs = offline_runs(two_stage_run)
    assert set(runs) == {"OS-stage1-seed3", "OS-stage2-seed3"}
    stage1, stage2 = runs["OS-stage1-seed3"], runs["OS-stage2-seed3"]
    assert (stage1.job_type, stage2.job_type) == ("stage1", "stage2")
    assert stage1.group == stage2.group == "OS"
    assert (stage1.config["stage"], stage2.config["stage"]) == ("stage1", "stage2")
    assert stage1.config["variant"] == "OS" and stage1.config["seed"] == 3
    assert stage1.exit_code == stage2.exit_code == 0
    # The test scores, the test media and the weak-label rounds are stage 2's, and only stage 2's.
    for prefix in ("test/mae", "test/max_f", "test/maps", "test/pr_curve", "weak/"):
        assert any(k.startswith(prefix) for k in stage2.keys), f"{prefix} missing from the stage-2 run"
        assert not any(k.startswith(prefix) for k in stage1.keys), f"{prefix} logged into the stage-1 run"
    assert len(list(two_stage_run.rglob("metrics.csv"))) == 2, "CSV logging runs beside W&B, one log per stage"


def test_a_failed_stage_ends_its_run(two_stage_run, tmp_path, data_dir, wandb_env, monkeypatch):
    """A stage that raises still ends its run (as failed): the next job of a sweep opens its own."""
    import wandb

    def crash(self, batch, batch_idx):
        raise RuntimeError("stage 2 crashed")

    monkeypatch.setattr(VariantModule, "training_step", crash)
    stage1_ckpt = two_stage_run / "stage1" / "checkpoints" / "last.ckpt"
    cfg = compose_run(tmp_path, data_dir, ["ablation=OS", "logger=wandb", "crf=null", f"stage1.ckpt={stage1_ckpt}"])
    with pytest.raises(RuntimeError, match="stage 2 crashed"):
        run(cfg)
    assert wandb.run is None, "the failed stage left its W&B run open"
    runs = offline_runs(tmp_path)
    assert list(runs) == ["OS-stage2-seed0"] and runs["OS-stage2-seed0"].exit_code == 1
