"""Smoke tests of the benchmarks at tiny sizes: each module runs end to end and writes the figures it promises,
so a change that breaks a benchmark fails here rather than on the next measurement. The numbers themselves
are not checked (they need the full sizes and a quiet machine); their layout and the verdicts are."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from benchmarks import eval_throughput, predict_memory, prior_parity, prior_profile, refresh_scale, runtime
from benchmarks import weak_vs_na
from benchmarks.measured_run import run_measured
from scnn_lightning.data.readers import load_index
from scnn_lightning.motion.temporal_prior import PRIOR_STEPS
from tests.davis_fixture import tiny_davis
from tests.inference_helpers import clip_frames, write_folder

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def keep_threads():
    """Some benchmarks set torch's and OpenCV's thread counts for their process; the tests after them keep theirs."""
    torch_threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    yield
    torch.set_num_threads(torch_threads)
    cv2.setNumThreads(cv2_threads)


def test_every_benchmark_module_is_run_by_a_test():
    """A benchmark added without a smoke test fails here."""
    modules = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py") if p.stem != "__init__")
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    imported = set(re.findall(r"from benchmarks\.(\w+) import", tests))
    imported |= {name for line in re.findall(r"from benchmarks import (.+)", tests) for name in re.findall(r"\w+", line)}
    assert [m for m in modules if m not in imported] == []


def test_augment_speed_times_both_pipelines_and_checks_the_mask_stays_aligned(tmp_path):
    from benchmarks import augment_speed  # kornia comes with the test extra, so this runs in CI

    out = tmp_path / "augment.json"
    assert augment_speed.main(["--batch-size", "2", "--batches", "1", "--warmup", "0", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [row["transforms"] for row in result["rows"]] == ["crop+flip+colour jitter", "crop+flip"]
    for row in result["rows"]:
        assert row["ms_per_batch"]["albumentations"] > 0 and row["ms_per_batch"]["kornia"] > 0
        off = row["mask_off_threshold"]
        assert off["albumentations"] == off["kornia"] == 0.0 and 0.0 <= off["albumentations_inter_nearest"] <= 1.0


def test_eval_throughput_compares_both_metric_codes_and_fails_when_they_disagree(tmp_path):
    out = tmp_path / "eval.json"
    argv = ["--maps", "3", "--height", "24", "--width", "32", "--batch", "2", "--out", str(out)]
    assert eval_throughput.main(argv) == 0
    report = json.loads(out.read_text())
    assert set(report["ours"]) == set(report["pysodmetrics"]) == set(eval_throughput.KEYS)
    assert report["agree"] and report["ours_maps_per_s"] > 0 and report["pysodmetrics_maps_per_s"] > 0
    assert eval_throughput.main([*argv, "--tolerance", "-1"]) == 1  # no difference is below a negative tolerance


def test_predict_memory_reports_peak_memory_per_video_length(capsys):
    # Its `speed` mode is `with_and_without_crf`, which test_predict_fps runs: not repeated here (predict processes
    # are the slow part of these tests).
    argv = ["--size", "40x56", "--width", "0.0625", "--fc-channels", "16", "--batch-size", "2"]
    assert predict_memory.main(["memory", "--frames", "3", "5", *argv]) == 0
    result = json.loads(capsys.readouterr().out)
    assert list(result["runs"]) == ["3", "5"] and result["size"] == [40, 56]
    assert all(row["peak_rss_mib"] > 0 and row["fps"] > 0 for row in result["runs"].values())
    assert result["max_over_min_peak"] >= 1.0


def test_prior_parity_of_a_checkout_against_itself_holds(tmp_path):
    davis = tiny_davis(tmp_path / "davis", sequences=3, frames=3, height=32, width=48, val_fraction=0.67)
    out = tmp_path / "parity.json"
    argv = ["--reference", str(ROOT), "--davis", str(davis), "--work", str(tmp_path / "work"), "--out", str(out)]
    assert prior_parity.main(argv) == 0
    result = json.loads(out.read_text())
    val = load_index("davis", davis, "val").sequences
    assert set(result["sequences"]) == {s.name for s in val}
    assert result["overall"] == {"frames": sum(len(s.frames) for s in val), "mean_abs": 0.0,
                                 "worst_frame_mean_abs": 0.0, "max_abs": 0.0, "frames_over_limits": 0, "holds": True}


def test_prior_parity_of_predict_maps_flags_a_frame_over_the_limits(tmp_path):
    old, new = tmp_path / "old" / "seq", tmp_path / "new" / "seq"
    for folder in (old, new):
        folder.mkdir(parents=True)
    maps = np.full((2, 10, 10), 100, np.uint8)
    for i, pixels in enumerate(maps):
        cv2.imwrite(str(old / f"{i:05d}.png"), pixels)
    maps[1, 0, 0] += 5  # one pixel 5/255 off: over the 4/255 limit of a pixel
    for i, pixels in enumerate(maps):
        cv2.imwrite(str(new / f"{i:05d}.png"), pixels)
    out = tmp_path / "maps.json"
    assert prior_parity.main(["--maps", str(old.parent), str(new.parent), "--out", str(out)]) == 1
    seq = json.loads(out.read_text())["sequences"]["seq"]
    assert seq == {"frames": 2, "mean_abs": 0.025, "worst_frame_mean_abs": 0.05, "max_abs": 5.0,
                   "frames_over_limits": 1}


def test_prior_profile_times_every_step_and_keeps_other_sections(tmp_path):
    folder = write_folder(tmp_path / "frames", clip_frames(3, height=40, width=56))
    out = tmp_path / "profile.json"
    argv = ["--input", f"tiny={folder}", "--frames", "2", "--out", str(out)]
    assert prior_profile.main([*argv, "--full-width", "tiny", "--label", "before"]) == 0
    assert prior_profile.main([*argv, "--label", "after"]) == 0
    sections = json.loads(out.read_text())
    assert [row["classifier"] for row in sections["before"]["rows"]] == ["shipped", "full_width"]
    assert [row["classifier"] for row in sections["after"]["rows"]] == ["shipped"]
    for row in sections["before"]["rows"]:
        steps = row["ms_per_frame"]
        assert set(steps) == {"flow", *PRIOR_STEPS, "prior_steps_sum", "prior_one_call"} and steps["flow"] > 0
        assert steps["prior_steps_sum"] == pytest.approx(sum(steps[s] for s in PRIOR_STEPS), abs=0.1)
        assert row["resolution"] == [40, 56]
    assert prior_profile.main([*argv, "--frames", "5", "--label", "x"]) == 2  # the folder holds 3 frames


def test_a_measured_run_gives_its_output_and_peak_memory_or_the_end_of_its_errors():
    chatty = "import sys; sys.stderr.write('x' * 300_000); print('done'); bytearray(50 * 2**20)"
    run = run_measured([sys.executable, "-c", chatty], dict(os.environ), "chatty")  # more than a pipe holds
    assert run.stdout == "done\n" and run.peak_rss_mib > 50 and run.wall_s > 0
    with pytest.raises(RuntimeError, match=r"failing failed \(3\): .*last words"):
        run_measured([sys.executable, "-c", "import sys; sys.stderr.write('last words'); sys.exit(3)"],
                     dict(os.environ), "failing")


def test_refresh_scale_measures_round_1_in_a_process_of_its_own(tmp_path):
    out = tmp_path / "refresh.json"
    niceness = os.getpriority(os.PRIO_PROCESS, 0)  # the test's own: never ahead of the other tests
    result = refresh_scale.main(["--frames", "100", "--height", "32", "--width", "48", "--nice", str(niceness),
                                 "--work", str(tmp_path / "work"), "--out", str(out)])
    assert json.loads(out.read_text()) == result
    assert result["frames"] == [100] and result["labels_written"] == [90] and result["heldout_frames"] == [3]
    for key in ("peak_rss_mib", "seconds_per_frame", "cpu_seconds_per_frame", "round0_seconds_per_frame"):
        assert len(result[key]) == 1 and result[key][0] > 0
    assert result["last_over_first"] == {"peak_rss_mib": 1.0, "seconds_per_frame": 1.0, "cpu_seconds_per_frame": 1.0}
    assert result["settings"]["niceness"] == [niceness]
    with pytest.raises(SystemExit, match="multiples of 100"):
        refresh_scale.main(["--frames", "150", "--out", str(out)])


def test_runtime_times_each_component_and_their_shares(tmp_path):
    out = tmp_path / "runtime.json"
    assert runtime.main(["--height", "32", "--width", "48", "--frames", "1", "--width-mult", "0.0625",
                         "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    timed = [c for c in runtime.COMPONENTS if c in result]
    assert timed[:3] == ["flow", "temporal_prior", "network"] and all(result[c] > 0 for c in timed)
    assert result["total"] == pytest.approx(sum(result[c] for c in timed))
    assert sum(result[f"{c}_ratio"] for c in timed) == pytest.approx(1.0)
    expected = (result["flow"] + result["temporal_prior"]) / result["network"]
    assert result["motion_over_network"] == pytest.approx(expected)


def test_weak_vs_na_trains_both_variants_and_scores_the_weak_rounds(tmp_path):
    out = tmp_path / "weak_vs_na.json"
    result = weak_vs_na.main(["--seeds", "0", "--epochs", "2", "--train-sequences", "2", "--frames", "10",
                              "--test-sequences", "1", "--label-every", "5", "--height", "32", "--width", "48",
                              "--out", str(out)])
    assert json.loads(out.read_text())["mean"] == result["mean"]
    assert (result["train_frames"], result["test_frames"], result["label_budget"]) == (20, 10, 0.2)
    run = result["runs"][0]
    assert set(run) == {"seed", "NA", "SCNN"} and set(result["mean"]) == {"NA", "SCNN", "scnn_lower_mae_than_NA_seeds"}
    for code in ("NA", "SCNN"):
        assert all(0.0 <= run[code][k] <= 1.0 for k in weak_vs_na.SCORES) and run[code]["steps"] > 0
    assert run["SCNN"]["trained_frames"] > run["NA"]["trained_frames"]  # the weakly labelled frames join
    assert [r["round"] for r in run["SCNN"]["weak_rounds"]] == [0, 1]
