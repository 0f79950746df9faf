"""How records write the paths they hold, so that a committed record reads the same from every machine.

A path inside the repository is written relative to it (`runs/study/seed0/SCNN/checkpoints/best.ckpt`), one
under the data folder as `DATA/<path below it>` (`DATA/davis-2016-half`, the placeholder the README and docs
use in commands), any other path as it was given. The data folder is `$SCNN_DATA`, else `../shared/data`
beside the repository, where the machines that ran the studies keep the data sets.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

DATA_ENV = "SCNN_DATA"
DATA_PREFIX = "DATA"
REPO = Path(__file__).resolve().parents[1]


def data_folder() -> Path:
    return Path(os.environ.get(DATA_ENV) or REPO.parent / "shared" / "data")


def record_path(path: str | Path) -> str:
    """`path` in record form: `DATA/...` under the data folder, relative to the repository inside it, else as
    given (a relative path is read from the working directory)."""
    absolute = Path(os.path.abspath(os.path.expanduser(path)))
    below = _below(absolute, data_folder())
    if below is not None:
        return (Path(DATA_PREFIX) / below).as_posix()
    below = _below(absolute, REPO)
    return below.as_posix() if below is not None else str(path)


def _below(path: Path, root: Path) -> Path | None:
    """`path` relative to `root`, compared as written and with links resolved (either may be a link)."""
    as_written = (path, Path(os.path.abspath(root)))
    resolved = (Path(os.path.realpath(path)), Path(os.path.realpath(root)))
    for inside, top in (as_written, resolved):
        if inside.is_relative_to(top):
            return inside.relative_to(top)
    return None


def record_word(word: str) -> str:
    """A command-line word or configuration value with the path it names in record form: the word itself
    (`/abs/runs/x`) or the value of a `key=value` word (`data.root.davis=/abs/davis`). Only words that read as
    paths (absolute, `~`, `./` or `../`) are touched: a bare name could be anything."""
    key, sep, value = word.partition("=")
    if sep and _reads_as_path(value):
        return f"{key}={record_path(value)}"
    return record_path(word) if _reads_as_path(word) else word


def _reads_as_path(text: str) -> bool:
    return text.startswith(("/", "~", "./", "../"))


def record_command(words: list[str]) -> str:
    """A command line, quoted for a shell, with every path in record form."""
    return shlex.join(record_word(word) for word in words)


def in_record_form(value):
    """A JSON or YAML record (dicts, lists, strings, numbers) with every path-like string in record form."""
    if isinstance(value, dict):
        return {key: in_record_form(item) for key, item in value.items()}
    if isinstance(value, list):
        return [in_record_form(item) for item in value]
    return record_word(value) if isinstance(value, str) else value
