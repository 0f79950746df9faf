"""The inference network alone, as a file any TorchScript or ONNX runtime can serve without this package.

Inputs: `image` (B, 3, H, W) float RGB in [0, 1] (the ImageNet normalisation is inside the network),
then the variant's motion maps, each (B, 1, H, W) float in [0, 1]: `pt` for OT/FP/NA/SCNN, `flow_gray`
for FG, nothing for sFCN/OS/stage 1 (Ps is computed inside by FCN1). Output: `saliency` (B, 1, H, W),
the probability before the CRF. A JSON file beside the export records these names and the variant.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from scnn_lightning.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from scnn_lightning.inference.checkpoint import LoadedCheckpoint
from scnn_lightning.training.module import ImageStageModule
from scnn_lightning.utils import atomic_path, write_json

FORMATS = ("torchscript", "onnx")


class ServableSaliency(nn.Module):
    """RGB + motion maps → saliency probability: the LightningModule's forward without its batch dict."""

    def __init__(self, loaded: LoadedCheckpoint):
        super().__init__()
        module = loaded.module
        self.input_names = ("image",) + loaded.motion_inputs
        self.single_fcn = isinstance(module, ImageStageModule)  # stage 1: one FCN on RGB
        self.network = module.fcn if self.single_fcn else module.model
        self.register_buffer("mean", IMAGENET_MEAN.view(1, 3, 1, 1).clone())
        self.register_buffer("std", IMAGENET_STD.view(1, 3, 1, 1).clone())
        self.eval()

    def forward(self, image: torch.Tensor, *motion: torch.Tensor) -> torch.Tensor:
        x = (image - self.mean) / self.std
        if self.single_fcn:
            return torch.sigmoid(self.network(x))
        maps = dict(zip(self.input_names[1:], motion))
        logits, _ = self.network(x, maps.get("pt"), maps.get("flow_gray"))
        return torch.sigmoid(logits)


def example_inputs(names: tuple[str, ...], size: tuple[int, int], batch: int = 1,
                   seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random inputs of the right shapes and ranges (tracing, parity checks)."""
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.rand(batch, 3 if name == "image" else 1, *size, generator=g) for name in names)


def export_network(loaded: LoadedCheckpoint, out: str | Path, *, fmt: str = "torchscript",
                   size: tuple[int, int] = (256, 448)) -> Path:
    """Write the servable network to `out` (atomically) plus `<out>.json` describing its inputs."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    model = ServableSaliency(loaded)
    inputs = example_inputs(model.input_names, size)
    with torch.no_grad(), atomic_path(out) as tmp, warnings.catch_warnings():
        # the backbone's input-channel assert is a constant for a traced graph of fixed channels
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # the new exporter needs onnxscript, which is not a dependency; the TorchScript-based one is enough
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export")
        warnings.simplefilter("ignore", DeprecationWarning)
        if fmt == "torchscript":
            torch.jit.trace(model, inputs, check_trace=False).save(str(tmp))
        else:
            axes = {name: {0: "batch", 2: "height", 3: "width"} for name in (*model.input_names, "saliency")}
            torch.onnx.export(model, inputs, str(tmp), input_names=list(model.input_names),
                              output_names=["saliency"], dynamic_axes=axes, dynamo=False, opset_version=17)
    write_json(out.with_name(out.name + ".json"), {
        "format": fmt, "variant": loaded.code, "checkpoint": str(loaded.path), "traced_size": list(size),
        "inputs": {name: ["B", 3 if name == "image" else 1, "H", "W"] for name in model.input_names},
        "image": "RGB float in [0, 1] (ImageNet normalisation is inside the network)",
        "output": {"saliency": ["B", 1, "H", "W"], "range": [0, 1], "crf": "not applied"},
    })
    return out
