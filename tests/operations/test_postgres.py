"""The production instance profile on a real PostgreSQL server (started on loopback in a temporary folder):
the demo ranked for two pages through it, then its run history read back."""

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from assets.partitions import CATEGORY_PAGES
from tests.operations.support import PROJECT, free_port, new_dagster_home, pipeline_env, run_cli

PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throw-away PostgreSQL cluster on 127.0.0.1 (as the postgres user when the tests run as root)."""
    if not PG_BIN or not (PG_BIN[-1] / "initdb").exists():
        pytest.skip("PostgreSQL server binaries are not installed (.ci/run installs Debian's postgresql)")
    bin_dir, port = PG_BIN[-1], free_port()
    folder = Path(tempfile.mkdtemp(prefix="pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]

    def pg(*args: str) -> None:
        subprocess.run([*run_as, *args], check=True, capture_output=True)

    pg(str(bin_dir / "initdb"), "-D", str(folder / "data"), "-U", "dagster", "--auth=trust", "-E", "UTF8")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off"
    pg(str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-l", str(folder / "log"), "-w", "-o", options, "start")
    try:
        pg(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "dagster", "dagster")
        yield f"postgresql+psycopg2://dagster@127.0.0.1:{port}/dagster"
    finally:
        pg(str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-m", "fast", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def test_the_demo_runs_for_two_pages_through_postgresql(
    demo_root: Path, tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
):
    pages = demo_root / "demo" / "category_pages.csv"
    pages.write_text("category_id\n6016\n4283\n")  # Peppers, Tool Bags
    home = new_dagster_home(tmp_path / "home", PROJECT / "deploy" / "dagster.production.yaml")
    done = run_cli(pipeline_env(demo_root, home, SEESTOCKS_POSTGRES_URL=postgres_url), "run")
    assert done.returncode == 0, done.stderr[-3000:]

    monkeypatch.setenv("SEESTOCKS_POSTGRES_URL", postgres_url)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        [run] = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS and run.job_name == "nightly_rankings"
        assert instance.get_dynamic_partitions(CATEGORY_PAGES) == ["6016-peppers", "4283-tool-bags"]
        ranked = instance.get_materialized_partitions(dg.AssetKey("filtered_rankings"))
        assert ranked == {"6016-peppers", "4283-tool-bags"}
        publication = instance.get_latest_materialization_event(dg.AssetKey("analyst_database"))
        assert publication is not None and publication.run_id == run.run_id
