"""The report's score figures in the style of the paper's Fig. 5 / Fig. 7: PR curves and MAE bars."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: the report is built on machines without a display
import matplotlib.pyplot as plt  # noqa: E402

from experiments.report.runs import VariantGroup  # noqa: E402
from scnn_lightning.utils import atomic_path  # noqa: E402

# Fig. 7 separates many curves by colour and dash pattern; cycling both keeps 7+ variants legible.
LINESTYLES = ("-", "--", "-.", ":")


def style(index: int) -> dict:
    return {"color": plt.get_cmap("tab10")(index % 10), "linestyle": LINESTYLES[index % len(LINESTYLES)]}


def save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)


def plot_pr_curves(groups: list[VariantGroup], path: Path) -> bool:
    """Every variant's (seed-averaged) precision-recall curve in one plot; False when no run has one."""
    curves = [(g, c) for g in groups if (c := g.pr_curve()) is not None]
    if not curves:
        return False
    fig, ax = plt.subplots(figsize=(5, 4.2))
    for g, (precision, recall) in curves:
        ax.plot(recall, precision, linewidth=1.8, label=g.label, **style(groups.index(g)))
    ax.set(xlabel="Recall", ylabel="Precision", xlim=(0, 1), ylim=(0, 1.02), title="PR curves")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", fontsize="small")
    save(fig, path)
    return True


def plot_mae_bars(groups: list[VariantGroup], path: Path) -> None:
    """One bar per variant with its MAE written on it (std over seeds as an error bar when n > 1)."""
    stats = [g.stat("mae") for g in groups]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(groups) + 1.5), 4.2))
    bars = ax.bar(range(len(groups)), [s.mean for s in stats],
                  yerr=[s.std or 0.0 for s in stats], capsize=4 if any(s.std for s in stats) else 0,
                  color=[style(i)["color"] for i in range(len(groups))], edgecolor="black", linewidth=0.6)
    ax.bar_label(bars, labels=[f"{s.mean:.3f}" for s in stats], padding=3, fontsize="small")
    ax.set_xticks(range(len(groups)), [g.label for g in groups], rotation=30 if len(groups) > 4 else 0, ha="right" if len(groups) > 4 else "center")
    top = max(s.mean + (s.std or 0.0) for s in stats)
    ax.set(ylabel="MAE", ylim=(0, top * 1.2 if top > 0 else 1.0), title="MAE (lower is better)")
    ax.grid(True, axis="y", alpha=0.3)
    save(fig, path)


def compose_overview(top: list[Path], bottom: Path | None, path: Path) -> None:
    """One shareable picture: the score figures side by side, the qualitative grid (if any) below."""
    import cv2
    import numpy as np

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
