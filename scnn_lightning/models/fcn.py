"""The SCNN fully convolutional network (paper §III-A, Eq. 1 and 5).

Six blocks of a dilated VGG16 (`vgg.py`); a 1×1 score layer on the last two blocks, each score map
bilinearly up-sampled to the input size and summed. `upsample="all"` scores every block instead —
the paper's Fig. 10 comparison. The network returns logits; `spatial_prior` applies Eq. 5.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from scnn_lightning.models.vgg import DEFAULT_FC6, VGG16Backbone

Upsample = Literal["last2", "all"]
SCORED_BLOCKS: dict[str, tuple[int, ...]] = {"last2": (4, 5), "all": (0, 1, 2, 3, 4, 5)}
# How FCN2's conv1_1 starts (Eq. 2): "copy" FCN1's RGB kernels and Xavier only the prior channels, or
# "xavier" the whole layer as the paper does (§IV-B).
FCN2_INITS = ("copy", "xavier")


class FCN(nn.Module):
    def __init__(self, *, in_channels: int = 3, width: float = 1.0, fc_channels: int = 1024,
                 upsample: Upsample = "last2", dropout: float = 0.5, fc6: str = DEFAULT_FC6):
        super().__init__()
        if upsample not in SCORED_BLOCKS:
            raise ValueError(f"upsample must be one of {sorted(SCORED_BLOCKS)}, got {upsample!r}")
        self.backbone = VGG16Backbone(in_channels=in_channels, width=width, fc_channels=fc_channels,
                                      dropout=dropout, fc6=fc6)
        self.scored_blocks = SCORED_BLOCKS[upsample]
        self.score = nn.ModuleDict({
            str(b): nn.Conv2d(self.backbone.block_channels[b], 1, 1) for b in self.scored_blocks
        })
        for conv in self.score.values():
            nn.init.normal_(conv.weight, std=1e-3)
            nn.init.zeros_(conv.bias)

    @property
    def in_channels(self) -> int:
        return self.backbone.in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → saliency logits (B, 1, H, W) at the input resolution."""
        blocks = self.backbone(x)
        size = x.shape[-2:]
        return sum(
            F.interpolate(self.score[str(b)](blocks[b]), size=size, mode="bilinear", align_corners=False)
            for b in self.scored_blocks
        )


def spatial_prior(logits: torch.Tensor) -> torch.Tensor:
    """Eq. 5: Ps = sigmoid(up(F_s(X))); the up-sampling already happened inside `FCN.forward`."""
    return torch.sigmoid(logits)


def expand_first_conv(source: FCN, target: FCN, *, init: str = "copy") -> None:
    """Eq. 2: FCN2's conv1_1 sees [X, P]. Every other parameter of `target` is copied from `source` (the
    paper builds the cascade from the stage-1 FCN); conv1_1 starts per `init`:

      "copy"    W1 (RGB kernels) and the bias from FCN1, Xavier (Glorot uniform) for W2 (the prior
                kernels). Default: FCN2 starts as the working stage-1 saliency network, which matters
                when stage 2 is short or its learning rate tiny (the paper's is 1e-10).
      "xavier"  the whole layer re-initialised, Xavier weights and zero bias, as the paper does (§IV-B).
    """
    if init not in FCN2_INITS:
        raise ValueError(f"fcn2_init must be one of {', '.join(FCN2_INITS)}, got {init!r}")
    src, dst = source.state_dict(), target.state_dict()
    first = "backbone.features.0"
    for name, value in dst.items():
        if name.startswith(first + "."):
            continue
        if name in src and src[name].shape == value.shape:
            dst[name] = src[name].clone()
    weight, bias = dst[f"{first}.weight"], dst[f"{first}.bias"]
    extra = weight.shape[1] - 3
    assert extra >= 0 and src[f"{first}.weight"].shape[1] == 3, "FCN1 must take RGB, FCN2 RGB + priors"
    if init == "xavier":
        dst[f"{first}.weight"] = nn.init.xavier_uniform_(torch.empty_like(weight))
        dst[f"{first}.bias"] = torch.zeros_like(bias)
    else:
        w = torch.empty_like(weight)
        w[:, :3] = src[f"{first}.weight"]
        if extra:
            w[:, 3:] = nn.init.xavier_uniform_(torch.empty(w.shape[0], extra, *w.shape[2:]))
        dst[f"{first}.weight"] = w
        dst[f"{first}.bias"] = src[f"{first}.bias"].clone()
    target.load_state_dict(dst)
