"""Head-to-head per test sequence: on how many sequences one method's score beats another's.

A pooled score can hide where a method wins; the paper's claim (the network passes the maps it learns from)
is one a reader can check sequence by sequence. Each method's score on a sequence is its mean over seeds;
only sequences that every method has are counted, and a tie counts for neither side.
"""

from __future__ import annotations

from collections import defaultdict
from statistics import mean

from experiments.report.runs import LOWER_IS_BETTER


def sequence_means(rows: list[dict], metric: str) -> tuple[list[str], dict[str, dict[str, float]]]:
    """(methods in first-seen order, {method: {sequence: mean over seeds}}) from per_sequence.csv rows."""
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row.get(metric) not in (None, ""):
            values[row["method"]][row["sequence"]].append(float(row[metric]))
    return list(values), {m: {s: mean(v) for s, v in seqs.items()} for m, seqs in values.items()}


def wins_section(rows: list[dict], trained: list[str], metric: str = "s_measure") -> str:
    """Markdown: for each trained method (rows), the sequences it wins against every method (columns)."""
    methods, means = sequence_means(rows, metric)
    trained = [m for m in trained if m in means]
    if not trained or len(methods) < 2:
        return ""
    shared = sorted(set.intersection(*(set(means[m]) for m in methods)))
    if not shared:
        return ""
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0

    def wins(a: str, b: str) -> int:
        return sum(sign * (means[a][s] - means[b][s]) > 0 for s in shared)

    lines = ["## Sequences won", "",
             f"How many of the {len(shared)} test sequences the row beats the column on ({metric}, per sequence, "
             "mean over seeds; a tie counts for neither). From [per_sequence.csv](per_sequence.csv).", "",
             "| beats → | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
    for a in trained:
        lines.append(f"| {a} | " + " | ".join("—" if a == b else str(wins(a, b)) for b in methods) + " |")
    return "\n".join(lines) + "\n"
