"""`python -m scnn_lightning.predict`: maps per frame for videos, folders and datasets, with the edge cases."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from scnn_lightning.errors import DataError
from scnn_lightning.inference import motion as motion_module
from scnn_lightning.inference import stream as stream_module
from scnn_lightning.inference.motion import NO_MOTION_PT, MotionStep
from scnn_lightning.motion.classifier import RegionClassifier
from scnn_lightning.motion.provider import MotionProvider
from scnn_lightning.predict import main, predict
from tests.conftest import SHARED
from tests.inference_helpers import clip_frames, make_run, video_frame_count, write_folder, write_video

TIMING_KEYS = {"flow", "temporal_prior", "network", "crf", "total", "frames", "resolution", "network_size",
               "device", "variant"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {"SCNN": make_run(root / "scnn", "SCNN", classifier=True), "sFCN": make_run(root / "sfcn", "sFCN"),
            "FG": make_run(root / "fg", "FG"), "OT": make_run(root / "ot", "OT"), "OS": make_run(root / "os", "OS"),
            "image": make_run(root / "stage1", "image")}


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", clip_frames(8))


def pngs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.png") if not p.name.startswith("."))


def gray(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None and image.dtype == np.uint8 and image.ndim == 2, path
    return image


def test_video_gives_one_map_per_frame_overlay_and_timings(tmp_path, runs, video):
    """SCNN with the superpixel prior; its classifier is found in the run directory of the checkpoint."""
    timings = predict(video, runs["SCNN"], tmp_path, overlay=True, batch_size=3, progress=False)
    assert pngs(tmp_path) == [f"{i:05d}.png" for i in range(8)]
    assert all(gray(tmp_path / name).shape == (64, 96) for name in pngs(tmp_path))
    assert video_frame_count(tmp_path / "overlay.mp4") == 8
    written = json.loads((tmp_path / "timings.json").read_text())
    assert written == timings and TIMING_KEYS <= set(written)
    assert written["frames"] == 8 and written["resolution"] == [64, 96] and written["network_size"] == [64, 96]
    assert written["variant"] == "SCNN" and written["prior"] == "superpixel" and written["device"] == "cpu"
    for step in ("flow", "temporal_prior", "network", "crf", "total"):  # CRF is on: the run has CRF params
        assert written[step] > 0, step
    assert not list(tmp_path.glob(".*")), "temporary files left behind"


def test_frame_folder_keeps_frame_names_and_sfcn_computes_no_flow(tmp_path, runs, monkeypatch):
    folder = write_folder(tmp_path / "frames", clip_frames(5), prefix="shot_")

    def no_flow(*args, **kwargs):
        raise AssertionError("sFCN must not compute optical flow")

    monkeypatch.setattr(motion_module, "compute_flow", no_flow)
    timings = predict(folder, runs["sFCN"], tmp_path / "out", size=(32, 48), crf=False, progress=False)
    assert pngs(tmp_path / "out") == [f"shot_{i:03d}.png" for i in range(5)]
    assert gray(tmp_path / "out" / "shot_000.png").shape == (64, 96)  # back at the frame size
    assert timings["flow"] is None and timings["temporal_prior"] is None and timings["crf"] is None
    assert timings["network_size"] == [32, 48] and timings["network"] > 0


def test_each_variant_gets_only_its_own_motion_input(tmp_path, runs, video, monkeypatch):
    def no_prior(*args, **kwargs):
        raise AssertionError("FG takes the flow image, not a temporal prior")

    with monkeypatch.context() as m:
        m.setattr(motion_module, "magnitude_prior", no_prior)
        m.setattr(motion_module, "superpixel_prior", no_prior)
        fg = predict(video, runs["FG"], tmp_path / "fg", crf=False, progress=False)
    assert fg["flow"] > 0 and fg["prior"] is None and len(pngs(tmp_path / "fg")) == 8
    ot = predict(video, runs["OT"], tmp_path / "ot", prior="magnitude", crf=False, progress=False)
    assert ot["prior"] == "magnitude" and ot["temporal_prior"] > 0
    stage1 = predict(video, runs["image"], tmp_path / "stage1", crf=False, progress=False)
    assert stage1["variant"] == "image" and stage1["flow"] is None and len(pngs(tmp_path / "stage1")) == 8


def test_superpixel_prior_without_classifier_says_what_to_do(tmp_path, runs, video, capsys):
    with pytest.raises(DataError, match="--prior magnitude") as raised:
        predict(video, runs["OT"], tmp_path, progress=False)
    assert raised.value.path.name == "region_classifier.pt"
    elsewhere = runs["SCNN"].parents[1] / "temporal" / "region_classifier.pt"
    done = predict(video, runs["OT"], tmp_path, classifier=elsewhere, crf=False, progress=False)
    assert done["prior"] == "superpixel" and done["frames"] == 8


def test_defaults_follow_the_runs_recorded_config(tmp_path, video):
    """A Hydra run records its training size and motion settings in <run>/.hydra/config.yaml."""
    ckpt = make_run(tmp_path / "run", "OT")
    (tmp_path / "run" / ".hydra").mkdir()
    (tmp_path / "run" / ".hydra" / "config.yaml").write_text(
        "paths: {cache_dir: /elsewhere}\ndata: {size: [32, 48]}\n"
        "motion: {flow: farneback, prior: magnitude, classifier: null, cache_dir: '${paths.cache_dir}'}\n")
    timings = predict(video, ckpt, tmp_path / "out", crf=False, progress=False)
    assert timings["network_size"] == [32, 48] and timings["prior"] == "magnitude"
    assert gray(tmp_path / "out" / "00000.png").shape == (64, 96)
    override = predict(video, ckpt, tmp_path / "out2", crf=False, size=(40, 56), progress=False)
    assert override["network_size"] == [40, 56]


def test_one_frame_video_uses_the_constant_no_motion_prior(tmp_path, runs):
    one = write_video(tmp_path / "one.mp4", clip_frames(1))
    timings = predict(one, runs["SCNN"], tmp_path / "out", crf=False, progress=False)
    assert pngs(tmp_path / "out") == ["00000.png"] and timings["frames"] == 1
    step = MotionStep(MotionProvider(prior="magnitude"), ("pt", "flow_gray"))
    maps, seconds = step(clip_frames(1)[0], None, "zero")
    assert np.all(maps["pt"] == NO_MOTION_PT) and maps["pt"].shape == (64, 96)
    assert np.ptp(maps["flow_gray"]) == 0  # the flow image of zero flow: one flat value


def test_frame_size_change_mid_sequence_processes_each_frame_at_its_size(tmp_path, runs):
    frames = clip_frames(3) + [cv2.resize(f, (80, 48)) for f in clip_frames(3, seed=1)]
    folder = write_folder(tmp_path / "frames", frames)
    timings = predict(folder, runs["SCNN"], tmp_path / "out", prior="magnitude", crf=False, overlay=True,
                      batch_size=4, progress=False)
    shapes = [gray(tmp_path / "out" / f"f{i:03d}.png").shape for i in range(6)]
    assert shapes == [(64, 96)] * 3 + [(48, 80)] * 3
    assert timings["frames"] == 6 and video_frame_count(tmp_path / "out" / "overlay.mp4") == 6


def test_unreadable_video_exits_2_with_one_line(tmp_path, runs, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video" * 10)
    args = ["--input", str(bad), "--ckpt", str(runs["sFCN"]), "--out", str(tmp_path / "out"), "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and "Traceback" not in err[0]


def test_unreadable_frame_mid_folder_fails_cleanly_and_keeps_finished_maps(tmp_path, runs, capsys):
    folder = write_folder(tmp_path / "frames", clip_frames(6))
    (folder / "f004.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    assert main(["--input", str(folder), "--ckpt", str(runs["sFCN"]), "--out", str(out), "--no-crf",
                 "--no-progress", "--batch-size", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "f004.png" in err[0]
    for png in out.glob("*.png"):  # whatever was written is a complete map
        gray(png)
    assert not (out / "f004.png").exists() and not list(out.glob(".*"))


def test_a_rerun_with_other_settings_stops_unless_told_to_overwrite(tmp_path, runs, video, capsys):
    """predict.json records what made the maps; a rerun resumes only with the same settings."""
    out = tmp_path / "out"
    first = predict(video, runs["sFCN"], out, crf=True, progress=False)
    record = json.loads((out / "predict.json").read_text())
    assert record["crf"]["iterations"] == 2 and record["maps"] == [] and len(record["checkpoint_sha256"]) == 64
    args = ["--input", str(video), "--out", str(out), "--no-progress"]
    for changed, named in ((["--ckpt", str(runs["sFCN"]), "--no-crf"], "crf"),
                           (["--ckpt", str(runs["OS"]), "--crf"], "checkpoint_sha256")):
        assert main([*args, *changed]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(out / "predict.json") in err[0] and "--overwrite" in err[0]
        assert f"; {named} " in err[0] or f"({named} " in err[0], err[0]
        assert err[0].count(" there, ") == 1, err[0]  # only the setting that differs
    again = predict(video, runs["sFCN"], out, crf=True, progress=False)  # same settings: nothing left to do
    assert again["frames"] == 0 and again["skipped"] == 8
    assert json.loads((out / "timings.json").read_text()) == first  # still the run that made the maps
    redone = predict(video, runs["sFCN"], out, crf=False, overwrite=True, progress=False)
    assert redone["frames"] == 8 and redone["crf"] is None
    assert json.loads((out / "timings.json").read_text()) == redone
    assert json.loads((out / "predict.json").read_text())["crf"] is None
    (out / "predict.json").unlink()  # maps without a record (an older predict): refused as well
    with pytest.raises(DataError, match="no predict.json"):
        predict(video, runs["sFCN"], out, crf=False, progress=False)


def test_two_frames_of_one_name_and_an_output_inside_the_input_are_refused(tmp_path, runs, capsys):
    folder = write_folder(tmp_path / "frames", clip_frames(3))
    cv2.imwrite(str(folder / "f001.jpg"), clip_frames(1)[0])
    with pytest.raises(DataError) as raised:
        predict(folder, runs["sFCN"], tmp_path / "out", crf=False, progress=False)
    assert str(folder / "f001.jpg") in str(raised.value) and str(folder / "f001.png") in str(raised.value)
    assert not list((tmp_path / "out").glob("*.png"))
    (folder / "f001.jpg").unlink()
    for out in (folder, folder / "maps"):
        assert main(["--input", str(folder), "--ckpt", str(runs["sFCN"]), "--out", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "input folder" in err[0] and str(out) in err[0]
    assert not (folder / "maps").exists() and pngs(folder) == ["f000.png", "f001.png", "f002.png"]


def test_bad_output_paths_and_checkpoints_end_in_one_line_before_any_work(tmp_path, runs, video, capsys,
                                                                         monkeypatch):
    not_a_ckpt = tmp_path / "notes.ckpt"
    not_a_ckpt.write_bytes(b"\x89PNG\r\n\x1a\n not a checkpoint at all")
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    args = ["--input", str(video), "--no-progress", "--no-crf"]
    # The output path is checked first: the unreadable checkpoint is not even read.
    for out in (a_file, a_file / "maps"):
        assert main([*args, "--ckpt", str(not_a_ckpt), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(out) in err[0] and "output folder" in err[0], err
    assert main([*args, "--ckpt", str(not_a_ckpt), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(not_a_ckpt) in err[0] and "weights_only" not in err[0], err

    def disk_full(path, saliency, size=None):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(stream_module, "write_png_map", disk_full)
    assert main([*args, "--ckpt", str(runs["sFCN"]), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {tmp_path / 'out' / '00000.png'}: No space left on device"]


def test_prior_maps_are_written_beside_the_saliency_maps_and_evaluate_ignores_them(tmp_path, runs, video, capsys):
    from scnn_lightning.evaluate import evaluate_folders

    out = tmp_path / "out"
    timings = predict(video, runs["SCNN"], out, prior="magnitude", crf=False, maps=("p", "ps", "pt"), progress=False)
    assert timings["frames"] == 8 and json.loads((out / "predict.json").read_text())["maps"] == ["ps", "pt", "p"]
    for name in ("ps", "pt", "p"):
        assert pngs(out / "priors" / name) == pngs(out) and len(pngs(out)) == 8
    ps, pt, p = (gray(out / "priors" / name / "00003.png").astype(float) / 255 for name in ("ps", "pt", "p"))
    assert ps.shape == (64, 96) and np.abs(p - ps * pt).max() < 0.03  # P = Ps * Pt, each resized on its own
    (out / "priors" / "pt" / "00005.png").unlink()  # a missing prior map: that frame is made again
    assert predict(video, runs["SCNN"], out, prior="magnitude", crf=False, maps=("ps", "pt", "p"),
                   progress=False)["frames"] == 1
    masks = tmp_path / "gt"
    for name in pngs(out):
        save_mask = (gray(out / name) > 128).astype(np.uint8) * 255
        masks.mkdir(exist_ok=True)
        cv2.imwrite(str(masks / name), save_mask)
    scored = evaluate_folders(out, masks, tmp_path / "eval", temporal=False)
    assert scored["frames"] == 8 and scored["extra_predictions"] == []  # the priors/ tree is not a sequence
    assert evaluate_folders(out / "priors" / "ps", masks, tmp_path / "eval_ps", temporal=False)["frames"] == 8
    args = ["--input", str(video), "--out", str(tmp_path / "ot"), "--prior", "magnitude", "--no-progress"]
    assert main([*args, "--ckpt", str(runs["OT"]), "--maps", "ps,p"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no prior map ps, p" in err[0] and err[0].endswith("its prior maps: pt"), err
    with pytest.raises(SystemExit):
        main([*args, "--ckpt", str(runs["OT"]), "--maps", "pt,flow"])


def test_the_number_of_motion_workers_does_not_change_the_maps(tmp_path, runs, video):
    for workers in (0, 1, 2):
        timings = predict(video, runs["SCNN"], tmp_path / f"w{workers}", crf=False, workers=workers, progress=False)
        assert timings["motion_workers"] == workers and timings["temporal_prior"] > 0 and timings["frames"] == 8
    for name in pngs(tmp_path / "w0"):
        reference = (tmp_path / "w0" / name).read_bytes()
        assert (tmp_path / "w1" / name).read_bytes() == reference == (tmp_path / "w2" / name).read_bytes(), name


def test_an_error_in_the_network_stage_shuts_the_motion_workers_down(tmp_path, runs, video, monkeypatch):
    import multiprocessing

    def fails(*args, **kwargs):
        raise RuntimeError("network failed")

    monkeypatch.setattr(stream_module, "network_probability", fails)
    with pytest.raises(RuntimeError, match="network failed"):
        predict(video, runs["SCNN"], tmp_path / "out", crf=False, workers=2, batch_size=1, progress=False)
    assert multiprocessing.active_children() == []


def test_restart_skips_written_maps_but_uses_them_as_flow_partners(tmp_path, runs, video):
    out = tmp_path / "out"
    predict(video, runs["SCNN"], out, prior="magnitude", crf=False, progress=False)
    first = {name: gray(out / name) for name in pngs(out)}
    stamps = {name: (out / name).stat().st_mtime_ns for name in pngs(out)}
    for name in ("00003.png", "00007.png"):  # 00007 is the last frame: its partner 00006 is kept
        (out / name).unlink()
    again = predict(video, runs["SCNN"], out, prior="magnitude", crf=False, overlay=True, progress=False)
    assert again["frames"] == 2 and again["skipped"] == 6
    for name, before in first.items():
        assert np.array_equal(gray(out / name), before), name  # same inputs, partners included
        if name not in ("00003.png", "00007.png"):
            assert (out / name).stat().st_mtime_ns == stamps[name]
    assert video_frame_count(out / "overlay.mp4") == 8  # the overlay covers skipped frames too


def test_killed_writer_leaves_no_partial_files_and_the_rerun_completes(tmp_path, runs, video, monkeypatch):
    out = tmp_path / "out"
    real_write = stream_module.write_png_map
    calls = []

    def dies_on_fourth(path, saliency, size=None):
        calls.append(path)
        if len(calls) == 4:
            raise KeyboardInterrupt
        real_write(path, saliency, size)

    monkeypatch.setattr(stream_module, "write_png_map", dies_on_fourth)
    with pytest.raises(KeyboardInterrupt):
        predict(video, runs["sFCN"], out, crf=False, overlay=True, progress=False)
    assert pngs(out) == ["00000.png", "00001.png", "00002.png"]
    assert not (out / "overlay.mp4").exists() and not list(out.glob(".*"))
    monkeypatch.setattr(stream_module, "write_png_map", real_write)
    again = predict(video, runs["sFCN"], out, crf=False, overlay=True, progress=False)
    assert again["frames"] == 5 and len(pngs(out)) == 8 and video_frame_count(out / "overlay.mp4") == 8


def test_batch_size_does_not_change_the_maps(tmp_path, runs, video):
    predict(video, runs["OS"], tmp_path / "b1", crf=False, batch_size=1, progress=False)
    predict(video, runs["OS"], tmp_path / "b5", crf=False, batch_size=5, progress=False)
    for name in pngs(tmp_path / "b1"):
        diff = np.abs(gray(tmp_path / "b1" / name).astype(int) - gray(tmp_path / "b5" / name).astype(int))
        assert diff.max() <= 1, name


def _tested_run(root: Path, data_dir: Path, trained: bool):
    """A tiny SCNN run (superpixel prior, CRF on) at network size 40x56 on 48x64 test frames: trained end to
    end, or (fast) the runner's test step alone on a random-weight checkpoint (`stage2.ckpt`, as the study's
    SCNN-noCRF is tested). Returns its config and stage-2 checkpoint."""
    import lightning
    import torch

    from experiments.run import module_kwargs, run
    from scnn_lightning.inference.checkpoint import save_inference_checkpoint
    from scnn_lightning.training.module import create_module
    from tests.conftest import compose_run

    overrides = ["ablation=SCNN", "data.size=[40,56]", "++trainer.limit_test_batches=1.0"]
    if not trained:
        cfg = compose_run(root, data_dir, overrides)
        module = create_module("SCNN", **module_kwargs(cfg, root, cfg.stage2))
        stage1 = make_run(root / "given", "image", width=cfg.model.width, fc_channels=cfg.model.fc_channels)
        classifier = root / "given" / "temporal" / "region_classifier.pt"
        RegionClassifier.untrained(module.model.fcn1.backbone).save(classifier)
        given = save_inference_checkpoint(module.eval(), root / "given" / "checkpoints" / "last.ckpt")
        lightning_ckpt = {**torch.load(given, weights_only=True), "pytorch-lightning_version": lightning.__version__}
        torch.save(lightning_ckpt, given)  # what Trainer.test(ckpt_path=) asks of a checkpoint besides the weights
        overrides += [f"stage1.ckpt={stage1}", f"++stage2.ckpt={given}", f"motion.classifier={classifier}"]
    cfg = compose_run(root, data_dir, overrides)
    run(cfg)
    return cfg, root / "checkpoints" / "last.ckpt" if trained else given


@pytest.mark.parametrize("trained", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_predict_writes_the_runners_test_maps_byte_for_byte(tmp_path, data_dir, trained):
    """predict with a run's checkpoint and batch size on the run's test frames writes exactly the PNGs the
    runner's test step wrote (its `predictions/`, the maps its scores are of). Both resize the frame to the
    network as the datamodule does, feed Pt as the motion cache's 8-bit values, and run the CRF at the
    frame's size; any other way of making the inputs or the output changes some bytes."""
    cfg, ckpt = _tested_run(tmp_path / "run", data_dir, trained)
    timings = predict(cfg.data.generate.test.out, ckpt, tmp_path / "pred", dataset="davis",
                      batch_size=cfg.data.batch_size, progress=False)
    assert timings["crf"] > 0 and timings["network_size"] == [40, 56] and timings["resolution"] == [48, 64]
    runner = sorted((tmp_path / "run" / "predictions" / "davis").rglob("*.png"))
    assert len(runner) == timings["frames"] == 4
    for png in runner:
        mine = tmp_path / "pred" / png.parent.name / png.name
        assert mine.read_bytes() == png.read_bytes(), png.relative_to(tmp_path)


def _davsod_subset(root: Path, frames: int | None) -> Path:
    """DAVIS/blackswan of the shared sample data in the DAVSOD layout, optionally its first frames only."""
    source = SHARED / "data" / "davsod-format" / "DAVIS" / "blackswan"
    if not source.is_dir():
        pytest.skip("shared DAVSOD-format sample data not present")
    for sub in ("Imgs", "ground-truth"):
        files = sorted((source / sub).iterdir())[:frames]
        (root / "blackswan" / sub).mkdir(parents=True)
        for f in files:
            shutil.copy(f, root / "blackswan" / sub / f.name)
    return root


def _predict_and_evaluate(tmp_path: Path, ckpt: Path, frames: int | None) -> dict:
    from scnn_lightning.evaluate import evaluate_folders

    data = _davsod_subset(tmp_path / "DAVIS", frames)
    pred = tmp_path / "pred"
    assert main(["--input", str(data), "--dataset", "davsod", "--ckpt", str(ckpt), "--out", str(pred),
                 "--size", "120x216", "--prior", "magnitude", "--no-progress"]) == 0
    count = len(list((data / "blackswan" / "Imgs").iterdir()))
    assert len(list((pred / "blackswan").glob("*.png"))) == count
    assert gray(next((pred / "blackswan").glob("*.png"))).shape == (480, 854)
    metrics = evaluate_folders(pred, data, tmp_path / "eval")
    assert metrics["frames"] == count and not metrics["missing_predictions"]
    assert 0.0 <= metrics["mae"] <= 1.0
    return metrics


def test_real_davis_frames_predict_then_evaluate(tmp_path, runs):
    _predict_and_evaluate(tmp_path, runs["SCNN"], frames=4)


@pytest.mark.slow
def test_real_davis_sequence_predict_then_evaluate(tmp_path, runs):
    _predict_and_evaluate(tmp_path, runs["SCNN"], frames=None)


@pytest.mark.slow
def test_checkpoints_of_real_training_runs(tmp_path, data_dir):
    """Real tiny runs: SCNN with its trained region classifier, then sFCN sharing its stage 1."""
    from experiments.run import run
    from tests.conftest import compose_run

    run(compose_run(tmp_path / "scnn", data_dir, ["ablation=SCNN"]))
    stage1 = tmp_path / "scnn" / "stage1" / "checkpoints" / "last.ckpt"
    run(compose_run(tmp_path / "sfcn", data_dir, ["ablation=sFCN", f"stage1.ckpt={stage1}", "crf=null"]))
    video = write_video(tmp_path / "clip.mp4", clip_frames(4, height=48, width=64))
    for ckpt, variant in ((tmp_path / "scnn" / "checkpoints" / "last.ckpt", "SCNN"),
                          (tmp_path / "sfcn" / "checkpoints" / "last.ckpt", "sFCN"), (stage1, "image")):
        timings = predict(video, ckpt, tmp_path / variant, progress=False)
        assert timings["variant"] == variant and timings["frames"] == 4
        assert (timings["crf"] is None) == (variant == "sFCN")  # the sFCN run was trained with crf=null
        assert len(pngs(tmp_path / variant)) == 4


@pytest.mark.slow
def test_sigkilled_cli_run_resumes(tmp_path, runs):
    """A real kill -9 in the middle: every PNG left is complete, and the rerun only does the rest."""
    import os
    import signal
    import subprocess
    import sys
    import time

    video = write_video(tmp_path / "long.mp4", clip_frames(40))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "scnn_lightning.predict", "--input", str(video), "--ckpt", str(runs["SCNN"]),
           "--out", str(out), "--prior", "magnitude", "--batch-size", "1", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(pngs(out) if out.exists() else []) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = pngs(out)
    assert 3 <= len(before) < 40, "the run was not interrupted mid-way"
    for name in before:
        gray(out / name)
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not list(out.glob(".*")), "temporary files of the killed run were not cleaned up"
    timings = json.loads((out / "timings.json").read_text())
    assert timings["frames"] == 40 - len(before) and len(pngs(out)) == 40
