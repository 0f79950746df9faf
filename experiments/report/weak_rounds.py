"""The weak-label loop round by round (Algorithm 1; the analogue of the paper's Fig. 4): for every run with
`weak_labels/round_*/manifest.json`, the fusion weight of each source (Eq. 8) and the held-out label
quality per round, as a figure and a table of the report."""

from __future__ import annotations

from pathlib import Path

from experiments.report.figures import new_figure, save, style
from scnn_lightning.weak.sources import PREDICTION
from scnn_lightning.weak.store import WeakLabelStore

MAX_RUNS = 6  # rows of the figure; a study with more runs shows its first ones
QUALITY = {"label_iou": "label IoU", "fused_iou": "fused-map soft IoU", "label_mae": "label MAE",
           "fused_mae": "fused-map MAE"}


def read_rounds(run_dir: Path) -> list[dict]:
    """The manifests of a run's published weak-label rounds, in order ([] without weak labels)."""
    store = WeakLabelStore(Path(run_dir) / "weak_labels")
    return [store.manifest(r) for r in store.rounds()]


def plot_weak_rounds(records: list[tuple[str, list[dict]]], path: Path) -> None:
    """One row per run: weights per source | held-out quality | share of label pixels changed."""
    fig = new_figure((13, 4.0 * len(records)))
    for (label, manifests), axes in zip(records, fig.subplots(len(records), 3, squeeze=False)):
        _plot_weights(axes[0], label, manifests)
        _plot_quality(axes[1], manifests)
        _plot_changes(axes[2], manifests)
    fig.tight_layout()
    save(fig, path)


def _plot_weights(ax, label: str, manifests: list[dict]) -> None:
    sources = list(dict.fromkeys(name for m in manifests for name in m["sources"]))
    for i, name in enumerate(sources):  # a source is drawn in the rounds it was fused in
        ax.plot(*zip(*[(m["round"], m["weights"][name]) for m in manifests if name in m["weights"]]),
                marker="o", label=name, **style(i))
    ax.set(title=f"{label}: fusion weights (Eq. 8)", xlabel="round", ylabel="weight", ylim=(-0.03, 1.03))
    ax.grid(True, alpha=0.3)
    _legend_below(ax)


def _plot_quality(ax, manifests: list[dict]) -> None:
    lines = {name: [(m["round"], m.get("quality", {}).get(key)) for m in manifests] for key, name in QUALITY.items()}
    lines["network alone: label IoU"] = [(m["round"], m.get("quality", {}).get("sources", {}).get(PREDICTION, {})
                                          .get("label_iou")) for m in manifests]
    for i, (name, points) in enumerate(lines.items()):
        points = [(r, v) for r, v in points if v is not None]  # older manifests lack some entries
        if points:
            ax.plot(*zip(*points), marker="o", label=name, **style(i))
    ax.set(title="held-out label quality", xlabel="round", ylim=(-0.03, 1.03))
    ax.grid(True, alpha=0.3)
    _legend_below(ax)


def _legend_below(ax) -> None:
    """Under the axes: the lines span the whole plot, any legend inside would hide some."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, fontsize="small", frameon=False)


def _plot_changes(ax, manifests: list[dict]) -> None:
    changed = [(m["round"], m["stats"].get("changed_fraction")) for m in manifests]
    changed = [(r, v) for r, v in changed if v is not None]
    if changed:
        ax.bar(*zip(*changed), color=style(0)["color"])
    ax.set(title="label pixels changed since the last round", xlabel="round", ylabel="fraction")


def _table(manifests: list[dict]) -> list[str]:
    sources = list(dict.fromkeys(name for m in manifests for name in m["sources"]))
    head = ["round", *(f"w {s}" for s in sources), "label IoU", "label MAE", "network alone: label IoU", "changed",
            "solver"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in manifests:
        quality = m.get("quality", {})
        cells = [str(m["round"]), *(f"{m['weights'].get(s, 0.0):.3f}" for s in sources),
                 *(_number(quality.get(k)) for k in ("label_iou", "label_mae")),
                 _number(quality.get("sources", {}).get(PREDICTION, {}).get("label_iou")),
                 _number(m["stats"].get("changed_fraction")), m.get("fit", {}).get("solver", "")]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _number(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def weak_rounds_section(runs, out: Path) -> str:
    """Draw `out/weak_rounds.png` and return the report's markdown section ("" when no run has weak labels).
    `runs` are `experiments.report.runs.Run`s."""
    records = [(f"{run.variant} seed {run.seed}", rounds) for run in runs if (rounds := read_rounds(run.path))]
    if not records:
        return ""
    shown = records[:MAX_RUNS]
    plot_weak_rounds(shown, Path(out) / "weak_rounds.png")
    lines = ["## Weak-label rounds (Algorithm 1, Fig. 4)", "",
             "Per round: the fusion weights of Eq. 8 (the network's calibrated map is `prediction`, from round 1), "
             "the quality of the fused map and of its Otsu label against the ground truth of the held-out labelled "
             "frames (kept out of the loss; the fused map's IoU is the soft IoU Σmin/Σmax), and the share of label "
             "pixels of the frames without ground truth that changed since the round before. \"network alone\" is the "
             "Otsu label of the network's calibrated map by itself, for comparison."
             + (f" The first {MAX_RUNS} of {len(records)} runs are shown." if len(records) > MAX_RUNS else ""),
             "", "![weak-label rounds](weak_rounds.png)", ""]
    for label, manifests in shown:
        lines += [f"### {label}", "", *_table(manifests), ""]
    return "\n".join(lines)
