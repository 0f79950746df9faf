"""inference/workers.FramePool: the same results inline and in worker processes, errors handed back, clean exits."""

from __future__ import annotations

import multiprocessing

import pytest

from scnn_lightning.errors import DataError
from scnn_lightning.inference.workers import FramePool, default_workers


def scaled(state: int, value: int) -> int:
    if value < 0:
        raise DataError(f"frame{value}.png", "cannot be read")
    return state * value


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_results_come_back_in_order_whatever_the_number_of_workers(workers):
    with FramePool(scaled, 3, workers) as pool:
        assert [f.result() for f in [pool.submit(v) for v in range(6)]] == [0, 3, 6, 9, 12, 15]
    assert multiprocessing.active_children() == []


def test_an_error_in_a_worker_reaches_the_caller_with_its_file_and_the_workers_exit():
    with FramePool(scaled, 3, 2) as pool:
        futures = [pool.submit(v) for v in (1, -4, 2)]
        assert futures[0].result() == 3
        with pytest.raises(DataError, match="frame-4.png: cannot be read") as raised:
            futures[1].result()
        assert raised.value.path.name == "frame-4.png"
    assert multiprocessing.active_children() == []


def test_inline_errors_raise_at_submit_and_bad_counts_are_refused():
    pool = FramePool(scaled, 3, 0)
    with pytest.raises(DataError):
        pool.submit(-1)
    pool.close()
    with pytest.raises(ValueError, match="workers must be >= 0"):
        FramePool(scaled, 3, -1)
    assert 0 <= default_workers() <= 8
