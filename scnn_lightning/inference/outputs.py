"""What predict writes where, and the record that ties an output folder to the settings its maps were made with.

One video or folder of frames / several sequences or a dataset (`nested`):

    OUT/<frame>.png                OUT/<seq>/<frame>.png                saliency maps
    OUT/priors/<map>/<frame>.png   OUT/priors/<map>/<seq>/<frame>.png   prior maps of `--maps` (ps, pt, p)
    OUT/overlay.mp4                OUT/<seq>/overlay.mp4                `--overlay`
    OUT/predict.json    the settings the maps were made with (`settings_record`)
    OUT/timings.json    Table II of the run that made them

A prior-map tree has the saliency maps' layout, so `evaluate --pred OUT/priors/ps` scores Ps alone, and
`evaluate --pred OUT` does not see it (`OUT/priors` holds no map of its own, so it is no sequence).

A rerun into a folder resumes it: frames whose maps exist are skipped. That is only right when the maps
were made with the same settings, so `claim_folder` compares `predict.json` with this run's and stops on
any difference, or (`overwrite`) deletes this run's outputs first.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from scnn_lightning.data.records import FrameRef, SequenceRef
from scnn_lightning.errors import DataError
from scnn_lightning.utils import write_json

SALIENCY = "saliency"
PRIOR_MAPS = ("ps", "pt", "p")  # Ps of FCN1, the temporal prior Pt, P = Ps * Pt (Cascade.priors)
PRIORS_FOLDER = "priors"
RECORD = "predict.json"
TIMINGS = "timings.json"
# What makes the maps: any difference means other maps. The checkpoint's path and the batch size do not.
MAP_SETTINGS = ("checkpoint_sha256", "crf", "network_size", "motion", "maps")


def map_path(out: Path, frame: FrameRef, nested: bool, kind: str = SALIENCY) -> Path:
    """Where the frame's saliency map (`kind` "saliency") or one of its prior maps ("ps", "pt", "p") goes."""
    root = out if kind == SALIENCY else out / PRIORS_FOLDER / kind
    return (root / frame.sequence if nested else root) / f"{frame.name}.png"


def overlay_path(out: Path, sequence: SequenceRef, nested: bool) -> Path:
    return (out / sequence.name if nested else out) / "overlay.mp4"


def is_written(png: Path) -> bool:
    """A map from an earlier run (PNGs are written atomically, so an existing one is complete)."""
    return png.is_file() and png.stat().st_size > 0


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_outside_input(source: str | Path, out: str | Path) -> None:
    """Refuse an output folder that is the input folder or inside it: a rerun would read its maps as frames."""
    source, out = Path(source).resolve(), Path(out).resolve()
    if source.is_dir() and (out == source or source in out.parents):
        where = "is the input folder" if out == source else f"is inside the input folder {source}"
        raise DataError(out, f"the output folder {where}; its maps would be read as frames: choose another --out")


def check_one_map_per_frame(sequences: list[SequenceRef], out: Path, nested: bool) -> None:
    """Refuse two input frames that would write one map (00001.jpg and 00001.png, clip.mp4 and clip/)."""
    owners: dict[Path, FrameRef] = {}
    for sequence in sequences:
        for frame in sequence.frames:
            png = map_path(out, frame, nested)
            if png in owners:
                raise DataError(frame.image, f"and {owners[png].image} would both be written to {png}: "
                                             f"one map per frame needs one name per frame; rename or remove one")
            owners[png] = frame


def frame_outputs(out: Path, sequences: list[SequenceRef], nested: bool) -> list[Path]:
    """Every file a run over `sequences` may write besides the record: maps of every kind, overlays, timings."""
    maps = [map_path(out, frame, nested, kind) for sequence in sequences for frame in sequence.frames
            for kind in (SALIENCY, *PRIOR_MAPS)]
    return maps + [overlay_path(out, sequence, nested) for sequence in sequences] + [out / TIMINGS]


def settings_record(*, checkpoint: Path, variant: str, crf: dict | None, network_size: tuple[int, int] | None,
                    motion: str | None, maps: tuple[str, ...]) -> dict:
    """`predict.json`: the settings that make the maps (`MAP_SETTINGS`), as JSON gives them back.

    `network_size` None: each frame's size rounded to a multiple of 8; `motion` the motion provider's
    `cache_key` (flow backend, prior, its parameters and the region classifier's digest), None without one."""
    record = {"checkpoint": str(checkpoint), "checkpoint_sha256": file_sha256(checkpoint), "variant": variant,
              "crf": crf, "network_size": network_size, "motion": motion, "maps": list(maps)}
    return json.loads(json.dumps(record))  # tuples as lists, so it compares equal to what is read back


def _shown(key: str, value) -> str:
    """A setting's value for a one-line message (a digest's first 12 digits)."""
    if key == "checkpoint_sha256" and isinstance(value, str):
        return value[:12]
    return json.dumps(value, separators=(",", ":"))


def claim_folder(out: Path, record: dict, sequences: list[SequenceRef], nested: bool, overwrite: bool) -> None:
    """Make `out` this run's: after checking that the maps there were made with the settings of `record`
    (or, with `overwrite`, deleting them), write `record` as `predict.json`."""
    path = out / RECORD
    if overwrite:
        path.unlink(missing_ok=True)  # first: an interrupted deletion leaves maps without a record, refused below
        for output in frame_outputs(out, sequences, nested):
            output.unlink(missing_ok=True)
    elif path.is_file():
        recorded = _read_record(path)
        differ = [key for key in MAP_SETTINGS if recorded.get(key) != record[key]]
        if differ:
            changes = "; ".join(f"{key} {_shown(key, recorded.get(key))} there, {_shown(key, record[key])} now"
                                for key in differ)
            raise DataError(path, f"the maps here were made with other settings ({changes}); pass --overwrite "
                                  f"to recompute them all, or choose another --out")
    elif any(is_written(map_path(out, frame, nested)) for sequence in sequences for frame in sequence.frames):
        raise DataError(out, f"holds maps of these frames but no {RECORD} saying how they were made; pass "
                             f"--overwrite to recompute them all, or choose another --out")
    write_json(path, record)


def _read_record(path: Path) -> dict:
    try:
        record = json.loads(path.read_text())
    except ValueError as exc:
        raise DataError(path, f"unreadable settings record ({exc}); pass --overwrite to recompute the maps") from exc
    if not isinstance(record, dict):
        raise DataError(path, "not a settings record (no JSON object); pass --overwrite to recompute the maps")
    return record
