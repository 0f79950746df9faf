"""The report's head-to-head table per test sequence (experiments/report/wins.py)."""

from __future__ import annotations

from experiments.report.wins import wins_section


def row(method: str, seed, sequence: str, s: float, mae: float) -> dict:
    return {"method": method, "kind": "trained" if seed != "" else "reference map", "seed": seed,
            "sequence": sequence, "frames": "10", "s_measure": str(s), "mae": str(mae)}


ROWS = [
    row("SCNN", 0, "a", 0.80, 0.10), row("SCNN", 1, "a", 0.60, 0.10),  # mean 0.70 on a
    row("SCNN", 0, "b", 0.90, 0.05), row("SCNN", 1, "b", 0.90, 0.05),
    row("SCNN", 0, "c", 0.50, 0.30),  # only SCNN has c: not counted
    row("NA", 0, "a", 0.75, 0.20), row("NA", 0, "b", 0.90, 0.01),  # a tie on b's S-measure
    row("csnet-x2", "", "a", 0.65, 0.05), row("csnet-x2", "", "b", 0.95, 0.02),
]


def cells(section: str) -> dict[str, list[str]]:
    lines = [ln for ln in section.splitlines() if ln.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")][1:]
    return {c[0]: dict(zip(header, c[1:])) for c in ([x.strip() for x in ln.strip("|").split("|")] for ln in lines[1:])}


def test_seeds_are_averaged_shared_sequences_counted_and_ties_go_to_neither():
    section = wins_section(ROWS, ["SCNN", "NA"])
    assert "of the 2 test sequences" in section
    table = cells(section)
    assert table["SCNN"] == {"SCNN": "—", "NA": "0", "csnet-x2": "1"}  # a: 0.70 < 0.75; b: a tie with NA
    assert table["NA"] == {"SCNN": "1", "NA": "—", "csnet-x2": "1"}
    assert "csnet-x2" not in table  # reference maps are columns only


def test_lower_is_better_metrics_count_the_smaller_value_as_the_win():
    table = cells(wins_section(ROWS, ["SCNN", "NA"], metric="mae"))
    assert table["SCNN"]["NA"] == "1" and table["NA"]["SCNN"] == "1"  # a: 0.10 < 0.20; b: 0.01 < 0.05
    assert table["SCNN"]["csnet-x2"] == "0"


def test_nothing_to_compare_gives_no_section():
    assert wins_section([], ["SCNN"]) == ""
    assert wins_section([row("SCNN", 0, "a", 0.8, 0.1)], ["SCNN"]) == ""
