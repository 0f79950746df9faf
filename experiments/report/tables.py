"""The report's tables: scores per variant (markdown + CSV) and the per-component run time (Table II)."""

from __future__ import annotations

import csv
from pathlib import Path

from experiments.report.runs import COMPONENTS, LOWER_IS_BETTER, METRICS, Stat, VariantGroup
from scnn_lightning.record_paths import record_path
from scnn_lightning.utils import atomic_path

DECIMALS = 3


def present_metrics(groups: list[VariantGroup]) -> list[str]:
    """The score columns at least one run recorded, in the paper's order."""
    return [m for m in METRICS if any(g.stat(m) is not None for g in groups)]


def _best(groups: list[VariantGroup], metric: str) -> float | None:
    """The best mean as displayed, so that ties at the shown precision are all marked."""
    means = [round(s.mean, DECIMALS) for g in groups if (s := g.stat(metric)) is not None]
    if not means:
        return None
    return min(means) if metric in LOWER_IS_BETTER else max(means)


def _cell(stat: Stat | None, n_runs: int, best: float | None) -> str:
    if stat is None:
        return "—"
    text = f"{stat.mean:.{DECIMALS}f}" + (f" ± {stat.std:.{DECIMALS}f}" if stat.std is not None else "")
    if round(stat.mean, DECIMALS) == best:
        text = f"**{text}**"
    # A score some seeds did not record is pooled over fewer runs than the row's n: say so.
    return text + (f" (n={stat.n})" if stat.n != n_runs else "")


def metrics_table(groups: list[VariantGroup]) -> str:
    """Markdown: one row per variant, mean ± std over seeds, best value per column in bold."""
    metrics = present_metrics(groups)
    arrows = [m + (" ↓" if m in LOWER_IS_BETTER else " ↑") for m in metrics]
    header = ["variant", "protocol", "CRF", "n", "seeds", *arrows]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 5 + ["---:"] * len(metrics)) + "|"]
    best = {m: _best(groups, m) for m in metrics}
    for g in groups:
        n, seeds = ("—", "—") if g.reference else (str(len(g.runs)), ", ".join(map(str, g.seeds)))
        row = [g.label, g.protocol, "on" if g.crf else "off", n, seeds,
               *(_cell(g.stat(m), len(g.runs), best[m]) for m in metrics)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def runtime_table(groups: list[VariantGroup]) -> str | None:
    """Markdown in the layout of Table II (model, component, seconds per frame, % of total); None when untimed."""
    lines = ["| model | component | time (s/frame) | ratio (%) |", "|---|---|---:|---:|"]
    timed = False
    for g in groups:
        timings = g.timings()
        if timings is None:
            continue
        timed = True
        total = timings["total"].mean
        for key, name in COMPONENTS.items():
            if key in timings:
                share = f"{100 * timings[key].mean / total:.2f}" if total > 0 else "—"
                lines.append(f"| {g.label} | {name} | {_seconds(timings[key])} | {share} |")
        lines.append(f"| {g.label} | Total | {_seconds(timings['total'])} | 100 |")
    return "\n".join(lines) if timed else None


def _seconds(stat: Stat) -> str:
    return f"{stat.mean:.3f}" + (f" ± {stat.std:.3f}" if stat.std is not None else "")


REFERENCE_KIND, TRAINED_KIND = "reference map", "trained"


def write_summary_csv(path: Path, groups: list[VariantGroup]) -> None:
    """One row per variant: identity, n, seeds, then `<metric>_mean`, `<metric>_std`, `<metric>_n` (full precision).

    With reference maps among the groups, a last column `kind` says `trained` or `reference map`; a reference
    row has empty n and seeds, `runs` names the file its scores come from, and its scores are as recorded there.
    """
    metrics = present_metrics(groups)
    columns = ["variant", "label", "protocol", "crf", "n", "seeds", "runs"]
    columns += [f"{m}_{part}" for m in metrics for part in ("mean", "std", "n")]
    with_kind = any(g.reference for g in groups)
    columns += ["kind"] * with_kind
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for g in groups:
            row = {"variant": g.variant, "label": g.label, "protocol": g.protocol, "crf": g.crf,
                   "n": "" if g.reference else len(g.runs), "seeds": "" if g.reference else " ".join(map(str, g.seeds)),
                   "runs": " ".join(record_path(r.path) for r in g.runs)}
            if with_kind:
                row["kind"] = REFERENCE_KIND if g.reference else TRAINED_KIND
            for m in metrics:
                stat = g.stat(m)
                row.update({f"{m}_mean": "" if stat is None else repr(stat.mean),
                            f"{m}_std": "" if stat is None or stat.std is None else repr(stat.std),
                            f"{m}_n": 0 if stat is None else stat.n})
            writer.writerow(row)
