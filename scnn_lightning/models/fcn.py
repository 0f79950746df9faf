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

from scnn_lightning.models.vgg import VGG16Backbone

Upsample = Literal["last2", "all"]
SCORED_BLOCKS: dict[str, tuple[int, ...]] = {"last2": (4, 5), "all": (0, 1, 2, 3, 4, 5)}


class FCN(nn.Module):
    def __init__(self, *, in_channels: int = 3, width: float = 1.0, fc_channels: int = 1024,
                 upsample: Upsample = "last2", dropout: float = 0.5):
        super().__init__()
        if upsample not in SCORED_BLOCKS:
            raise ValueError(f"upsample must be one of {sorted(SCORED_BLOCKS)}, got {upsample!r}")
        self.backbone = VGG16Backbone(in_channels=in_channels, width=width, fc_channels=fc_channels,
                                      dropout=dropout)
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


def expand_first_conv(source: FCN, target: FCN) -> None:
    """Eq. 2: FCN2's conv1_1 sees [X, P]; copy W1 (RGB kernels) from FCN1, Xavier-initialise W2 (priors).

    Every other parameter of `target` is copied from `source` (the paper builds the cascade from the
    stage-1 FCN).
    """
    src, dst = source.state_dict(), target.state_dict()
    first = "backbone.features.0.weight"
    for name, value in dst.items():
        if name == first:
            continue
        if name in src and src[name].shape == value.shape:
            dst[name] = src[name].clone()
    extra = dst[first].shape[1] - 3
    assert extra >= 0 and src[first].shape[1] == 3, "FCN1 must take RGB, FCN2 RGB + priors"
    w = torch.empty_like(dst[first])
    w[:, :3] = src[first]
    if extra:
        prior_kernels = torch.empty(w.shape[0], extra, *w.shape[2:])
        nn.init.xavier_uniform_(prior_kernels)
        w[:, 3:] = prior_kernels
    dst[first] = w
    target.load_state_dict(dst)
