"""Dagster's SQLite event log, made cheap per partition (configured in ``dagster.yaml``).

A nightly run over 1,347 category pages writes ~10,800 events: one "planned" and one materialization event
per page and per partitioned asset. The stock ``SqliteEventLogStorage`` opens a new SQLAlchemy engine per
event (``NullPool``: a fresh connection, statements recompiled, the WAL checkpointed and fsynced when the
last connection closes) and has no batch write, so each event costs ~9-10 ms of CPU on this machine: ~55 s
per nightly run, 45% of it. This subclass keeps one pooled engine per shard, runs SQLite in WAL with
``synchronous=NORMAL`` (no fsync per commit; a crash may lose the last transactions but never corrupts the
file), caches the schema probes, and writes Dagster's event batches (``DAGSTER_EVENT_BATCH_SIZE``, which it
turns on) in one transaction per shard. Same files, same rows: ``tests/dagster/test_event_log_storage.py``
checks that what the UI reads is identical to the stock storage.

It extends private Dagster classes, so it refuses to load under a Dagster release it was not written for
(:data:`WRITTEN_FOR`), naming the ``dagster.yaml`` block to remove to fall back to the stock storage; the
project's ``dagster`` pin follows from this guard. For several machines use PostgreSQL instead
(``docs/operations.md``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import dagster as dg

WRITTEN_FOR = "1.13."  # the Dagster minor release whose internals this module extends


def check_dagster_version(version: str = dg.__version__) -> None:
    """Raise, naming the ``dagster.yaml`` block to remove, unless ``version`` is one this module was
    written for."""
    if not version.startswith(WRITTEN_FOR):
        raise ImportError(
            f"resources/event_log.py extends Dagster {WRITTEN_FOR}x internals and this is Dagster {version}: "
            "remove the `event_log_storage:` block (module: resources.event_log) from $DAGSTER_HOME/dagster.yaml "
            "to use Dagster's stock SQLite event log, or install the Dagster release in pyproject.toml"
        )


check_dagster_version()

from dagster._core.events import ASSET_EVENTS  # noqa: E402 - only once the release is known to fit
from dagster._core.events.log import EventLogEntry  # noqa: E402
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable  # noqa: E402
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (  # noqa: E402
    SqliteEventLogStorage,
    SqliteEventLogStorageWatchdog,
)
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS  # noqa: E402
from sqlalchemy import create_engine, event  # noqa: E402
from sqlalchemy.engine import Connection, Engine  # noqa: E402
from sqlalchemy.pool import QueuePool  # noqa: E402
from watchdog.events import FileSystemEvent  # noqa: E402
from watchdog.observers import Observer  # noqa: E402

# Dagster buffers the events of a step output (e.g. one materialization per page) up to this many and
# hands them to ``store_event_batch``; 0 (Dagster's default) writes them one by one.
EVENT_BATCH_SIZE = "10000"
SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")
MAX_CACHED_RUN_SHARDS = 16


def default_event_log_dir() -> str:
    """Where the stock SQLite storage keeps its event log: ``$DAGSTER_HOME/history/runs``. Without
    ``DAGSTER_HOME`` Dagster's CLI runs on a throw-away instance (e.g. ``dagster definitions validate``),
    and the event log goes to a temporary folder as well."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        return tempfile.mkdtemp(prefix="dagster-event-log-")
    return os.path.join(home, "history", "runs")


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` with one pooled engine per shard and batched event writes."""

    def __init__(self, base_dir: str, synchronous: str = "NORMAL", inst_data: Any = None) -> None:
        if synchronous.upper() not in SYNCHRONOUS_LEVELS:
            raise dg.DagsterInvalidConfigError(
                f"synchronous must be one of {SYNCHRONOUS_LEVELS}, got {synchronous!r}", [], None
            )
        self._synchronous = synchronous.upper()
        self._engines: dict[str, Engine] = {}
        self._table_exists: dict[str, bool] = {}
        self._asset_key_columns: dict[str, bool] = {}
        os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {
            "base_dir": dg.Field(dg.StringSource, is_required=False),
            "synchronous": dg.Field(dg.StringSource, is_required=False, default_value="NORMAL"),
        }

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Mapping[str, Any]) -> PooledSqliteEventLogStorage:
        return cls(
            base_dir=config_value.get("base_dir") or default_event_log_dir(),
            synchronous=config_value.get("synchronous", "NORMAL"),
            inst_data=inst_data,
        )

    def _engine(self, shard: str) -> Engine:
        engine = self._engines.get(shard)
        if engine is not None:
            return engine
        engine = create_engine(
            self.conn_string_for_shard(shard),
            poolclass=QueuePool,
            pool_size=1,
            max_overflow=2,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        )
        level = self._synchronous

        @event.listens_for(engine, "connect")
        def _set_synchronous(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute(f"PRAGMA synchronous={level}")

        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        if len(self._engines) >= MAX_CACHED_RUN_SHARDS:  # runs come and go; the index shard stays
            oldest = next(name for name in self._engines if name != "index")
            self._engines.pop(oldest).dispose()
        self._engines[shard] = engine
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock, self._engine(shard).connect() as conn, conn.begin():
            yield conn

    def has_table(self, table_name: str) -> bool:
        if not self._table_exists.get(table_name):  # a missing table may be migrated in later
            self._table_exists[table_name] = super().has_table(table_name)
        return self._table_exists[table_name]

    def _has_asset_key_col_on_connection(self, conn: Connection, column_name: str) -> bool:
        if column_name not in self._asset_key_columns:
            self._asset_key_columns[column_name] = super()._has_asset_key_col_on_connection(conn, column_name)
        return self._asset_key_columns[column_name]

    def watch(self, run_id: str, cursor: str | None, callback: Any) -> None:
        """The UI's live run log: also wake up on writes to the shard's WAL, which an open pooled
        connection does not checkpoint into the ``.db`` file the stock watcher waits for."""
        if not self._obs:
            self._obs = Observer()
            self._obs.start()
        watcher = _WalAwareWatchdog(self, run_id, callback, cursor)
        self._watchers[run_id][callback] = (watcher, self._obs.schedule(watcher, self._base_dir, recursive=True))

    def _dispose_engines(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()

    def delete_events(self, run_id: str) -> None:
        super().delete_events(run_id)
        engine = self._engines.pop(run_id, None)
        if engine is not None:
            engine.dispose()

    def wipe(self) -> None:
        self._dispose_engines()
        super().wipe()

    def dispose(self) -> None:
        self._dispose_engines()
        super().dispose()

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """One transaction per shard for a batch of one run's asset events (other batches: one by one).

        Does what ``store_event`` does for each event: the row in the run shard, its mirror, tags and
        ``asset_keys`` entry in the index shard. ``asset_keys`` keeps only the latest event of each kind per
        asset, so only the last event of each (asset, event type) in the batch updates it.
        """
        run_ids = {entry.run_id for entry in events}
        if len(run_ids) != 1 or not all(
            entry.is_dagster_event and entry.dagster_event_type in ASSET_EVENTS and entry.dagster_event.asset_key
            for entry in events
        ):
            for entry in events:
                self.store_event(entry)
            return
        rows = [self._event_to_row(entry) for entry in events]
        with self.run_connection(run_ids.pop()) as conn:
            conn.execute(SqlEventLogStorageTable.insert(), rows)
        with self.index_transaction() as conn:
            insert = SqlEventLogStorageTable.insert()
            ids = [conn.execute(insert.values(**row)).inserted_primary_key[0] for row in rows]
            self._store_asset_event_tags(conn, events, ids)
            kinds = [(entry.dagster_event.asset_key, entry.dagster_event_type) for entry in events]
            last_of_kind = {kind: i for i, kind in enumerate(kinds)}
            for i in sorted(last_of_kind.values()):
                self._store_asset_event(conn, events[i], ids[i])


class _WalAwareWatchdog(SqliteEventLogStorageWatchdog):
    def __init__(self, storage: SqliteEventLogStorage, run_id: str, callback: Any, cursor: str | None) -> None:
        super().__init__(storage, run_id, callback, cursor)
        self._patterns = [self._log_path, f"{self._log_path}-wal"]

    def on_modified(self, event: FileSystemEvent) -> None:
        self._process_log()
