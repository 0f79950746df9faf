"""`python -m benchmarks.test_workers`: the test phase's per-frame work with and without worker processes."""

from __future__ import annotations

import json

from benchmarks.test_workers import main
from tests.davis_fixture import blurred_truth, saliency_folders, tiny_davis


def test_settings_are_timed_on_the_same_frames_and_give_the_same_maps(tmp_path, capsys):
    davis = tiny_davis(tmp_path / "davis", sequences=2, frames=4, val_fraction=0.5)
    maps = saliency_folders(tmp_path / "maps", davis, {"model": blurred_truth}) / "model"
    out = tmp_path / "results" / "workers.json"
    argv = ["--davis", str(davis), "--maps", str(maps), "--frames", "3", "--workers", "0", "1",
            "--batch-size", "2", "--network-size", "24", "32", "--out", str(out)]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert result["frames"] == 3 and result["frame_size"] == [48, 64] and "--workers 0 1" in result["command"]
    assert [r["workers"] for r in result["rows"]] == [0, 1]
    assert all(r["same_as_first"] and r["fps"] > 0 for r in result["rows"])
    assert result["rows"][0]["speedup_over_first"] == 1.0
    assert main([*argv[:4], "--frames", "99", *argv[6:]]) == 2
    assert "fewer than the 99 asked for" in capsys.readouterr().err
