"""GPU check of the real-video study: network throughput and one short stage-2 epoch, in one JSON file.

    python -m benchmarks.gpu_check --davis DAVIS [--saliency MAPS] --out gpu_check.json [--device cuda]
    python -m benchmarks.gpu_check --tiny --out gpu_check.json      # CPU, tiny network, generated clips

Three parts, each written to the JSON as soon as it is done (a run cut short keeps what it measured):

  network       the full-width VGG16 SCNN cascade (FCN1 + FCN2, variant SCNN) at 480×854 in bf16 mixed
                precision with channels_last tensors: training steps (forward, Eq. 3 loss, backward, AdamW
                step) and inference forwards per second, and the peak GPU memory of each
  predict       `python -m scnn_lightning.predict` with the shipped model on the device, on the first
                `--predict-frames` frames of the first DAVIS val sequence, with and without the CRF
                (`benchmarks.predict_fps`): frames/s, seconds per frame of each stage, and flow + temporal
                prior against the network per frame (`motion_over_network`; the motion inputs are CPU work
                in predict's workers, overlapped with the network)
  stage2_epoch  `experiments.run` itself (data=davis, bf16-mixed) for stage-2 epochs of variant SCNN on
                the first `--sequences` DAVIS train sequences, with the weak-label refresh of Algorithm 1
                (round 0 before the first epoch, round 1 after it; two epochs, since no round follows the
                last) and a short test; the stage-1 FCN and the
                region classifier are untrained stand-ins (time does not depend on weight values).
                Seconds to round 0 (data check, flow, temporal prior, static sources), for the epoch with
                its refresh, and for the second epoch with the test are read from the round manifests' times.

Nothing is downloaded. `--tiny` runs everything on the CPU with a tiny network and size on generated
DAVIS-layout clips (the test suite runs it so this script cannot rot).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

import experiments
from benchmarks.predict_fps import measure as measure_predict
from scnn_lightning.data.readers import load_index
from scnn_lightning.data.records import SequenceRef
from scnn_lightning.data.synthetic import generate_clips
from scnn_lightning.inference.checkpoint import save_inference_checkpoint
from scnn_lightning.models.losses import balanced_bce
from scnn_lightning.motion.classifier import RegionClassifier
from scnn_lightning.training.module import ImageStageModule, create_module
from scnn_lightning.utils import write_json
from scnn_lightning.weak.store import WeakLabelStore
from scnn_lightning.weights import default_checkpoint

CONFIG_DIR = Path(experiments.__file__).resolve().parent / "configs"
GIB = 2**30
VARIANT = "SCNN"
# label_every: data=davis's budget; the tiny clips are too short for it to leave two labelled frames a sequence
# (one for training, one for the Eq. 8 fit).
FULL = {"height": 480, "width": 854, "width_mult": 1.0, "fc_channels": 1024, "batch_size": 8, "steps": 20,
        "sequences": 10, "epoch_size": (480, 854), "workers": None, "label_every": 10, "predict_frames": 40}
TINY = {"height": 32, "width": 48, "width_mult": 0.0625, "fc_channels": 32, "batch_size": 2, "steps": 1,
        "sequences": 2, "epoch_size": (32, 48), "workers": 0, "label_every": 2, "predict_frames": 3}


# -- part 1: network throughput ------------------------------------------------------------------------
def synthetic_batch(batch_size: int, height: int, width: int, device: torch.device) -> dict:
    """Random frames, priors and half-foreground masks in channels_last layout."""
    g = torch.Generator().manual_seed(0)
    image = torch.randn(batch_size, 3, height, width, generator=g)
    mask = (torch.rand(batch_size, 1, height, width, generator=g) > 0.5).float()
    pt = torch.rand(batch_size, 1, height, width, generator=g)
    image, mask, pt = (t.to(device).contiguous(memory_format=torch.channels_last) for t in (image, mask, pt))
    return {"image": image, "pt": pt, "mask": mask, "labelled": torch.ones(batch_size, dtype=torch.bool, device=device)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / GIB, 3) if device.type == "cuda" else None


def timed(fn, steps: int, device: torch.device) -> float:
    """Seconds per call of `fn` over `steps` calls, after two warm-up calls (cuDNN autotuning, allocations)."""
    for _ in range(2):
        fn()
    _sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return (time.perf_counter() - started) / steps


def network_throughput(*, height: int, width: int, width_mult: float, fc_channels: int, batch_size: int,
                       steps: int, device: torch.device) -> dict:
    """Training and inference frames per second of the SCNN cascade in bf16 autocast, channels_last."""
    torch.backends.cudnn.benchmark = True
    module = create_module(VARIANT, width=width_mult, fc_channels=fc_channels, dropout=0.0, optimizer="adam")
    module = module.to(device).to(memory_format=torch.channels_last)
    optimizer = module.configure_optimizers()
    batch = synthetic_batch(batch_size, height, width, device)

    def autocast() -> torch.autocast:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = balanced_bce(module(batch), batch["mask"], batch["labelled"])
        loss.backward()
        optimizer.step()

    @torch.no_grad()
    def infer() -> None:
        with autocast():
            module(batch)

    module.train()
    _reset_peak(device)
    train_seconds = timed(train_step, steps, device)
    train_peak = _peak_gib(device)
    module.eval()
    _reset_peak(device)
    infer_seconds = timed(infer, steps, device)
    return {
        "variant": VARIANT, "width_mult": width_mult, "size": [height, width], "batch_size": batch_size,
        "steps": steps, "parameters": sum(p.numel() for p in module.parameters()),
        "precision": "bf16-mixed", "channels_last": True,
        "train_step_seconds": round(train_seconds, 5), "train_fps": round(batch_size / train_seconds, 2),
        "train_peak_memory_gib": train_peak,
        "infer_seconds": round(infer_seconds, 5), "infer_fps": round(batch_size / infer_seconds, 2),
        "infer_peak_memory_gib": _peak_gib(device),
    }


# -- part 3: one stage-2 epoch through the runner --------------------------------------------------------
def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(target.resolve(), target_is_directory=True)


def _split_lines(sequences: list[SequenceRef]) -> str:
    """ImageSets lines (`/JPEGImages/480p/<seq>/<frame>.jpg /Annotations/...`) of the linked sequences."""
    lines = []
    for seq in sequences:
        for frame in seq.frames:
            line = f"/JPEGImages/480p/{seq.name}/{frame.image.name}"
            if frame.masks:
                line += f" /Annotations/480p/{seq.name}/{frame.masks[0].name}"
            lines.append(line + "\n")
    return "".join(lines)


def davis_subset(davis: Path, out: Path, train_sequences: int, val_sequences: int = 2) -> Path:
    """A DAVIS-layout root under `out` linking the first sequences of each split of `davis` (never copied)."""
    for split, count in (("train", train_sequences), ("val", val_sequences)):
        chosen = load_index("davis", davis, split).sequences[:count]
        for seq in chosen:
            _link(seq.frames[0].image.parent, out / "JPEGImages" / "480p" / seq.name)
            if seq.frames[0].masks:
                _link(seq.frames[0].masks[0].parent, out / "Annotations" / "480p" / seq.name)
        split_file = out / "ImageSets" / "480p" / f"{split}.txt"
        split_file.parent.mkdir(parents=True, exist_ok=True)
        split_file.write_text(_split_lines(chosen))
    return out


def compose_run(overrides: list[str], out: Path) -> DictConfig:
    """experiments/configs/run.yaml with `overrides`, its outputs under `out` (as `python -m experiments.run`)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="run", overrides=overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
        del cfg.hydra
    return cfg


def stand_in_stage1(cfg: DictConfig, work: Path) -> tuple[Path, Path]:
    """An untrained stage-1 checkpoint and region classifier with the run's network settings."""
    from experiments.run import module_kwargs

    module = ImageStageModule(**module_kwargs(cfg, work, cfg.stage1))
    ckpt = save_inference_checkpoint(module, work / "stage1.ckpt")
    classifier = work / "region_classifier.pt"
    RegionClassifier.untrained(module.fcn.backbone).save(classifier)
    return ckpt, classifier


def epoch_overrides(*, davis: Path, saliency: Path | None, cache: Path, device: torch.device,
                    settings: dict) -> list[str]:
    height, width = settings["epoch_size"]
    workers = settings["workers"] if settings["workers"] is not None else max(1, min(8, (os.cpu_count() or 2) - 2))
    weak = (["weak=davis", f"data.root.saliency={saliency}"] if saliency is not None
            else ["weak.sources=[mbd]", "data.root.saliency=none"])
    return [
        "data=davis", *weak, f"data.root.davis={davis}", f"data.root.duts={davis}", "data.images=[]",
        f"data.size=[{height},{width}]", f"data.batch_size={settings['batch_size']}", f"data.num_workers={workers}",
        f"data.label_every={settings['label_every']}",
        "data.val_sequences=null",  # the subset need not hold the study's validation sequences: the hash holds out
        "stage2.max_epochs=null", "test_ckpt=last",  # the first epoch and its refresh timed, whatever it validated on
        f"model.width={settings['width_mult']}", f"model.fc_channels={settings['fc_channels']}",
        "trainer=gpu" if device.type == "cuda" else "trainer=cpu", "++trainer.precision=bf16-mixed",
        "++trainer.max_epochs=2", "++trainer.limit_test_batches=2", "++trainer.enable_progress_bar=false",
        "++trainer.enable_model_summary=false", f"ablation={VARIANT}", "crf=null", "report=false",
        f"paths.cache_dir={cache}", f"paths.data_dir={cache.parent / 'data'}",
    ]


def _manifest_time(store: WeakLabelStore, round_: int) -> float | None:
    path = store.round_dir(round_) / "manifest.json"
    return path.stat().st_mtime if path.is_file() else None


def _without_frame_list(manifest: dict) -> dict:
    return {key: value for key, value in manifest.items() if key != "frames"}


def stage2_epoch(*, davis: Path, saliency: Path | None, work: Path, device: torch.device, settings: dict) -> dict:
    """One stage-2 epoch of `experiments.run` on a subset of DAVIS train, timed by phase."""
    from experiments.run import run

    subset = davis_subset(davis, work / "davis", settings["sequences"])
    run_dir = work / "run"
    overrides = epoch_overrides(davis=subset, saliency=saliency, cache=work / "cache", device=device, settings=settings)
    cfg = compose_run(overrides, run_dir)
    stage1, classifier = stand_in_stage1(cfg, work)
    cfg = compose_run([*overrides, f"stage1.ckpt={stage1}", f"motion.classifier={classifier}"], run_dir)
    _reset_peak(device)
    started = time.time()
    metrics = run(cfg)
    ended = time.time()
    store = WeakLabelStore(run_dir / "weak_labels")
    round0, round1 = _manifest_time(store, 0), _manifest_time(store, 1)
    train = load_index("davis", subset, "train")
    last = store.latest_round()
    return {
        "davis": str(davis), "train_sequences": len(train.sequences), "train_frames": len(train.frames),
        "size": list(settings["epoch_size"]), "width_mult": settings["width_mult"],
        "batch_size": settings["batch_size"], "num_workers": cfg.data.num_workers, "precision": "bf16-mixed",
        "weak_sources": [s if isinstance(s, str) else s["name"] for s in cfg.weak.sources],
        "seconds_total": round(ended - started, 1),
        "seconds_to_round0": round(round0 - started, 1) if round0 else None,
        "seconds_epoch_and_refresh": round(round1 - round0, 1) if round0 and round1 else None,
        "seconds_after_refresh": round(ended - round1, 1) if round1 else None,
        "weak_rounds": store.rounds(),
        "last_round": _without_frame_list(store.manifest(last)) if last is not None else None,
        "peak_memory_gib": _peak_gib(device),
        "test_mae_untrained": metrics.get("mae"),
    }


# -- part 2: predict with the shipped model --------------------------------------------------------------
def predict_speed(*, davis: Path, device: torch.device, frames: int, work: Path) -> dict:
    """predict's timings (with and without the CRF) on the first frames of the first DAVIS val sequence."""
    sequence = load_index("davis", davis, "val").sequences[0]
    folder = Path(sequence.frames[0].image).parent
    rows = measure_predict(default_checkpoint(), [(sequence.name, folder)], frames=frames, batch_size=4,
                           device=str(device), size=None, threads=None, work=work)
    return {"checkpoint": str(default_checkpoint()), "sequence": sequence.name, "frames": frames, "runs": rows}


# -- driver -------------------------------------------------------------------------------------------------
def environment(device: torch.device) -> dict:
    info = {"device": str(device), "torch": torch.__version__, "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "machine": platform.machine()}
    if device.type == "cuda":
        info.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                    bf16_supported=torch.cuda.is_bf16_supported())
    return info


def run_check(*, out: Path, davis: Path | None, saliency: Path | None, device: torch.device, tiny: bool,
              work: Path, command: str) -> dict:
    """The three parts; the JSON at `out` is rewritten after each one."""
    settings = TINY if tiny else FULL
    started = time.time()
    result: dict = {"command": command, "tiny": tiny, "environment": environment(device)}
    result["network"] = network_throughput(height=settings["height"], width=settings["width"],
                                           width_mult=settings["width_mult"], fc_channels=settings["fc_channels"],
                                           batch_size=settings["batch_size"], steps=settings["steps"], device=device)
    write_json(out, {**result, "seconds": round(time.time() - started, 1)})
    if davis is None:  # --tiny: generated clips in the DAVIS layout, every frame annotated
        davis = generate_clips(work / "clips", sequences=3, frames=4, height=settings["height"],
                               width=settings["width"], seed=0, val_fraction=0.34)
    result["predict"] = predict_speed(davis=davis, device=device, frames=settings["predict_frames"],
                                      work=work / "predict")
    write_json(out, {**result, "seconds": round(time.time() - started, 1)})
    result["stage2_epoch"] = stage2_epoch(davis=davis, saliency=saliency, work=work, device=device, settings=settings)
    result["seconds"] = round(time.time() - started, 1)
    write_json(out, result)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    parser.add_argument("--davis", type=Path, help="DAVIS-2016 root (official layout); required unless --tiny")
    parser.add_argument("--saliency", type=Path, help="external maps root for weak=davis (default: mbd alone)")
    parser.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    parser.add_argument("--work", type=Path, help="scratch folder (default: beside --out)")
    parser.add_argument("--tiny", action="store_true", help="CPU, tiny network and size, generated clips")
    args = parser.parse_args(argv)
    if not args.tiny and args.davis is None:
        parser.error("--davis is required (or --tiny)")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() and not args.tiny else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available here")
    work = args.work or args.out.parent / f"{args.out.stem}_work"
    command = "python -m benchmarks.gpu_check " + " ".join(argv if argv is not None else sys.argv[1:])
    result = run_check(out=args.out, davis=args.davis, saliency=args.saliency, device=device, tiny=args.tiny,
                       work=work, command=command)
    net, epoch = result["network"], result["stage2_epoch"]
    for row in result["predict"]["runs"]:
        print(f"predict {row['input']} crf={'on ' if row['crf'] else 'off'}: {row['fps']} frames/s, "
              f"flow + temporal prior / network per frame {row['motion_over_network']}")
    print(f"network {net['size'][0]}x{net['size'][1]} width {net['width_mult']}: train {net['train_fps']} frames/s "
          f"(peak {net['train_peak_memory_gib']} GiB), inference {net['infer_fps']} frames/s "
          f"(peak {net['infer_peak_memory_gib']} GiB)")
    print(f"stage-2 epoch on {epoch['train_frames']} frames: {epoch['seconds_total']} s "
          f"(to round 0 {epoch['seconds_to_round0']} s, epoch + refresh {epoch['seconds_epoch_and_refresh']} s); "
          f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
