"""The temporal prior's region classifier under DDP (2 CPU processes, gloo): the runner's `build_motion`
trains it on rank 0 only; the other rank waits at a barrier and loads the very same file."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import experiments.run as runner
from scnn_lightning.inference.checkpoint import save_inference_checkpoint
from scnn_lightning.motion.classifier import RegionClassifier
from scnn_lightning.training.module import ImageStageModule
from scnn_lightning.utils import write_json
from tests.conftest import compose_run

pytestmark = pytest.mark.ddp
WORLD = 2


def rank_main(rank: int, tmp: Path, data_dir: Path, stage1_ckpt: Path) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp / 'rendezvous'}", rank=rank, world_size=WORLD)
    trained = []
    real = runner.train_region_classifier

    def counting(index, **kwargs):
        trained.append(rank)
        time.sleep(1.0)  # the other rank reaches the classifier step well before the file exists
        return real(index, **kwargs)

    runner.train_region_classifier = counting
    provider = runner.build_motion(compose_run(tmp / "run", data_dir), tmp / "run", stage1_ckpt, True)
    write_json(tmp / f"rank{rank}.json", {"trained": len(trained), "digest": provider.classifier.digest})
    dist.destroy_process_group()


def test_rank_zero_trains_the_region_classifier_and_the_other_rank_loads_it(tmp_path, data_dir):
    runner.generate_data(compose_run(tmp_path / "run", data_dir))
    stage1 = save_inference_checkpoint(ImageStageModule(width=0.0625, fc_channels=64, dropout=0.0),
                                       tmp_path / "stage1.ckpt")
    mp.spawn(rank_main, args=(tmp_path, data_dir, stage1), nprocs=WORLD, join=True)

    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    assert [r["trained"] for r in reports] == [1, 0]
    written = RegionClassifier.load(tmp_path / "run" / "temporal" / "region_classifier.pt")
    assert reports[0]["digest"] == reports[1]["digest"] == written.digest
    assert not list((tmp_path / "run" / "temporal").glob(".*.part*"))  # written atomically, nothing left over
