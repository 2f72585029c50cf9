"""The two clocks of ``fastmlp bench``, shared by its own contenders and its peers' processes."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def timed(fn: Callable[[], object]) -> float:
    """Seconds of one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def per_call(fn: Callable[[], object], calls: int = 2000, seconds: float = 0.05) -> float:
    """Median over 5 runs of the mean seconds of a call of ``fn``.

    Each run makes ``calls`` calls, or fewer where those would take longer than
    about ``seconds``: 10 calls first, which also warm ``fn`` up, say how long
    one takes (a prediction through a 2048-wide network takes milliseconds).
    """
    start = time.perf_counter()
    for _ in range(10):
        fn()
    one = (time.perf_counter() - start) / 10
    calls = max(1, min(calls, int(seconds / max(one, 1e-9))))
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times)
