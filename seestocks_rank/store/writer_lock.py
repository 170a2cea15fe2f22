"""One writer per data root.

The process that runs a pipeline run holds an exclusive ``flock`` on ``<data root>/.writer.lock`` for the
run's whole duration; who holds it (run id, pid, host, since when, launched by whom) is written beside it
in ``.writer.json``. The kernel releases the lock when the process ends, SIGKILL included, so a killed run
never leaves the data root locked, and a second writer (a command-line run, a scheduled run, a backfill)
either waits or stops with a message naming the run that holds it. Within one process the lock is
re-entrant: a command-line run takes it before Dagster starts, and the run's resources take it again.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

LOCK_FILE = ".writer.lock"
HOLDER_FILE = ".writer.json"


@dataclass(frozen=True)
class Holder:
    """Who writes a data root."""

    run_id: str
    launched_by: str  # "cli" (seestocks-rank run), "daemon" (schedule, sensor, backfill, UI)
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)
    since: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def describe(self) -> str:
        return f"run {self.run_id} (launched by {self.launched_by}, pid {self.pid} on {self.host}, since {self.since})"


class WriterBusy(RuntimeError):
    """Another run writes the data root; the message names it."""

    @classmethod
    def held_by(cls, root: Path, holder: Holder | None) -> WriterBusy:
        who = holder.describe() if holder else "another process"
        return cls(f"the data root {root} is being written by {who}; wait for it to finish")


class DataRootLock:
    """The writer lock of one data root (see the module docstring)."""

    _held: ClassVar[dict[Path, tuple[int, int]]] = {}  # lock path -> (fd, depth), in this process
    _guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.path = self.root / LOCK_FILE

    def holder(self) -> Holder | None:
        """The last recorded holder (meaningful while the lock is held)."""
        try:
            return Holder(**json.loads((self.root / HOLDER_FILE).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def held_here(self) -> bool:
        with self._guard:
            return self.path in self._held

    def acquire(
        self, holder: Holder, *, wait_s: float = 0.0, poll_s: float = 2.0, on_wait: Callable[[str], None] | None = None
    ) -> None:
        """Take the lock for ``holder``, waiting up to ``wait_s`` seconds (``on_wait`` hears who holds it,
        once a minute); raises :class:`WriterBusy` when it stays taken."""
        with self._guard:
            if self.path in self._held:
                fd, depth = self._held[self.path]
                self._held[self.path] = (fd, depth + 1)
                return
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline, said = time.monotonic() + wait_s, 0.0
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                now = time.monotonic()
                if now >= deadline:
                    os.close(fd)
                    raise WriterBusy.held_by(self.root, self.holder()) from None
                if on_wait is not None and now - said >= 60:
                    on_wait(
                        str(WriterBusy.held_by(self.root, self.holder())) + f"; waiting up to {deadline - now:.0f} s"
                    )
                    said = now
                time.sleep(min(poll_s, max(deadline - now, 0.0)))
        tmp = self.root / f".{HOLDER_FILE}.{os.getpid()}"
        tmp.write_text(json.dumps(asdict(holder)))
        os.replace(tmp, self.root / HOLDER_FILE)
        with self._guard:
            self._held[self.path] = (fd, 1)

    def release(self) -> None:
        with self._guard:
            if self.path not in self._held:
                return
            fd, depth = self._held[self.path]
            if depth > 1:
                self._held[self.path] = (fd, depth - 1)
                return
            del self._held[self.path]
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    @contextmanager
    def held(self, holder: Holder, **options: object) -> Iterator[None]:
        self.acquire(holder, **options)  # type: ignore[arg-type]
        try:
            yield
        finally:
            self.release()
