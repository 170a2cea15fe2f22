"""Progress of the long steps (encoding a catalog, scoring pairs, fine-tuning): a line in the log every
``every_s`` seconds (``$SEESTOCKS_PROGRESS_SECONDS``, 30) with the count, the rate and the time left, so a
nightly's log (and Dagster's event log, which captures the ``seestocks_rank`` loggers) says how far it is;
a live bar as well on a terminal. Short calls finish before the first line and say nothing."""

from __future__ import annotations

import logging
import os
import sys
import time
from types import TracebackType

LOG_EVERY_S = float(os.environ.get("SEESTOCKS_PROGRESS_SECONDS", "30"))


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class Progress:
    """Counts ``total`` units of ``label``; ``update(n)`` after each batch. A context manager."""

    def __init__(
        self,
        label: str,
        total: int,
        unit: str = "rows",
        logger: logging.Logger | None = None,
        every_s: float | None = None,
    ) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.every_s = LOG_EVERY_S if every_s is None else every_s
        self.logger = logger or logging.getLogger("seestocks_rank.progress")
        self.done = 0
        self.logged_done = 0  # ``done`` at the last line logged
        self.start = self.last_log = time.perf_counter()
        self.bar = None
        if sys.stderr.isatty() and total > 0:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=label, unit=unit.rstrip("s") or "it", leave=False, mininterval=1.0)

    def line(self) -> str:
        """``label: done/total (pct), rate/s, left`` now."""
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        rate = self.done / elapsed
        text = f"{self.label}: {self.done:,}/{self.total:,} {self.unit} ({self.done / max(self.total, 1):.0%})"
        text += f", {rate:,.0f}/s"
        if 0 < self.done < self.total and rate > 0:
            text += f", {_duration((self.total - self.done) / rate)} left"
        return text + f", {_duration(elapsed)} elapsed"

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        now = time.perf_counter()
        if now - self.last_log >= self.every_s:
            self.last_log, self.logged_done = now, self.done
            self.logger.info(self.line())

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.last_log > self.start and self.logged_done != self.done:  # it logged along the way: say it is done
            self.logger.info(self.line())

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
