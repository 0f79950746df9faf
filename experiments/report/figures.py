"""The report's score figures in the style of the paper's Fig. 5 / Fig. 7: PR curves and MAE bars."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from experiments.report.runs import VariantGroup
from scnn_lightning.utils import atomic_path

# Fig. 7 separates many curves by colour and dash pattern; cycling both keeps 7+ variants legible.
LINESTYLES = ("-", "--", "-.", ":")


REFERENCE_LINESTYLES = ("--", ":", "-.")  # reference maps: never solid, so no grey line reads as a variant
REFERENCE_BAR = "0.85"  # light grey: the hatching stays visible


def style(index: int) -> dict:
    return {"color": colormaps["tab10"](index % 10), "linestyle": LINESTYLES[index % len(LINESTYLES)]}


def reference_style(index: int) -> dict:
    """Reference maps (not trained) in greys, dashed or dotted: the trained variants keep the colours."""
    return {"color": str(0.15 + 0.12 * (index % 5)),
            "linestyle": REFERENCE_LINESTYLES[index % len(REFERENCE_LINESTYLES)]}


def group_styles(groups: list[VariantGroup]) -> list[dict]:
    """One style per group: trained variants numbered among themselves (their colours do not depend on how
    many reference rows there are), reference maps among themselves."""
    counters = {False: 0, True: 0}
    styles = []
    for g in groups:
        styles.append((reference_style if g.reference else style)(counters[g.reference]))
        counters[g.reference] += 1
    return styles


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A figure outside pyplot: rendered by Agg when saved, no display and no global backend switch."""
    return Figure(figsize=figsize)


def save(fig: Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")


def plot_pr_curves(groups: list[VariantGroup], path: Path) -> bool:
    """Every variant's (seed-averaged) precision-recall curve in one plot; False when no run has one."""
    curves = [(g, c) for g in groups if (c := g.pr_curve()) is not None]
    if not curves:
        return False
    styles = group_styles(groups)
    fig = new_figure((5, 4.2))
    ax = fig.subplots()
    for g, (precision, recall) in curves:
        ax.plot(recall, precision, linewidth=1.2 if g.reference else 1.8, label=g.label, **styles[groups.index(g)])
    ax.set(xlabel="Recall", ylabel="Precision", xlim=(0, 1), ylim=(0, 1.02), title="PR curves")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    save(fig, path)
    return True


def plot_mae_bars(groups: list[VariantGroup], path: Path) -> None:
    """One bar per variant with its MAE written on it (std over seeds as an error bar when n > 1); reference
    maps as hatched grey bars."""
    stats = [g.stat("mae") for g in groups]
    fig = new_figure((max(4.0, 0.9 * len(groups) + 1.5), 4.2))
    ax = fig.subplots()
    bars = ax.bar(range(len(groups)), [s.mean for s in stats],
                  yerr=[np.nan if s.std is None else s.std for s in stats], capsize=4,  # NaN: no bar for n = 1
                  color=[REFERENCE_BAR if g.reference else st["color"] for g, st in zip(groups, group_styles(groups))],
                  edgecolor="black", linewidth=0.6)
    for bar, g in zip(bars, groups):
        if g.reference:
            bar.set_hatch("//")
    ax.bar_label(bars, labels=[f"{s.mean:.3f}" for s in stats], padding=3, fontsize="small")
    crowded = len(groups) > 4  # slanted labels keep long names like "SCNN (no CRF)" apart
    ax.set_xticks(range(len(groups)), [g.label for g in groups], rotation=30 if crowded else 0,
                  ha="right" if crowded else "center")
    top = max(s.mean + (s.std or 0.0) for s in stats)
    ax.set(ylabel="MAE", ylim=(0, top * 1.2 if top > 0 else 1.0), title="MAE (lower is better)")
    ax.grid(True, axis="y", alpha=0.3)
    save(fig, path)


def compose_overview(top: list[Path], bottom: Path | None, path: Path) -> None:
    """One shareable picture: the score figures side by side, the qualitative grid (if any) below."""
    def pad(img, height: int, width: int):  # white margin, image centred horizontally
        canvas = np.full((height, width, 3), 255, np.uint8)
        left = (width - img.shape[1]) // 2
        canvas[:img.shape[0], left:left + img.shape[1]] = img
        return canvas

    images = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in top]
    row = np.hstack([pad(img, max(i.shape[0] for i in images), img.shape[1]) for img in images])
    if bottom is not None:
        grid = cv2.imread(str(bottom), cv2.IMREAD_COLOR)
        width = max(row.shape[1], grid.shape[1])
        row = np.vstack([pad(row, row.shape[0], width), pad(grid, grid.shape[0], width)])
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), row):
            raise OSError(f"{path}: could not write PNG")
