"""A picture of a generated synthetic benchmark: frames with ground-truth (green) and distractor (red) outlines.

    python -m scnn_lightning.data.preview ROOT --out FILE.png [--sequences 3] [--frames 4]

Rows are sequences, columns are frames spread evenly over each clip. Frames without ground truth
(sparse mode) show only the distractor outlines and say so in their title.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from scnn_lightning.data.synthetic import RESOLUTION
from scnn_lightning.errors import DataError
from scnn_lightning.utils import atomic_path

GT_COLOUR = "lime"
DISTRACTOR_COLOUR = "red"


def _read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(path, "missing or not a decodable image")
    return image[..., ::-1]


def _read_mask(path: Path) -> np.ndarray | None:
    """A {0,1} mask, or None when the file does not exist (an unlabelled frame)."""
    if not path.exists():
        return None
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise DataError(path, "not a decodable mask image")
    return (mask >= 128).astype(np.uint8)


def _image_path(root: Path, sequence: str, stem: str) -> Path:
    return root / "JPEGImages" / RESOLUTION / sequence / f"{stem}.jpg"


def _sequence_frames(root: Path, count: int) -> dict[str, list[str]]:
    images = root / "JPEGImages" / RESOLUTION
    if not images.is_dir():
        raise DataError(root, f"no JPEGImages/{RESOLUTION}/ folder: not a generated benchmark")
    chosen = {}
    for folder in sorted(p for p in images.iterdir() if p.is_dir())[:count]:
        stems = sorted(p.stem for p in folder.glob("*.jpg"))
        if stems:
            chosen[folder.name] = stems
    if not chosen:
        raise DataError(images, "holds no sequence with .jpg frames")
    return chosen


def render_preview(root: str | Path, out: str | Path, *, sequences: int = 3, frames: int = 4) -> Path:
    """Save a grid of `sequences` × `frames` outlined frames from the benchmark at `root` to `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if sequences < 1 or frames < 1:
        raise ValueError(f"sequences and frames must be >= 1, got {sequences} and {frames}")
    root, out = Path(root), Path(out)
    chosen = _sequence_frames(root, sequences)
    first_name, first_stems = next(iter(chosen.items()))
    height, width = _read_image(_image_path(root, first_name, first_stems[0])).shape[:2]
    panel = 2.4  # inches per frame: about the native pixel width of a 128×224 frame at `dpi`
    figure, axes = plt.subplots(
        len(chosen), frames, figsize=(panel * frames, (panel * height / width + 0.25) * len(chosen) + 0.4),
        squeeze=False,
    )
    for row, (name, stems) in enumerate(chosen.items()):
        picks = np.unique(np.linspace(0, len(stems) - 1, frames).round().astype(int))
        for col in range(frames):
            axis = axes[row, col]
            axis.set_axis_off()
            if col >= len(picks):
                continue
            stem = stems[picks[col]]
            axis.imshow(_read_image(_image_path(root, name, stem)))
            gt = _read_mask(root / "Annotations" / RESOLUTION / name / f"{stem}.png")
            distractors = _read_mask(root / "Meta" / name / "distractors" / f"{stem}.png")
            for mask, colour in ((gt, GT_COLOUR), (distractors, DISTRACTOR_COLOUR)):
                if mask is not None and mask.any():
                    axis.contour(mask, levels=[0.5], colors=colour, linewidths=1.0)
            axis.set_title(f"{name}/{stem}" + ("" if gt is not None else " (no GT)"), fontsize=7)
    figure.suptitle("green: ground truth (moving objects)   red: static distractors (not in GT)", fontsize=9)
    figure.tight_layout()
    with atomic_path(out) as tmp:
        figure.savefig(tmp, dpi=100, format=out.suffix.lstrip(".") or "png")
    plt.close(figure)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scnn_lightning.data.preview", description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="root of a benchmark written by scnn_lightning.data.synthetic")
    parser.add_argument("--out", type=Path, required=True, help="picture to write (.png)")
    parser.add_argument("--sequences", type=int, default=3)
    parser.add_argument("--frames", type=int, default=4)
    args = parser.parse_args(argv)
    try:
        out = render_preview(args.root, args.out, sequences=args.sequences, frames=args.frames)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        parser.error(str(error))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
