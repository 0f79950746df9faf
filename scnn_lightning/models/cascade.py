"""The spatiotemporal cascade (paper Fig. 2, Eq. 2 and 4): FCN1 → Ps; priors stacked with RGB into FCN2."""

from __future__ import annotations

import torch
from torch import nn

from scnn_lightning.models.fcn import FCN, expand_first_conv, spatial_prior
from scnn_lightning.models.variants import Variant


def spatiotemporal_prior(ps: torch.Tensor, pt: torch.Tensor) -> torch.Tensor:
    """Eq. 4: P = Ps ⊗ Pt — keep only regions both priors find salient (precision over recall)."""
    return ps * pt


class Cascade(nn.Module):
    """FCN2 over [RGB, priors]; FCN1 exists only when the variant uses Ps.

    For s-FCN (no priors) it is a single FCN on RGB.
    """

    def __init__(self, variant: Variant, **fcn_kwargs):
        super().__init__()
        self.variant = variant
        self.fcn1 = FCN(in_channels=3, **fcn_kwargs) if variant.needs_fcn1 else None
        self.fcn2 = FCN(in_channels=variant.in_channels, **fcn_kwargs)

    @classmethod
    def from_stage1(cls, variant: Variant, stage1: FCN, *, fcn2_init: str = "copy", **fcn_kwargs) -> "Cascade":
        """Build the cascade from the image-stage FCN (§IV-B): FCN1 = copy, FCN2 per Eq. 2 (its conv1_1
        as `fcn2_init` says, see `expand_first_conv`)."""
        model = cls(variant, **fcn_kwargs)
        if model.fcn1 is not None:
            model.fcn1.load_state_dict(stage1.state_dict())
        expand_first_conv(stage1, model.fcn2, init=fcn2_init)
        return model

    def priors(self, image: torch.Tensor, pt: torch.Tensor | None = None,
               flow_gray: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The prior maps (B, 1, H, W) this variant stacks with RGB, and `ps_logits` (FCN1's logits, which a loss
        on Ps reads) when it has FCN1."""
        maps: dict[str, torch.Tensor] = {}
        if self.fcn1 is not None:
            maps["ps_logits"] = self.fcn1(image)
            maps["ps"] = spatial_prior(maps["ps_logits"])
        if "pt" in self.variant.priors or "p" in self.variant.priors:
            assert pt is not None, f"variant {self.variant.code} needs the temporal prior pt"
            maps["pt"] = pt
        if "p" in self.variant.priors:
            maps["p"] = spatiotemporal_prior(maps["ps"], pt)
        if "flow_gray" in self.variant.priors:
            assert flow_gray is not None, f"variant {self.variant.code} needs the grey flow image"
            maps["flow_gray"] = flow_gray
        return maps

    def forward(self, image: torch.Tensor, pt: torch.Tensor | None = None,
                flow_gray: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Returns FCN2's logits (B, 1, H, W) and the prior maps used."""
        maps = self.priors(image, pt, flow_gray)
        x = torch.cat([image] + [maps[name] for name in self.variant.priors], dim=1)
        return self.fcn2(x), maps
