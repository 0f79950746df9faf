"""`python -m benchmarks.predict_fps`: predict's frames per second with a checkpoint on folders of frames."""

from __future__ import annotations

import json

import pytest

from benchmarks.predict_fps import main
from tests.inference_helpers import clip_frames, make_run, write_folder


def test_each_input_is_measured_with_and_without_crf_on_its_first_frames(tmp_path, capsys):
    ckpt = make_run(tmp_path / "run", "SCNN", classifier=True, size=[32, 40])
    folder = write_folder(tmp_path / "frames", clip_frames(5, height=40, width=56))
    out = tmp_path / "results" / "fps.json"
    assert main(["--ckpt", str(ckpt), "--input", f"tiny={folder}", "--frames", "3", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert "--frames 3" in result["command"] and result["checkpoint"] == str(ckpt) and result["frames"] == 3
    assert {"platform", "cpu_count", "torch", "load_average_before"} <= set(result["machine"])
    assert [(row["input"], row["crf"]) for row in result["runs"]] == [("tiny", True), ("tiny", False)]
    for row in result["runs"]:
        assert row["frames"] == 3 and row["fps"] > 0 and row["torch_threads"] >= 1
        assert row["resolution"] == [40, 56] and row["network_size"] == [32, 40]  # the run's training size
        seconds = row["seconds_per_frame"]
        assert seconds["network"] > 0 and seconds["flow"] > 0 and seconds["temporal_prior"] > 0
        assert (seconds["crf"] is not None) == row["crf"]
        expected = (seconds["flow"] + seconds["temporal_prior"]) / seconds["network"]
        assert row["motion_over_network"] == pytest.approx(expected, abs=1e-3) and row["motion_workers"] >= 0
    assert "tiny crf=on" in capsys.readouterr().out
    assert not list(out.parent.glob(".*")), "the JSON is written atomically"


def test_a_folder_short_of_frames_or_a_bad_input_stops_with_a_message(tmp_path, capsys):
    folder = write_folder(tmp_path / "frames", clip_frames(2, height=40, width=56))
    ckpt = make_run(tmp_path / "run", "sFCN")
    out = tmp_path / "fps.json"
    assert main(["--ckpt", str(ckpt), "--input", f"a={folder}", "--frames", "3", "--out", str(out)]) == 2
    assert f"{folder}: holds 2 frames, --frames asks for 3" in capsys.readouterr().err
    assert main(["--ckpt", str(tmp_path / "none.ckpt"), "--input", f"a={folder}", "--out", str(out)]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--ckpt", str(ckpt), "--input", str(folder), "--out", str(out)])
    assert not out.exists()
