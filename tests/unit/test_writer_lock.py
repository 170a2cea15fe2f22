"""The data root's writer lock, with real processes: a second writer is refused naming the first, and a
SIGKILLed holder leaves the lock free."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seestocks_rank.store.writer_lock import HOLDER_FILE, DataRootLock, Holder, WriterBusy

HOLD = """
import sys, time
from seestocks_rank.store.writer_lock import DataRootLock, Holder
DataRootLock(sys.argv[1]).acquire(Holder(run_id="run-in-child", launched_by="cli"))
print("held", flush=True)
time.sleep(600)
"""


def _holding_child(root: Path) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(root)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    return child


def test_a_second_writer_is_refused_naming_the_holder_and_a_killed_holder_frees_the_lock(tmp_path: Path):
    child = _holding_child(tmp_path)
    try:
        lock = DataRootLock(tmp_path)
        with pytest.raises(WriterBusy, match=r"run run-in-child \(launched by cli, pid \d+"):
            lock.acquire(Holder(run_id="second", launched_by="cli"))
        started = time.monotonic()
        with pytest.raises(WriterBusy):
            lock.acquire(Holder(run_id="second", launched_by="daemon"), wait_s=1.5, poll_s=0.2)
        assert time.monotonic() - started >= 1.4  # it waited before giving up
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    with lock.held(Holder(run_id="after-the-kill", launched_by="cli")):
        assert lock.holder().run_id == "after-the-kill"
    assert (tmp_path / HOLDER_FILE).exists()


def test_the_lock_is_reentrant_within_a_process(tmp_path: Path):
    lock, again = DataRootLock(tmp_path), DataRootLock(tmp_path)
    lock.acquire(Holder(run_id="r", launched_by="cli"))
    again.acquire(Holder(run_id="r", launched_by="daemon"))  # the run's resources, inside the same process
    again.release()
    assert lock.held_here()
    lock.release()
    assert not lock.held_here()
