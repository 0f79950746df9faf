"""Reference maps in a comparison: the rows `python -m ablations.baselines` records (baselines.json, with
its PR curves in baselines_curves.json beside it), shown in the same table and figures as trained runs.

A reference row is a saliency map scored as it is (an external model's maps, a classical model, a centre
prior, the round-0 fused map): nothing is trained, so it has no seeds, no spread and no CRF. It becomes a
`VariantGroup` with `reference=True` holding one `Run` whose path is the baselines file. Its numbers are
only comparable with the runs' when both were scored by the same evaluator on the same frames with the
same protocol; `reference_warnings` says where that is not so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from experiments.report.runs import METRICS, Run, VariantGroup, finite_number, frame_count, pr_from, read_json_object
from scnn_lightning.errors import DataError

# How the rows of ablations/baselines.py are named in reports; other names are shown as they are.
DISPLAY_NAMES = {"csnet-x1": "CSNet-x1", "csnet-x2": "CSNet-x2", "centre": "centre prior",
                 "fused-round0": "round-0 fusion", "ft": "FT", "mbd": "MBD", "rbd": "RBD",
                 "propagated": "propagated val GT"}
MARK = " (map)"  # appended to every reference label, so no row can be mistaken for a trained variant


@dataclass(frozen=True)
class References:
    """The reference rows of one baselines file."""

    path: Path  # baselines.json
    protocol: str
    command: str  # how the file was made ("" when not recorded)
    groups: list[VariantGroup]
    curves_path: Path | None  # the PR-curves file read, None when there is none

    def frames(self) -> set[int | None]:
        return {g.runs[0].frames for g in self.groups}


def curves_file(path: Path) -> Path:
    """baselines.json -> baselines_curves.json (the name ablations/baselines.py writes)."""
    return path.with_name(f"{path.stem}_curves.json")


def per_sequence_file(path: Path) -> Path:
    """baselines.json -> baselines_per_sequence.csv."""
    return path.with_name(f"{path.stem}_per_sequence.csv")


def _read_curves(path: Path) -> dict[str, dict]:
    data = read_json_object(path)
    for method, curve in data.items():
        if not isinstance(curve, dict):
            raise DataError(path, f"{method!r} must be an object with precision and recall lists")
    return data


def _reference_run(path: Path, protocol: str, index: int, row, curves: dict[str, dict],
                   curves_path: Path | None) -> Run:
    where = f"rows[{index}]"
    if not isinstance(row, dict):
        raise DataError(path, f"{where} must be an object, found {type(row).__name__}")
    method = row.get("method")
    if not isinstance(method, str) or not method:
        raise DataError(path, f"{where} has no method name")
    if row.get("mae") is None:
        raise DataError(path, f"{where} ({method}) records no 'mae'")
    scores = {k: finite_number(path, f"{where}.{k}", row[k]) for k in METRICS if row.get(k) is not None}
    pr = pr_from(curves_path, curves[method], f"{method}.") if method in curves else None
    return Run(path=path, variant=method, protocol=protocol, crf=False, seed=0, scores=scores, pr=pr, timings=None,
               frames=frame_count(path, f"{where}.frames", row.get("frames")))


def load_references(path: str | Path) -> References:
    """Read a baselines file (and its curves file, when present); a malformed one raises `DataError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "no such baselines file (made by python -m ablations.baselines)")
    data = read_json_object(path)
    rows, protocol = data.get("rows"), data.get("protocol")
    if not isinstance(rows, list) or not rows:
        raise DataError(path, "'rows' must be a non-empty list of scored methods")
    if not isinstance(protocol, str) or not protocol:
        raise DataError(path, "records no evaluation 'protocol'")
    curves_path = curves_file(path) if curves_file(path).is_file() else None
    curves = _read_curves(curves_path) if curves_path is not None else {}
    runs = [_reference_run(path, protocol, i, row, curves, curves_path) for i, row in enumerate(rows)]
    names = [r.variant for r in runs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(path, f"method(s) {', '.join(repeated)} appear in more than one row")
    groups = [VariantGroup(label=DISPLAY_NAMES.get(r.variant, r.variant) + MARK, variant=r.variant,
                           protocol=protocol, crf=False, runs=[r], reference=True) for r in runs]
    command = data.get("command")
    return References(path=path, protocol=protocol, command=command if isinstance(command, str) else "",
                      groups=groups, curves_path=curves_path)


def _listed(runs: list[Run]) -> str:
    return ", ".join(str(r.path) for r in runs)


def reference_warnings(refs: References, runs: list[Run], test_set: str | None) -> list[str]:
    """Where the trained runs and the reference maps were not scored alike (protocol, test set, frames)."""
    warnings = []
    other_protocol = [r for r in runs if r.protocol != refs.protocol]
    if other_protocol:
        warnings.append(f"the reference maps ({refs.path}) were scored with the {refs.protocol} protocol, "
                        f"these runs with another: {_listed(other_protocol)}")
    if test_set is not None:
        elsewhere = [r for r in runs if r.datasets and test_set not in r.datasets]
        if elsewhere:
            warnings.append(f"the reference maps are scores on test set {test_set}, which these runs did not "
                            f"record: {_listed(elsewhere)}")
    ref_frames = refs.frames()
    if None in ref_frames or len(ref_frames) > 1:
        warnings.append(f"{refs.path} does not record one frame count for all its rows; "
                        "whether they cover the runs' frames cannot be checked")
        return warnings
    (expected,) = ref_frames
    # The table shows each run's top-level scores, which pool every test set the run recorded.
    other_frames = [r for r in runs if r.frames != expected]
    if other_frames:
        counts = ", ".join(f"{r.path} ({'unknown' if r.frames is None else r.frames})" for r in other_frames)
        warnings.append(f"the reference maps were scored on {expected} frames, these runs' scores pool another "
                        f"number of test frames: {counts}; the rows are not over the same frames")
    return warnings
