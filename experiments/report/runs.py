"""Reading finished run directories (written by `experiments/run.py`) and pooling seeds per variant.

A run directory holds `metrics.json` (required), `pr_curve.json` and, when the runtime was measured,
`timings.json` (seconds per frame per component, the paper's Table II). `metrics.json` has the scores of
all test frames pooled at its top level and, from runs that record them, each test set's own scores under
`datasets` (their maps under `predictions/<test set>/`). Runs that agree on variant, CRF setting and
protocol form one `VariantGroup`; its numbers are mean ± std over their seeds.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scnn_lightning.errors import DataError

# The §IV-A scores in table order; `temporal_consistency` is only present when it was measured.
METRICS = ("mae", "max_f", "mean_f", "adp_f", "s_measure", "max_e", "mean_e", "adp_e", "w_f", "temporal_consistency")
LOWER_IS_BETTER = frozenset({"mae", "temporal_consistency"})
REQUIRED_KEYS = ("variant", "protocol", "crf", "seed", "mae")
# Table II rows: recorded key -> the paper's wording.
COMPONENTS = {"flow": "Optical flow computation", "temporal_prior": "Temporal prior generation",
              "network": "Neural network processing", "crf": "Saliency refinement"}


@dataclass(frozen=True)
class Run:
    """One finished run: its identity, scalar scores, PR curve and (optional) component timings."""

    path: Path
    variant: str
    protocol: str
    crf: bool
    seed: int
    scores: dict[str, float]
    pr: tuple[np.ndarray, np.ndarray] | None  # (precision, recall) over the same thresholds
    timings: dict[str, float] | None  # component -> s/frame, plus "total"
    datasets: dict[str, dict[str, float]] = field(default_factory=dict)  # test set -> its own scores
    frames: int | None = None  # test frames the top-level scores pool (None: not recorded)
    frames_per_set: dict[str, int] = field(default_factory=dict)  # test set -> its frames

    def predictions(self, test_set: str | None) -> Path:
        """Where the maps of `test_set` are: `predictions/<test set>/` for runs that record their test sets,
        `predictions/` for older runs (one test set, `predictions/<seq>/<frame>.png`)."""
        root = self.path / "predictions"
        return root / test_set if self.datasets and test_set else root


def read_json_object(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(path, f"cannot be read ({err})") from err
    except json.JSONDecodeError as err:
        raise DataError(path, f"is not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise DataError(path, f"expected a JSON object, found {type(data).__name__}")
    return data


def finite_number(path: Path, key: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(path, f"{key!r} must be a finite number, found {value!r}")
    return float(value)


def pr_from(path: Path, data: dict, where: str = "") -> tuple[np.ndarray, np.ndarray]:
    """(precision, recall) from `data`, a {precision: [...], recall: [...]} read from `path` (at `where` in it)."""
    curves = []
    for key in ("precision", "recall"):
        values = data.get(key)
        if not isinstance(values, list) or not values:
            raise DataError(path, f"{where}{key!r} must be a non-empty list of numbers")
        curve = np.array([finite_number(path, where + key, v) for v in values], dtype=np.float64)
        curves.append(curve)
    if curves[0].shape != curves[1].shape:
        raise DataError(path, f"{where}precision has {curves[0].size} values but recall has {curves[1].size}")
    return curves[0], curves[1]


def _read_pr(path: Path) -> tuple[np.ndarray, np.ndarray]:
    return pr_from(path, read_json_object(path))


def frame_count(path: Path, key: str, value) -> int | None:
    """A recorded number of frames: a non-negative integer, or None when absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DataError(path, f"{key!r} must be a number of frames, found {value!r}")
    return value


def _read_datasets(path: Path, value) -> dict[str, dict[str, float]]:
    """metrics.json's `datasets`: {test set: {score: number}} (absent in runs made before it existed)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise DataError(path, "'datasets' must map each test set to its scores")
    return {name: {k: finite_number(path, f"datasets.{name}.{k}", scores[k]) for k in METRICS
                   if scores.get(k) is not None} for name, scores in value.items()}


def _read_set_frames(path: Path, value) -> dict[str, int]:
    """Frames per test set from metrics.json's `datasets` (validated by `_read_datasets` to be a mapping)."""
    return {name: n for name, scores in (value or {}).items()
            if (n := frame_count(path, f"datasets.{name}.frames", scores.get("frames"))) is not None}


def _read_timings(path: Path) -> dict[str, float]:
    data = read_json_object(path)
    timings = {k: finite_number(path, k, data[k]) for k in (*COMPONENTS, "total") if data.get(k) is not None}
    if not set(COMPONENTS) & set(timings):
        raise DataError(path, f"records none of the components {', '.join(COMPONENTS)}")
    if any(v < 0 for v in timings.values()):
        raise DataError(path, "a component time is negative")
    # A recorded total may include overhead outside the components; otherwise the components are the total.
    timings.setdefault("total", sum(v for k, v in timings.items() if k in COMPONENTS))
    return timings


def load_run(path: str | Path) -> Run:
    """Read one run directory; a missing or malformed `metrics.json` raises `DataError` naming it."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(path, "is not a run directory (not a folder)")
    metrics_path = path / "metrics.json"
    if not metrics_path.is_file():
        raise DataError(path, "is not a finished run: it has no metrics.json")
    metrics = read_json_object(metrics_path)
    missing = [k for k in REQUIRED_KEYS if k not in metrics]
    if missing:
        raise DataError(metrics_path, f"missing keys: {', '.join(missing)}")
    if not isinstance(metrics["crf"], bool):
        raise DataError(metrics_path, f"'crf' must be true or false, found {metrics['crf']!r}")
    if isinstance(metrics["seed"], bool) or not isinstance(metrics["seed"], int):
        raise DataError(metrics_path, f"'seed' must be an integer, found {metrics['seed']!r}")
    # null means "not measured" (e.g. temporal consistency without frames), so it is left out, not zero.
    scores = {k: finite_number(metrics_path, k, metrics[k]) for k in METRICS if metrics.get(k) is not None}
    pr_path, timings_path = path / "pr_curve.json", path / "timings.json"
    datasets = _read_datasets(metrics_path, metrics.get("datasets"))
    # A run's `tag` (e.g. SCNN-allblocks) names it in reports; it defaults to the variant code.
    return Run(path=path, variant=str(metrics.get("tag") or metrics["variant"]), protocol=str(metrics["protocol"]),
               crf=metrics["crf"], seed=metrics["seed"], scores=scores,
               pr=_read_pr(pr_path) if pr_path.is_file() else None,
               timings=_read_timings(timings_path) if timings_path.is_file() else None, datasets=datasets,
               frames=frame_count(metrics_path, "frames", metrics.get("frames")),
               frames_per_set=_read_set_frames(metrics_path, metrics.get("datasets")))


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation (None for a single run) of one score over n seeds."""

    mean: float
    std: float | None
    n: int


def seed_stat(values: list[float]) -> Stat:
    """The `Stat` of one score's values over seeds."""
    arr = np.asarray(values, dtype=np.float64)
    return Stat(mean=float(arr.mean()), std=float(arr.std(ddof=1)) if arr.size > 1 else None, n=int(arr.size))


@dataclass
class VariantGroup:
    """The runs of one variant under one CRF setting and protocol (normally: several seeds), or a reference
    map's recorded scores (`reference`: a map scored as it is, not trained; see report/references.py)."""

    label: str
    variant: str
    protocol: str
    crf: bool
    runs: list[Run]
    reference: bool = False

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.runs]

    def stat(self, metric: str) -> Stat | None:
        values = [r.scores[metric] for r in self.runs if metric in r.scores]
        return seed_stat(values) if values else None

    def pr_curve(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Threshold-wise mean of the seeds' curves (all runs share the 256 thresholds)."""
        curves = [r.pr for r in self.runs if r.pr is not None]
        if not curves:
            return None
        sizes = {c[0].size for c in curves}
        if len(sizes) > 1:
            raise DataError(self.runs[0].path,
                            f"runs of {self.label} have PR curves of different lengths {sorted(sizes)}")
        return np.mean([c[0] for c in curves], axis=0), np.mean([c[1] for c in curves], axis=0)

    def timings(self) -> dict[str, Stat] | None:
        timed = [r.timings for r in self.runs if r.timings is not None]
        if not timed:
            return None
        keys = [k for k in (*COMPONENTS, "total") if any(k in t for t in timed)]
        return {k: seed_stat([t[k] for t in timed if k in t]) for k in keys}


def _label(variant: str, crf: bool, protocol: str, *, show_crf: bool, show_protocol: bool) -> str:
    details = ([("CRF" if crf else "no CRF")] if show_crf else []) + ([protocol] if show_protocol else [])
    return f"{variant} ({', '.join(details)})" if details else variant


def group_runs(runs: list[Run]) -> list[VariantGroup]:
    """Pool runs per (variant, CRF, protocol), in the order variants first appear; seeds sorted.

    A label names only the variant unless the same variant appears under several settings.
    """
    keyed: dict[tuple[str, bool, str], list[Run]] = {}
    for run in runs:
        keyed.setdefault((run.variant, run.crf, run.protocol), []).append(run)
    groups = []
    for (variant, crf, protocol), members in keyed.items():
        siblings = [k for k in keyed if k[0] == variant]
        label = _label(variant, crf, protocol, show_crf=len({k[1] for k in siblings}) > 1,
                       show_protocol=len({k[2] for k in siblings}) > 1)
        groups.append(VariantGroup(label=label, variant=variant, protocol=protocol, crf=crf,
                                   runs=sorted(members, key=lambda r: r.seed)))
    return groups


def consistency_warnings(runs: list[Run], groups: list[VariantGroup]) -> list[str]:
    """Problems that make the numbers hard to compare, but do not stop the report."""
    warnings = []
    protocols = sorted({r.protocol for r in runs})
    if len(protocols) > 1:
        per_protocol = "; ".join(f"{p}: {', '.join(str(r.path) for r in runs if r.protocol == p)}" for p in protocols)
        warnings.append(f"runs were evaluated with different protocols ({per_protocol}); "
                        "their scores are not directly comparable")
    for group in groups:
        repeated = sorted({s for s in group.seeds if group.seeds.count(s) > 1})
        if repeated:
            warnings.append(f"{group.label}: seed(s) {', '.join(map(str, repeated))} appear in more than one run; "
                            "the spread over seeds understates the real variation")
    return warnings
