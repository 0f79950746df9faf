"""The inspect CLI: one JSON object on stdout, problems reported instead of crashes, clean errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from scnn_lightning.data.inspect import main
from tests.fixtures_layouts import REAL_DAVSOD, H, W, box_mask, needs, save, save_frame, save_gray_mask

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scnn_lightning.data.inspect", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


@needs(REAL_DAVSOD)
def test_cli_on_real_davsod_sample():
    result = run_cli(str(REAL_DAVSOD), "--dataset", "davsod")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # exactly one JSON object
    assert (report["sequences"], report["frames"], report["labelled_frames"]) == (2, 130, 130)
    assert report["per_sequence"]["bmx-trees"] == {"frames": 80, "labelled_frames": 80}
    assert report["problems"] == []


def test_cli_unknown_dataset_is_one_line_without_traceback(tmp_path):
    result = run_cli(str(tmp_path), "--dataset", "visal")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().count("\n") == 0
    assert "Traceback" not in result.stderr
    assert "unknown dataset 'visal'; valid names: msra10k" in result.stderr


def test_cli_empty_root_and_bad_split(tmp_path, capsys):
    assert main([str(tmp_path), "--dataset", "davis"]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path}: dataset root is an empty folder\n"
    save_frame(tmp_path / "JPEGImages" / "480p" / "bear" / "00000.jpg")
    assert main([str(tmp_path), "--dataset", "davis", "--split", "trainval"]) == 2
    assert "valid splits: train, val" in capsys.readouterr().err


def test_mixed_frame_sizes_are_problems_not_crashes(tmp_path, capsys):
    clip = tmp_path / "clip"
    save_frame(clip / "00000.png")
    save_frame(clip / "00001.png", shape=(H + 2, W))
    (clip / "desktop.ini").write_text("x")
    assert main([str(clip), "--dataset", "frames"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["frames"] == 2 and report["labelled_frames"] == 0
    mixed = f"{clip / '00001.png'}: frame is {H + 2}x{W} (HxW) but the first frame of sequence clip (00000.png) is"
    assert any(p.startswith(mixed) for p in report["problems"])
    assert any("skipped non-image files: 1 file(s) (desktop.ini)" in p for p in report["problems"])


def test_mask_size_mismatch_and_orphan_gt_are_problems(tmp_path, capsys):
    seq = tmp_path / "blackswan"
    for i in range(2):
        save_frame(seq / "Imgs" / f"blackswan_{i:05d}.jpg")
    save_gray_mask(seq / "ground-truth" / "blackswan_00000.png", box_mask())
    save_gray_mask(seq / "ground-truth" / "blackswan_00001.png", box_mask(shape=(H, W + 1)))
    save(seq / "ground-truth" / "blackswan_00077.png", box_mask().astype("uint8"))
    assert main([str(tmp_path), "--dataset", "davsod"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["labelled_frames"] == 2
    mask = seq / "ground-truth" / "blackswan_00001.png"
    frame = seq / "Imgs" / "blackswan_00001.jpg"
    assert f"{mask}: mask is {H}x{W + 1} (HxW) but frame {frame} is {H}x{W} (HxW)" in report["problems"]
    orphan = "ground truth matching no frame: 1 file(s) (blackswan_00077.png)"
    assert any(orphan in p for p in report["problems"])


def test_truncated_frame_is_a_problem_because_every_file_is_decoded(tmp_path, capsys):
    seq = tmp_path / "bear"
    for i in range(2):
        save_frame(seq / "Imgs" / f"bear_{i:05d}.jpg", shape=(64, 64))
        save_gray_mask(seq / "ground-truth" / f"bear_{i:05d}.png", box_mask((64, 64)))
    cut = seq / "Imgs" / "bear_00001.jpg"
    cut.write_bytes(cut.read_bytes()[:-300])  # the header, and so the size, is intact
    mask = seq / "ground-truth" / "bear_00000.png"
    mask.write_bytes(mask.read_bytes()[:-12])  # only the IEND chunk is gone
    assert main([str(tmp_path), "--dataset", "davsod"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert any(p.startswith(f"{cut}: unreadable or truncated image (image file is truncated") for p in report["problems"])
    assert f"{mask}: truncated image (PNG: no IEND chunk at the end)" in report["problems"]


def test_out_writes_the_report_and_a_bad_out_stops_before_decoding(tmp_path, capsys, monkeypatch):
    from scnn_lightning.data import inspect

    clip = tmp_path / "clip"
    save_frame(clip / "00000.png")
    assert main([str(clip), "--dataset", "frames", "--out", str(tmp_path / "reports" / "clip.json")]) == 0
    assert capsys.readouterr().out == ""
    assert json.loads((tmp_path / "reports" / "clip.json").read_text())["frames"] == 1

    def no_decoding(index):
        raise AssertionError("files decoded before the output path was checked")

    monkeypatch.setattr(inspect, "check_index", no_decoding)
    for out in (tmp_path / "reports", clip / "00000.png" / "report.json"):  # a folder; a path under a file
        assert main([str(clip), "--dataset", "frames", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: {out}: the output file "), err
