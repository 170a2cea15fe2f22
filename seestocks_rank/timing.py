"""Wall-clock timings of pipeline steps, collected into a dict (reported as asset metadata and by benchmarks)."""

import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def timed(timings: dict[str, float], key: str) -> Iterator[None]:
    """Add the seconds the block took to ``timings[key]`` (accumulates over repeated blocks)."""
    start = time.perf_counter()
    yield
    timings[key] = round(timings.get(key, 0.0) + time.perf_counter() - start, 4)
