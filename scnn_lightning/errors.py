"""The one exception type for bad input: it always names the file and what is wrong with it."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Raised for unusable input data; the message starts with the offending path."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # rebuilt from its two parts when it crosses a process boundary (predict's workers)
        return type(self), (self.path, self.problem)
