"""The qualitative grid of the paper's Fig. 6 / Fig. 8: rows are test frames, columns are the input frame,
its ground truth, then each variant's saliency map.

Frames are picked deterministically and spread over the sequences (evenly spaced sequences, then evenly
spaced frames inside each), among the frames every variant has a map for. Each variant's maps come
from its lowest seed that kept them (`shown_run`), from the folder of one test set (`Run.predictions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from experiments.report.figures import new_figure, save
from experiments.report.runs import Run, VariantGroup
from scnn_lightning.data.io import read_frame, read_mask
from scnn_lightning.data.readers import load_index
from scnn_lightning.data.records import FrameRef
from scnn_lightning.errors import DataError
from scnn_lightning.data.readers.common import natural_key

FrameKey = tuple[str, str]  # (sequence, frame name), as in predictions/<test set>/<sequence>/<name>.png


@dataclass(frozen=True)
class GridRow:
    key: FrameKey
    frame: np.ndarray | None  # RGB uint8, None without ground-truth data
    mask: np.ndarray | None  # {0, 1} uint8, None when unlabelled or without ground-truth data
    maps: list[np.ndarray]  # one float map in [0, 1] per variant


def shown_run(group: VariantGroup, test_set: str | None) -> Run:
    """The run whose maps stand for `group`: its lowest seed with saved maps (a run reported from its records
    alone has none), else its lowest seed."""
    return next((r for r in group.runs if r.predictions(test_set).is_dir()), group.runs[0])


def prediction_path(group: VariantGroup, key: FrameKey, test_set: str | None) -> Path:
    return shown_run(group, test_set).predictions(test_set) / key[0] / f"{key[1]}.png"


def predicted_frames(group: VariantGroup, test_set: str | None) -> set[FrameKey]:
    root = shown_run(group, test_set).predictions(test_set)
    return {(p.parent.name, p.stem) for p in root.glob("*/*.png")}


def spread(items: list, count: int) -> list:
    """`count` evenly spaced items: the centres of `count` equal slices (all items when there are not more).

    Centres rather than end points, so that a single pick is the middle frame, not the (often easy) first one.
    """
    if count >= len(items):
        return list(items)
    return [items[int((i + 0.5) * len(items) / count)] for i in range(count)]


def choose_frames(candidates: dict[str, list[str]], count: int) -> list[FrameKey]:
    """Spread `count` frames over the sequences of `candidates` (sequence -> ordered frame names)."""
    sequences = spread([s for s in candidates if candidates[s]], count)
    chosen = []
    for i, seq in enumerate(sequences):
        quota = count // len(sequences) + (i < count % len(sequences))
        chosen += [(seq, name) for name in spread(candidates[seq], quota)]
    return chosen


def read_map(path: Path, shape: tuple[int, int] | None) -> np.ndarray:
    pixels = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if pixels is None:
        raise DataError(path, "cannot be decoded as an image")
    if shape is not None and pixels.shape != shape:  # display only: maps are shown at the frame's size
        pixels = cv2.resize(pixels, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return pixels.astype(np.float32) / 255.0


def rows_from_predictions(groups: list[VariantGroup], count: int, test_set: str | None) -> list[GridRow]:
    """Without ground-truth data: frames of `test_set` every variant predicted, in natural order."""
    common = set.intersection(*(predicted_frames(g, test_set) for g in groups))
    candidates: dict[str, list[str]] = {}
    for seq, name in sorted(common, key=lambda k: (natural_key(k[0]), natural_key(k[1]))):
        candidates.setdefault(seq, []).append(name)
    return [GridRow(key=key, frame=None, mask=None,
                    maps=[read_map(prediction_path(g, key, test_set), None) for g in groups])
            for key in choose_frames(candidates, count)]


def rows_from_dataset(groups: list[VariantGroup], count: int, *, gt: Path, dataset: str,
                      split: str | None, test_set: str | None) -> list[GridRow]:
    """With ground-truth data: labelled frames (in the dataset's order) that every variant predicted."""
    index = load_index(dataset, gt, split=split)
    common = set.intersection(*(predicted_frames(g, test_set) for g in groups))
    refs: dict[FrameKey, FrameRef] = {(f.sequence, f.name): f for f in index.frames if (f.sequence, f.name) in common}
    if not refs:
        which = f"{dataset}" + (f" (split {split})" if split else "")
        raise DataError(gt, f"none of the {len(index.frames)} frames of {which} has a map in "
                            f"every run's predictions/ folder; is this the runs' test set?")
    # Prefer frames with ground truth; fall back to unlabelled ones only when no labelled frame was predicted.
    usable = {k: f for k, f in refs.items() if f.labelled} or refs
    candidates: dict[str, list[str]] = {}
    for seq, name in usable:
        candidates.setdefault(seq, []).append(name)
    rows = []
    for key in choose_frames(candidates, count):
        frame = read_frame(usable[key])
        shape = frame.shape[:2]
        rows.append(GridRow(key=key, frame=frame, mask=read_mask(usable[key], shape),
                            maps=[read_map(prediction_path(g, key, test_set), shape) for g in groups]))
    return rows


def plot_grid(rows: list[GridRow], groups: list[VariantGroup], path: Path) -> None:
    """Rows of [frame, ground truth,] variant maps; the frame's sequence/name labels each row."""
    with_gt = rows[0].frame is not None
    titles = (["Frame", "Ground truth"] if with_gt else []) + [g.label for g in groups]
    height, width = rows[0].maps[0].shape if not with_gt else rows[0].frame.shape[:2]
    cell = 1.7
    fig = new_figure((cell * len(titles), cell * len(rows) * height / width + 0.4))
    axes = fig.subplots(len(rows), len(titles), squeeze=False)
    for r, row in enumerate(rows):
        panels = ([row.frame, row.mask] if with_gt else []) + row.maps
        for c, (ax, panel) in enumerate(zip(axes[r], panels)):
            if panel is None:  # an unlabelled frame: say so rather than draw an empty mask
                ax.text(0.5, 0.5, "no ground truth", ha="center", va="center", fontsize="x-small",
                        transform=ax.transAxes)
                ax.set_box_aspect(row.maps[0].shape[0] / row.maps[0].shape[1])  # same shape as its neighbours
            elif panel.ndim == 3:
                ax.imshow(panel)
            else:
                ax.imshow(panel, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize="small")
        axes[r][0].set_ylabel(f"{row.key[0]}\n{row.key[1]}", fontsize="x-small")
    fig.subplots_adjust(wspace=0.04, hspace=0.06)
    save(fig, path)
