"""Collect a study: the comparison report (markdown table, PR curves, MAE bars, qualitative grid) and a CSV.

    python -m ablations.collect runs/study --out ablations/results [--gt ROOT --dataset davis]

Every run directory under the study root that has a metrics.json takes part; runs of the same tag
(variant, or e.g. SCNN-noCRF) over several seeds are reported as mean ± std.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.compare import build_report
from scnn_lightning.errors import DataError


def find_runs(root: Path) -> list[Path]:
    runs = sorted(p.parent for p in root.rglob("metrics.json"))
    if not runs:
        raise DataError(root, "no run with a metrics.json below this folder")
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--gt", type=Path, help="test ground truth root, for the qualitative grid")
    parser.add_argument("--dataset", default="davis")
    parser.add_argument("--split")
    args = parser.parse_args(argv)
    try:
        report = build_report(find_runs(args.root), args.out, gt=args.gt, dataset=args.dataset if args.gt else None,
                              split=args.split)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
