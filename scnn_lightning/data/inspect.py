"""Check a dataset root before training on it: counts, problems the reader noticed, size mismatches.

    python -m scnn_lightning.data.inspect ROOT --dataset NAME [--split SPLIT]

Prints one JSON object (`DatasetIndex.summary()` plus size problems) to stdout. Size checks read
file headers only, so a whole dataset is checked in seconds. Unusable input (unknown dataset, empty
or missing root ...) ends with a one-line message on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys

from scnn_lightning.data.io import check_sequence_sizes, frame_size, image_size
from scnn_lightning.data.readers import DATASETS, load_index
from scnn_lightning.data.records import DatasetIndex, SequenceRef
from scnn_lightning.errors import DataError


def mask_size_problems(seq: SequenceRef) -> list[str]:
    """One line per ground-truth file whose size differs from its frame's (or that cannot be read)."""
    problems = []
    for ref in seq.frames:
        if not ref.masks:
            continue
        try:
            expected = frame_size(ref)
            for mask in ref.masks:
                size = image_size(mask)
                if size != expected:
                    problems.append(
                        f"{mask}: mask is {size[0]}x{size[1]} (HxW) but frame {ref.image} is "
                        f"{expected[0]}x{expected[1]}"
                    )
        except DataError as err:
            problems.append(str(err))
    return problems


def inspect_index(index: DatasetIndex) -> dict:
    """The index summary, with frame-size and mask-size problems added to `problems`."""
    report = index.summary()
    for seq in index.sequences:
        try:
            check_sequence_sizes(seq)
        except DataError as err:
            report["problems"].append(f"mixed frame sizes: {err}")
        report["problems"].extend(mask_size_problems(seq))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scnn_lightning.data.inspect", description=__doc__.split("\n")[0]
    )
    parser.add_argument("root", help="dataset root folder (or a video file for --dataset frames)")
    parser.add_argument("--dataset", required=True, help=f"one of: {', '.join(DATASETS)}")
    parser.add_argument("--split", default=None, help="dataset split (default: everything under ROOT)")
    args = parser.parse_args(argv)
    try:
        report = inspect_index(load_index(args.dataset, args.root, args.split))
    except (DataError, OSError) as err:  # OSError: e.g. a folder we may not list
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
