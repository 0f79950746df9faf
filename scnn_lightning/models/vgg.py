"""VGG16 as the SCNN backbone, with torchvision's parameter names so the ImageNet checkpoint loads.

Paper §III-A: pool4 and pool5 are removed (output stride 8) and dilated convolutions keep the receptive
field: dilation 2 in block 5. fc6/fc7 become convolutions; both keep every (4096 / fc_channels)-th filter
of the ImageNet layers so a full checkpoint still initialises every parameter while they stay affordable.
ImageNet's fc6 is a 7×7 kernel on stride-32 features, i.e. taps 4 px apart at our stride 8. It is cut
down to a smaller convolution in one of three ways (`fc6=`, see `FC6_LAYOUTS`):

  "center3x3_d4"  the central 3×3 taps (2, 3, 4) of the 7×7 kernel, dilation 4: those taps sit where
                  they sat in VGG16, the kernel covers 9×9 stride-8 cells (default).
  "largefov_d12"  DeepLab-LargeFOV (Chen et al., ICLR 2015): taps 0, 3, 6 of the 7×7 kernel (every
                  third), dilation 12: the whole 7×7 footprint, 25×25 stride-8 cells.
  "center1x1"     the centre tap only, a 1×1 convolution: the paper's words (§III-A, "convolutional
                  layers with 1 × 1 kernel"), though it then loses most of fc6's ImageNet weights.

The default is "center3x3_d4": at the small frame sizes this project trains on (e.g. 64×112 → an 8×14
feature map) LargeFOV's outer taps land in the zero padding, it keeps more of fc6 than a 1×1 kernel,
and it is what every earlier run used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from scnn_lightning.errors import DataError

# torchvision's `features` indices of the 13 convolutions, grouped by block.
BLOCK_CONVS: tuple[tuple[int, ...], ...] = ((0, 2), (5, 7), (10, 12, 14), (17, 19, 21), (24, 26, 28))
BLOCK_WIDTHS = (64, 128, 256, 512, 512)
POOL_AFTER_BLOCK = (True, True, True, False, False)  # pool4 and pool5 removed
BLOCK_DILATION = (1, 1, 1, 1, 2)
IMAGENET_FC = 4096


@dataclass(frozen=True)
class FC6Layout:
    """Which rows/columns of ImageNet's 7×7 fc6 kernel the convolution keeps (its kernel size is their
    number), and its dilation."""

    taps: tuple[int, ...]
    dilation: int

    @property
    def kernel_size(self) -> int:
        return len(self.taps)

    @property
    def padding(self) -> int:  # keeps the feature map size
        return self.dilation * (self.kernel_size - 1) // 2


FC6_LAYOUTS: dict[str, FC6Layout] = {
    "center3x3_d4": FC6Layout(taps=(2, 3, 4), dilation=4),
    "largefov_d12": FC6Layout(taps=(0, 3, 6), dilation=12),
    "center1x1": FC6Layout(taps=(3,), dilation=1),
}
DEFAULT_FC6 = "center3x3_d4"


def fc6_layout(name: str) -> FC6Layout:
    if name not in FC6_LAYOUTS:
        raise ValueError(f"unknown fc6 layout {name!r}; valid: {', '.join(FC6_LAYOUTS)}")
    return FC6_LAYOUTS[name]


def scaled(channels: int, width: float) -> int:
    return max(4, int(round(channels * width)))


class VGG16Backbone(nn.Module):
    """Six blocks (conv1–conv5, fc6/fc7); `forward` returns the output of each block."""

    def __init__(self, *, in_channels: int = 3, width: float = 1.0, fc_channels: int = 1024,
                 dropout: float = 0.5, fc6: str = DEFAULT_FC6):
        super().__init__()
        layout = fc6_layout(fc6)
        self.in_channels = in_channels
        self.width = width
        self.fc6_name = fc6
        layers: dict[int, nn.Module] = {}
        self.block_ends: list[int] = []
        prev = in_channels
        for block, (convs, ch, dil) in enumerate(zip(BLOCK_CONVS, BLOCK_WIDTHS, BLOCK_DILATION)):
            out = scaled(ch, width)
            for idx in convs:
                layers[idx] = nn.Conv2d(prev, out, 3, padding=dil, dilation=dil)
                layers[idx + 1] = nn.ReLU(inplace=True)
                prev = out
            self.block_ends.append(convs[-1] + 1)
            if POOL_AFTER_BLOCK[block]:
                layers[convs[-1] + 2] = nn.MaxPool2d(2, 2, ceil_mode=True)
        # Index-aligned with torchvision (removed pool4 becomes an Identity) so checkpoint keys match.
        self.features = nn.Sequential()
        for i in range(max(layers) + 1):
            self.features.add_module(str(i), layers.get(i, nn.Identity()))
        fc = scaled(fc_channels, width)
        self.fc_channels = fc
        self.fc6 = nn.Conv2d(prev, fc, layout.kernel_size, padding=layout.padding, dilation=layout.dilation)
        self.fc7 = nn.Conv2d(fc, fc, 1)
        # Element-wise, as VGG16's (and Caffe's) dropout after fc6 and fc7; no parameters, so checkpoints
        # do not depend on it.
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.block_channels = [scaled(c, width) for c in BLOCK_WIDTHS] + [fc]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # He init: a deep plain ReLU stack trains from scratch with it
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    @property
    def first_conv(self) -> nn.Conv2d:
        return self.features[0]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        assert x.shape[1] == self.in_channels, f"expected {self.in_channels} input channels, got {x.shape[1]}"
        outputs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.block_ends:
                outputs.append(x)
        x = self.drop(torch.relu(self.fc6(x)))
        x = self.drop(torch.relu(self.fc7(x)))
        outputs.append(x)
        return outputs


def convert_imagenet_state(state: dict[str, torch.Tensor], fc_channels: int,
                           fc6: str = DEFAULT_FC6) -> dict[str, torch.Tensor]:
    """Map torchvision VGG16 weights onto `VGG16Backbone` (width 1) names and shapes."""
    out = {k: v for k, v in state.items() if k.startswith("features.")}
    keep = torch.arange(0, IMAGENET_FC, IMAGENET_FC // fc_channels)[:fc_channels]
    taps = torch.tensor(fc6_layout(fc6).taps)
    kernel = state["classifier.0.weight"].reshape(IMAGENET_FC, 512, 7, 7)[:, :, taps][:, :, :, taps]
    out["fc6.weight"] = kernel[keep].contiguous()
    out["fc6.bias"] = state["classifier.0.bias"][keep]
    out["fc7.weight"] = state["classifier.3.weight"][keep][:, keep].reshape(fc_channels, fc_channels, 1, 1)
    out["fc7.bias"] = state["classifier.3.bias"][keep]
    return out


def load_imagenet_vgg16(backbone: VGG16Backbone, path: str | Path) -> list[str]:
    """Initialise `backbone` from a local torchvision `vgg16-*.pth`; returns the names it set.

    Never downloads. Every backbone parameter must be covered, or a DataError says which are not.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "pretrained VGG16 checkpoint not found (give a local torchvision vgg16 .pth)")
    if backbone.width != 1.0 or backbone.in_channels != 3:
        raise DataError(path, f"ImageNet weights need width=1.0 and 3 input channels, "
                              f"got width={backbone.width}, in_channels={backbone.in_channels}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a corrupt or foreign file
        raise DataError(path, f"cannot be read as a torch state dict ({type(exc).__name__}: {exc})") from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    needed = ["classifier.0.weight", "classifier.0.bias", "classifier.3.weight", "classifier.3.bias"]
    missing = [k for k in needed if k not in state]
    if missing:
        raise DataError(path, f"not a torchvision VGG16 state dict: missing {', '.join(missing)}")
    try:
        converted = convert_imagenet_state(state, backbone.fc_channels, backbone.fc6_name)
    except RuntimeError as exc:
        raise DataError(path, f"classifier weights have unexpected shapes: {exc}") from exc
    own = backbone.state_dict()
    absent = sorted(set(own) - set(converted))
    wrong = [f"{k}: file {tuple(converted[k].shape)} vs model {tuple(v.shape)}"
             for k, v in own.items() if k in converted and converted[k].shape != v.shape]
    if absent or wrong:
        detail = "; ".join(([f"missing {', '.join(absent)}"] if absent else []) + wrong)
        raise DataError(path, f"does not match VGG16: {detail}")
    backbone.load_state_dict({k: converted[k] for k in own})
    return sorted(own)
