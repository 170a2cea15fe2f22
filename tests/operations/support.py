"""Real processes for the operations tests: ``dagster dev`` (webserver and daemon) driven over GraphQL as the
UI drives it, ``seestocks-rank`` subprocesses, and an analyst reading the DuckDB file read-only meanwhile."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PAGE_TABLES = ("candidate_sets", "cross_encoder_features", "fused_scores", "filtered_rankings")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pipeline_env(data_root: Path, dagster_home: Path, **extra: str) -> dict[str, str]:
    """The environment of a fast pipeline on ``data_root``: the hashing text model (no transformer) and no
    cross-encoder training, so a run takes seconds."""
    return {
        **os.environ,
        "SEESTOCKS_DATA_DIR": str(data_root),
        "DAGSTER_HOME": str(dagster_home),
        "SEESTOCKS_TEXT_MODEL": "hashing",
        "SEESTOCKS_SETTINGS": json.dumps({"cross_encoder_minutes": 0}),
        "HF_HUB_OFFLINE": "1",
        **extra,
    }


def new_dagster_home(path: Path, yaml: Path = PROJECT / "dagster.yaml") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(yaml, path / "dagster.yaml")
    return path


def run_cli(env: dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "seestocks-rank"), *args], env=env, cwd=PROJECT, capture_output=True, text=True, timeout=timeout
    )


class DagsterDev:
    """``dagster dev`` (webserver + daemon) on loopback in its own session, stopped on exit."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/graphql"
        self.log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(self.port)],
            env=env,
            cwd=PROJECT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # dagster dev ignores SIGINT otherwise
        )

    def __enter__(self) -> DagsterDev:
        self.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()

    def gql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                out = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"GraphQL {exc.code}: {exc.read().decode()[:2000]}") from exc
        if out.get("errors"):
            raise RuntimeError(out["errors"])
        return out["data"]

    def wait_ready(self, timeout: float = 240) -> None:
        """The webserver answers and the code location is loaded."""
        deadline = time.monotonic() + timeout
        query = (
            "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus "
            "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
        )
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dagster dev exited with {self.proc.returncode}")
            try:
                entries = self.gql(query)["workspaceOrError"]["locationEntries"]
                if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                    errors = [e for e in entries if e["locationOrLoadError"]["__typename"] == "PythonError"]
                    if errors:
                        raise RuntimeError(errors)
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError, RuntimeError) as exc:
                if isinstance(exc, RuntimeError) and "PythonError" in str(exc):
                    raise
            time.sleep(1)
        raise TimeoutError("dagster dev did not come up")

    def runs(self) -> list[dict]:
        data = self.gql(
            "{ runsOrError(limit: 100) { ... on Runs { results { runId jobName status "
            "tags { key value } startTime endTime } } } }"
        )
        return [{**r, "tags": {t["key"]: t["value"] for t in r["tags"]}} for r in data["runsOrError"]["results"]]

    def launch_backfill(self, assets: list[str], partitions: list[str]) -> str:
        """What the UI's *Materialize → partitions* dialog sends for selected pages."""
        params = {"assetSelection": [{"path": [a]} for a in assets], "partitionNames": partitions}
        out = self.gql(
            "mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) { __typename "
            "... on LaunchBackfillSuccess { backfillId } ... on PythonError { message stack } } }",
            {"p": params},
        )["launchPartitionBackfill"]
        if out["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(out)
        return out["backfillId"]

    def backfill_status(self, backfill_id: str) -> str:
        out = self.gql(
            "query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } } }",
            {"id": backfill_id},
        )
        return out["partitionBackfillOrError"]["status"]

    def launch_job(self, job: str, tags: dict[str, str]) -> str:
        """A run of ``job``, as the schedule (or the UI's launchpad) launches it."""
        params = {
            "selector": {
                "repositoryLocationName": "seestocks_rank",
                "repositoryName": "__repository__",
                "jobName": job,
            },
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
        }
        out = self.gql(
            "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename "
            "... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }",
            {"p": params},
        )["launchRun"]
        if out["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(out)
        return out["run"]["runId"]


def wait_for(condition: Callable[[], object], timeout: float, what: str, poll: float = 2.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"timed out waiting for {what}")


def snapshot_problems(db: Path) -> list[str]:
    """What is inconsistent in the analysts' file, read as an analyst reads it (read-only): every published
    page has rows in ``rankings`` and in every page table, and ``rankings`` is exactly the shown rows."""
    with duckdb.connect(str(db), read_only=True) as con:
        pages = {r[0] for r in con.execute("SELECT category_id FROM category_pages").fetchall()}
        problems = []
        for table in ("rankings", *PAGE_TABLES):
            seen = {r[0] for r in con.execute(f"SELECT DISTINCT category_id FROM {table}").fetchall()}
            if seen != pages:
                problems.append(f"{table}: pages {sorted(seen ^ pages)[:5]} differ from category_pages")
        mismatch = con.execute(
            "SELECT count(*) FROM (SELECT category_id, offer_id, rank FROM rankings "
            "EXCEPT SELECT category_id, offer_id, rank FROM filtered_rankings WHERE status = 'shown')"
        ).fetchone()[0]
        shown = con.execute("SELECT count(*) FROM filtered_rankings WHERE status = 'shown'").fetchone()[0]
        ranked = con.execute("SELECT count(*) FROM rankings").fetchone()[0]
        if mismatch or shown != ranked:
            problems.append(f"rankings ({ranked} rows) differ from the shown rows of filtered_rankings ({shown})")
        return problems


class Analyst(threading.Thread):
    """Reads the DuckDB file read-only in a loop and records every inconsistency it sees."""

    def __init__(self, db: Path) -> None:
        super().__init__(daemon=True)
        self.db, self.reads, self.problems = db, 0, []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            if self.db.exists():
                try:
                    self.problems += snapshot_problems(self.db)
                    self.reads += 1
                except duckdb.Error as exc:
                    self.problems.append(f"read failed: {exc}")
            time.sleep(0.2)

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(30)

    @contextmanager
    def stopped_at_exit(self) -> Iterator[None]:
        try:
            yield
        finally:
            self.stop()
