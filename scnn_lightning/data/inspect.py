"""Check a dataset root before training on it: counts, reader problems, and every file decoded.

    python -m scnn_lightning.data.inspect ROOT --dataset NAME [--split SPLIT] [--out FILE]

Prints one JSON object (`DatasetIndex.summary()`) to stdout, or writes it to FILE. Its `problems` are
the reader's notes plus what the runner's pre-training check (`scnn_lightning.data.verify.check_index`)
finds after decoding every frame and mask completely: unreadable, fake or truncated files, masks whose
size differs from their frame's or whose values cannot be thresholded, frame sizes changing inside a
video, colour masks. Unusable input (unknown dataset, empty or missing root, a folder that may not be
listed, an --out that cannot be written ...) ends with a one-line message on stderr and exit status 2,
the output path checked before any file is decoded.
"""

from __future__ import annotations

import argparse
import json
import sys

from scnn_lightning.data.readers import DATASETS, load_index
from scnn_lightning.data.records import DatasetIndex
from scnn_lightning.data.verify import check_index
from scnn_lightning.errors import DataError, report_failure, writable_file
from scnn_lightning.utils import write_json


def inspect_index(index: DatasetIndex) -> dict:
    """The index summary, with the problems of the full-decode check added to `problems`."""
    report = index.summary()
    found = check_index(index)
    report["problems"] += found.errors + found.warnings
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scnn_lightning.data.inspect", description=__doc__.split("\n")[0]
    )
    parser.add_argument("root", help="dataset root folder (or a video file for --dataset frames)")
    parser.add_argument("--dataset", required=True, help=f"one of: {', '.join(DATASETS)}")
    parser.add_argument("--split", default=None, help="dataset split (default: everything under ROOT)")
    parser.add_argument("--out", default=None, help="write the JSON report to this file (default: stdout)")
    args = parser.parse_args(argv)
    try:
        out = writable_file(args.out) if args.out else None  # checked before any file is decoded
        report = inspect_index(load_index(args.dataset, args.root, args.split))
        if out is None:
            print(json.dumps(report, indent=2))
        else:
            write_json(out, report)
    except (DataError, OSError) as err:  # OSError: e.g. a folder we may not list
        return report_failure(err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
