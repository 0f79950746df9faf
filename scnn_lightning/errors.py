"""The one exception type for bad input: it always names the file and what is wrong with it.

Every command line ends on bad input the same way, `report_failure`: one line on stderr naming the path,
exit status 2. The OS errors of a command's own files (a folder it may not write, a full disk) end so too,
and each command checks its output path with `writable_folder` / `writable_file` before doing any work.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

EXIT_BAD_INPUT = 2


class DataError(ValueError):
    """Raised for unusable input data; the message starts with the offending path."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # rebuilt from its two parts when it crosses a process boundary (predict's workers)
        return type(self), (self.path, self.problem)


def as_data_error(error: OSError) -> DataError | OSError:
    """An OS error as a DataError naming its path ("Permission denied" ...); one without a path as it is."""
    if error.filename is None:
        return error
    return DataError(error.filename, error.strerror or type(error).__name__)


def report_failure(error: DataError | OSError, prefix: str = "error") -> int:
    """Print the error's one-line message to stderr; returns the exit status of bad input."""
    if isinstance(error, OSError):
        error = as_data_error(error)
    print(f"{prefix}: {error}", file=sys.stderr)
    return EXIT_BAD_INPUT


def writable_folder(path: str | Path) -> Path:
    """`path` as an output folder, created if needed, once a file could be made in it; else a DataError."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DataError(path, "the output folder is an existing file")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):  # the only sure test: permissions, read-only mounts, quotas
            pass
    except OSError as exc:
        raise DataError(path, f"the output folder cannot be created or written ({exc.strerror or exc})") from exc
    return path


def writable_file(path: str | Path) -> Path:
    """`path` as an output file: not a folder, in a folder that can be written (created if needed)."""
    path = Path(path)
    if path.is_dir():
        raise DataError(path, "the output file is an existing folder")
    try:
        writable_folder(path.parent)
    except DataError as exc:
        raise DataError(path, f"the output file cannot be written: {exc}") from exc
    return path
