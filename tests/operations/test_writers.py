"""One writer at a time, with real processes: a second ``seestocks-rank run`` is refused naming the run that
writes, and a run launched while another process writes waits for it, then fails naming it."""

import json
import subprocess
from pathlib import Path

import dagster as dg

from assets.automation import error_chain
from assets.inputs import taxonomy
from resources import DataRootResource, InputsResource, ParquetIOManager
from seestocks_rank.store.writer_lock import HOLDER_FILE
from tests.operations.support import BIN, PROJECT, new_dagster_home, pipeline_env, run_cli, wait_for


def _holder(root: Path) -> dict | None:
    try:
        return json.loads((root / HOLDER_FILE).read_text())
    except (OSError, ValueError):
        return None


def test_a_second_command_line_run_is_refused_naming_the_first(demo_root: Path):
    env = pipeline_env(demo_root, new_dagster_home(demo_root / "dagster_home"))
    first = subprocess.Popen([str(BIN / "seestocks-rank"), "run"], env=env, cwd=PROJECT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        holder = wait_for(lambda: _holder(demo_root), 120, "the first run to take the data root", poll=0.1)
        second = run_cli(env, "run")
        assert second.returncode == 3
        assert f"being written by run {holder['run_id']} (launched by cli, pid {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr and len(second.stderr.strip().splitlines()) == 1
    finally:
        assert first.wait(600) == 0, first.stderr.read()[-2000:]


HOLD = """
import sys, time
from seestocks_rank.store.writer_lock import DataRootLock, Holder
DataRootLock(sys.argv[1]).acquire(Holder(run_id="nightly-in-another-process", launched_by="daemon"))
print("held", flush=True)
time.sleep(600)
"""


def test_a_run_waits_for_the_writer_then_fails_naming_it(tmp_path: Path):
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "taxonomy.txt").write_text("1 - Hardware\n2 - Hardware > Tools\n")
    other = subprocess.Popen([str(BIN / "python"), "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "held"
        root = DataRootResource(path=str(tmp_path), lock_wait_minutes=0.02)  # waits 1.2 s
        resources = {"inputs": InputsResource(data_root=root), "io_manager": ParquetIOManager(data_root=root)}
        with dg.instance_for_test() as instance:
            result = dg.materialize([taxonomy], resources=resources, instance=instance, raise_on_error=False)
        assert not result.success
        errors = [getattr(e.event_specific_data, "error", None) for e in result.all_events]
        causes = " ".join(c.message for error in errors for c in error_chain(error))
        assert "being written by run nightly-in-another-process (launched by daemon" in causes
        assert not (tmp_path / "tables").exists()  # it wrote nothing
    finally:
        other.kill()
        other.wait()
