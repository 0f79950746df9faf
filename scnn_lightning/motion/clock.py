"""Seconds per named step of one computation, for profiles (benchmarks.prior_profile, predict's timings)."""

from __future__ import annotations

import time


class StepClock:
    """`lap(name)` adds the time since the previous lap (or since creation) to `seconds[name]`."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._last
        self._last = now


class _NoClock(StepClock):
    """The default of code that can be profiled: laps cost nothing and are not kept."""

    def lap(self, name: str) -> None:
        pass


NO_CLOCK = _NoClock()
