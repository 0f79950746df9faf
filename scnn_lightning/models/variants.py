"""The ablation table of paper §IV-D in one place: what FCN2 sees, and whether weak labels are used.

Prior channels stacked after RGB into FCN2:
  "p"         P = Ps ⊗ Pt, the spatiotemporal prior (Eq. 4)
  "ps"        the spatial prior of FCN1 (Eq. 5)
  "pt"        the temporal prior (Eq. 6)
  "flow_gray" the optical-flow colour image converted to grey (the FG baseline)
A variant with `cascade=False` is a single FCN on RGB (s-FCN).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    code: str
    priors: tuple[str, ...]
    weak_labels: bool
    figure: str
    summary: str

    @property
    def cascade(self) -> bool:
        return bool(self.priors)

    @property
    def needs_fcn1(self) -> bool:
        return any(p in ("p", "ps") for p in self.priors)

    @property
    def needs_motion(self) -> bool:
        return any(p in ("p", "pt", "flow_gray") for p in self.priors)

    @property
    def needs_temporal_prior(self) -> bool:
        """Pt (and so the region classifier) is an input: not for sFCN, OS and FG (grey flow only)."""
        return any(p in ("p", "pt") for p in self.priors)

    @property
    def in_channels(self) -> int:
        return 3 + len(self.priors)


VARIANTS: dict[str, Variant] = {v.code: v for v in (
    Variant("sFCN", (), True, "Fig. 7a", "single FCN on RGB"),
    Variant("FG", ("flow_gray", "ps"), True, "Fig. 7b", "grey flow image + Ps + RGB"),
    Variant("FP", ("pt", "ps"), True, "Fig. 7b", "Pt + Ps + RGB (priors not fused)"),
    Variant("OS", ("ps",), True, "Fig. 7b", "only the spatial prior Ps + RGB"),
    Variant("OT", ("pt",), True, "Fig. 7b", "only the temporal prior Pt + RGB"),
    Variant("NA", ("p",), False, "Fig. 7c", "full cascade trained without weak labels"),
    Variant("SCNN", ("p",), True, "Fig. 7", "full cascade, P = Ps ⊗ Pt, weak labels"),
)}


def get_variant(code: str) -> Variant:
    if code not in VARIANTS:
        raise ValueError(f"unknown variant {code!r}; valid: {', '.join(VARIANTS)}")
    return VARIANTS[code]
