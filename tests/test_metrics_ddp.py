"""SODMetrics reduced over 2 CPU processes (gloo) equals the single-process result, for both protocols."""

from __future__ import annotations

import itertools
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from scnn_lightning.metrics import PROTOCOLS, SODMetrics

pytestmark = pytest.mark.ddp
WORLD = 2
FRAMES = 6  # per sequence


def dataset():
    """Two sequences of small maps; rank r gets every other frame, as a DistributedSampler would."""
    gen = torch.Generator().manual_seed(0)
    items = []
    for seq in ("a", "b"):
        for i in range(FRAMES):
            gt = torch.zeros(21, 30)
            gt[4 + i : 12 + i, 6:20] = 1
            pred = (0.7 * gt + 0.3 * torch.rand(21, 30, generator=gen)).clamp(0, 1)
            items.append((pred, gt, seq, i))
    return items


def run(protocol: str, items) -> dict:
    metric = SODMetrics(protocol=protocol)
    for pred, gt, seq, i in items:
        metric.update(pred, gt, sequence=seq, frame_index=i)
    return metric.compute()


def worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        for protocol in PROTOCOLS:
            result = run(protocol, dataset()[rank::WORLD])
            torch.save(result, os.path.join(out_dir, f"{protocol}_rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_reduction_equals_single_process(tmp_path):
    mp.spawn(worker, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    for protocol, rank in itertools.product(PROTOCOLS, range(WORLD)):
        single = run(protocol, dataset())
        synced = torch.load(tmp_path / f"{protocol}_rank{rank}.pt", weights_only=False)
        assert synced["protocol"] == protocol
        for key, value in single.items():
            if isinstance(value, torch.Tensor):
                assert torch.allclose(synced[key], value, atol=1e-10), key
            elif isinstance(value, float):
                assert synced[key] == pytest.approx(value, abs=1e-10), key
