"""A trained checkpoint, ready for inference: its module, its variant's inputs and its run's settings.

A run directory looks like `<run>/checkpoints/last.ckpt` (stage 2) or `<run>/stage1/checkpoints/last.ckpt`
(stage 1), with the temporal prior's classifier at `<run>/temporal/region_classifier.pt` and, for runs
launched through the Hydra CLI, the composed config at `<run>/.hydra/config.yaml` (it records the
training size and the motion settings, which the checkpoint's hyper-parameters do not).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from scnn_lightning.crf import CRFParams
from scnn_lightning.errors import DataError
from scnn_lightning.models.variants import Variant, get_variant
from scnn_lightning.training.checkpoints import read_checkpoint
from scnn_lightning.training.module import MODULES, SaliencyModule
from scnn_lightning.utils import atomic_path

CLASSIFIER_IN_RUN = Path("temporal") / "region_classifier.pt"


@dataclass
class LoadedCheckpoint:
    path: Path
    module: SaliencyModule  # in eval mode, on the CPU
    code: str  # the variant code, or "image" for a stage-1 checkpoint (a single FCN on RGB)
    crf: CRFParams | None  # the run's CRF parameters (None when it was trained with crf=null)
    run_config: DictConfig | None  # the run's Hydra config (`<run>/.hydra/config.yaml`) when there is one

    def recorded(self, key: str):
        """A setting of the run's config ("data.size", "motion.prior"), None when unknown or unresolvable
        (interpolations such as ${paths.cache_dir} point at the training machine)."""
        if self.run_config is None:
            return None
        value = OmegaConf.select(self.run_config, key, default=None, throw_on_resolution_failure=False)
        return OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value

    @property
    def motion_inputs(self) -> tuple[str, ...]:
        """Motion maps the network takes besides RGB: none (sFCN, OS, stage 1), flow_gray (FG) or pt (the rest)."""
        if self.code == "image":
            return ()
        variant: Variant = get_variant(self.code)
        if "flow_gray" in variant.priors:
            return ("flow_gray",)
        return ("pt",) if variant.needs_motion else ()

    @property
    def prior_maps(self) -> tuple[str, ...]:
        """The prior maps its cascade computes and stacks with RGB, of "ps", "pt", "p" (none for sFCN, stage 1)."""
        if self.code == "image":
            return ()
        variant: Variant = get_variant(self.code)
        present = {"ps": variant.needs_fcn1, "pt": variant.needs_temporal_prior, "p": "p" in variant.priors}
        return tuple(name for name, computed in present.items() if computed)  # as `Cascade.priors` makes them

    @property
    def trained_size(self) -> tuple[int, int] | None:
        """(H, W) the network was trained at, when the checkpoint or its run recorded it."""
        size = self.module.hparams.get("size") or self.recorded("data.size")
        return (int(size[0]), int(size[1])) if size else None

    def classifier_path(self) -> Path:
        """Where the run keeps the temporal prior's classifier (it may not exist)."""
        return run_dir_of(self.path) / CLASSIFIER_IN_RUN


def run_dir_of(ckpt: Path) -> Path:
    """`<run>` of `<run>/checkpoints/x.ckpt` or `<run>/stage1/checkpoints/x.ckpt`, else the ckpt's folder."""
    folder = ckpt.parent
    if folder.name != "checkpoints":
        return folder
    run = folder.parent
    return run.parent if run.name == "stage1" else run


def _run_config(run_dir: Path) -> DictConfig | None:
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        return None
    try:
        config = OmegaConf.load(path)
    except Exception as exc:  # OmegaConf raises yaml and its own errors for a damaged file
        raise DataError(path, f"unreadable run config ({type(exc).__name__}: {exc})") from exc
    return config if isinstance(config, DictConfig) else None


def load_checkpoint(path: str | Path) -> LoadedCheckpoint:
    """Rebuild the LightningModule a checkpoint was written by (stage 1 or any variant) with its weights."""
    path = Path(path)
    ckpt = read_checkpoint(path)
    info = ckpt.get("scnn")
    if not isinstance(info, dict) or "variant" not in info or "state_dict" not in ckpt:
        raise DataError(path, "not an scnn-lightning checkpoint (no 'scnn' entry or no state_dict)")
    code = info["variant"]
    if code not in MODULES:
        raise DataError(path, f"unknown variant {code!r} in checkpoint; valid: {', '.join(MODULES)}")
    hp = dict(ckpt.get("hyper_parameters", {}))
    hp["predictions_dir"] = None  # inference writes where it is told, never into the training run
    module = MODULES[code](**hp)
    try:
        module.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise DataError(path, f"weights do not fit a {code} network with its hyper-parameters ({exc})") from exc
    module.eval()
    return LoadedCheckpoint(path=path, module=module, code=code, crf=module.crf_params,
                            run_config=_run_config(run_dir_of(path)))


@torch.no_grad()
def network_probability(module: SaliencyModule, image: torch.Tensor, priors: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B, H, W) saliency in [0, 1] before the CRF: the module's own `saliency`, so exports compare to it."""
    return module.saliency({"image": image, **priors})


@torch.no_grad()
def prior_maps(module: SaliencyModule, image: torch.Tensor, motion: dict[str, torch.Tensor],
               names: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The cascade's prior maps `names` (each (B, H, W) in [0, 1]) as FCN2 receives them with `image`."""
    if not names:
        return {}
    maps = module.model.priors(image, motion.get("pt"), motion.get("flow_gray"))
    return {name: maps[name][:, 0] for name in names}


def save_inference_checkpoint(module: SaliencyModule, path: str | Path) -> Path:
    """Write a module's weights as a checkpoint `load_checkpoint` reads: the entries of a Lightning
    checkpoint that inference uses (benchmarks and tests of untrained networks; training writes full ones)."""
    ckpt = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
    module.on_save_checkpoint(ckpt)
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    return Path(path)
