"""The runner's test scores under DDP (2 CPU processes, gloo) equal one process's, for both protocols: frames a
distributed sampler would pad with are neither scored twice nor written twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.ddp_score_run import cpu_trainer, make_sources, recorded, run_test_phase

pytestmark = pytest.mark.ddp
REPO = Path(__file__).resolve().parents[1]


def test_two_processes_score_like_one(tmp_path):
    sources = make_sources(tmp_path)
    (tmp_path / "sources.json").write_text(json.dumps(sources))
    command = [sys.executable, "-m", "tests.ddp_score_run", "--out", str(tmp_path / "ddp"), "--devices", "2",
               "--sources", str(tmp_path / "sources.json")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    ddp = json.loads((tmp_path / "ddp" / "scores.json").read_text())

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each rank: the same float arithmetic in the network
    try:
        single = {p: recorded(run_test_phase(cpu_trainer(), sources, p, tmp_path / "one" / p)) for p in ddp}
    finally:
        torch.set_num_threads(threads)
    for protocol in ("pysod", "davsod"):
        one, two = single[protocol], ddp[protocol]
        assert list(two["sets"]) == ["davis-val", "davis"]
        assert one["pooled"]["frames"] == two["pooled"]["frames"] == 9
        for name in ("davis-val", "davis"):
            assert one["sets"][name] == pytest.approx(two["sets"][name], abs=1e-6), (protocol, name)
        assert one["pooled"] == pytest.approx(two["pooled"], abs=1e-6), protocol
        for name in ("davis-val", "davis"):  # per sequence: every rank's frames gathered, none twice
            assert [r["sequence"] for r in one["sequences"][name]] == [r["sequence"] for r in two["sequences"][name]]
            for a, b in zip(one["sequences"][name], two["sequences"][name]):
                assert a == pytest.approx(b, abs=1e-6), (protocol, name, a["sequence"])
        for name in ("davis-val", "davis"):  # every map written once, the same file names
            maps = [sorted(p.relative_to(root) for p in (root / name).rglob("*.png"))
                    for root in (tmp_path / "one" / protocol, tmp_path / "ddp" / protocol)]
            assert maps[0] == maps[1] and len(maps[0]) == one["sets"][name]["frames"]
