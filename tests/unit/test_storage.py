"""Tests for seestocks_rank.storage: atomic Parquet writes, partitioned tables and DuckDB publication."""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb
import polars as pl
import pytest

from seestocks_rank.store.publication import publish_duckdb
from seestocks_rank.store.tables import TableStore, write_parquet_atomic


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix in {".tmp", ".building"})


def test_write_parquet_atomic_round_trip(tmp_path: Path) -> None:
    df = pl.DataFrame({"a": [1, 2, 3], "b": ["x", None, "z"]})
    path = write_parquet_atomic(df, tmp_path / "nested" / "t.parquet")
    assert path == tmp_path / "nested" / "t.parquet"
    assert pl.read_parquet(path).equals(df)
    assert _leftovers(path.parent) == []


def test_write_parquet_atomic_failure_keeps_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "t.parquet"
    old = pl.DataFrame({"a": [1, 2]})
    write_parquet_atomic(old, path)
    before = path.read_bytes()

    def broken_write(self, file, *args, **kwargs):  # noqa: ANN001, ANN202
        Path(file).write_bytes(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", broken_write)
    with pytest.raises(OSError, match="disk full"):
        write_parquet_atomic(pl.DataFrame({"a": [9, 9, 9]}), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert pl.read_parquet(path).equals(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]


def test_write_parquet_atomic_interrupt_leaves_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(self, file, *args, **kwargs):  # noqa: ANN001, ANN202
        Path(file).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(pl.DataFrame, "write_parquet", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_parquet_atomic(pl.DataFrame({"a": [1]}), tmp_path / "new.parquet")
    assert list(tmp_path.iterdir()) == []


def test_table_store_write_read(tmp_path: Path) -> None:
    store = TableStore(tmp_path)
    df = pl.DataFrame({"k": [1, 2]})
    assert store.read_if_exists("t") is None
    with pytest.raises(FileNotFoundError, match="'t' has not been materialized"):
        store.read("t")
    assert store.write("t", df) == tmp_path / "t.parquet"
    assert store.read("t").equals(df)
    assert store.read_if_exists("t").equals(df)


@pytest.mark.parametrize("name", ["../escape", "a/b", "", "x y"])
def test_table_store_rejects_unsafe_names(tmp_path: Path, name: str) -> None:
    store = TableStore(tmp_path)
    with pytest.raises(ValueError, match="unsafe table or partition name"):
        store.table_path(name)
    with pytest.raises(ValueError, match="unsafe table or partition name"):
        store.write_partitions("ok", pl.DataFrame({"category_id": [name]}), [name])


def _candidates() -> pl.DataFrame:
    return pl.DataFrame({"category_id": [3, 1, 3, 3, 1], "offer_id": ["a", "b", "c", "d", "e"], "s": [0.1] * 5})


def test_write_partitions_one_batch_file_and_an_index_including_empty(tmp_path: Path) -> None:
    store = TableStore(tmp_path)
    counts = store.write_partitions("cands", _candidates(), ["1", "3", "7"])
    assert counts == {"1": 2, "3": 3, "7": 0}
    folder = tmp_path / "cands"
    assert len(store.partition_files("cands")) == 1  # one file for the whole run, not one per page
    index = store.partition_index("cands")
    assert index.get_column("partition").to_list() == ["1", "3", "7"]
    assert index.get_column("rows").to_list() == [2, 3, 0]
    three = store.read_partitions("cands", ["3"])
    assert sorted(three.get_column("offer_id").to_list()) == ["a", "c", "d"]
    assert three.columns == ["category_id", "offer_id", "s"]
    empty = store.read_partitions("cands", ["7"])
    assert empty.height == 0 and empty.schema == _candidates().schema  # the empty page keeps the schema
    assert (folder / "_partitions.parquet").exists()


def test_rewriting_a_page_repoints_it_and_old_batches_are_collected(tmp_path: Path) -> None:
    store = TableStore(tmp_path)
    store.write_partitions("cands", _candidates(), ["1", "3"])
    first = store.partition_files("cands")
    for i in range(2):  # two single-page backfills of page 1
        store.write_partitions("cands", pl.DataFrame({"category_id": [1], "offer_id": [f"z{i}"], "s": [0.5]}), ["1"])
    files = store.partition_files("cands")
    assert first[0] in files and len(files) == 2  # page 3 still lives in the first batch
    on_disk = sorted(p.name for p in (tmp_path / "cands").glob("batch-*.parquet"))
    assert len(on_disk) == 3  # the current batches plus the one the previous index still names
    assert store.read_partitions("cands", ["1"]).get_column("offer_id").to_list() == ["z1"]


def test_write_partitions_accepts_int_partition_keys(tmp_path: Path) -> None:
    counts = TableStore(tmp_path).write_partitions("cands", _candidates(), [1, 3])
    assert counts == {"1": 2, "3": 3}


def test_write_partitions_rejects_rows_of_unrequested_partitions(tmp_path: Path) -> None:
    store = TableStore(tmp_path)
    with pytest.raises(ValueError, match=r"cands: rows for partitions \['3'\] not being materialized"):
        store.write_partitions("cands", _candidates(), ["1"])
    assert not (tmp_path / "cands").exists()  # nothing was written


def test_write_partitions_replaces_only_requested(tmp_path: Path) -> None:
    store = TableStore(tmp_path)
    store.write_partitions("cands", _candidates(), ["1", "3"])
    store.write_partitions("cands", pl.DataFrame({"category_id": [1], "offer_id": ["z"], "s": [0.5]}), ["1"])
    out = store.read_partitions("cands", ["1", "3"])
    assert sorted(out.get_column("offer_id").to_list()) == ["a", "c", "d", "z"]


def test_read_partitions_concatenates(tmp_path: Path) -> None:
    store = TableStore(tmp_path)
    store.write_partitions("cands", _candidates(), ["1", "3", "7"])
    some = store.read_partitions("cands", ["3", "7"])
    assert sorted(some.get_column("offer_id").to_list()) == ["a", "c", "d"]
    everything = store.read_partitions("cands")
    assert everything.height == 5
    assert sorted(everything.get_column("offer_id").to_list()) == ["a", "b", "c", "d", "e"]


def test_read_partitions_names_missing(tmp_path: Path) -> None:
    store = TableStore(tmp_path)
    store.write_partitions("cands", _candidates(), ["1", "3"])
    with pytest.raises(FileNotFoundError, match=r"'cands' has no materialized partition\(s\) \['8', '9'\]"):
        store.read_partitions("cands", ["1", "8", "9"])
    many = [str(i) for i in range(100, 112)]
    with pytest.raises(FileNotFoundError, match=r"\(\+2 more\)"):
        store.read_partitions("cands", many)
    with pytest.raises(FileNotFoundError, match="has no materialized partitions"):
        store.read_partitions("never")


def _query(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_publish_duckdb_creates_tables_and_views(tmp_path: Path) -> None:
    db = tmp_path / "out" / "analytics.duckdb"
    counts = publish_duckdb(
        db,
        {"rankings": pl.DataFrame({"page": [1, 1, 2], "offer": ["a", "b", "c"]}), "pages": pl.DataFrame({"page": [1]})},
        {"page_sizes": "SELECT page, count(*) AS n FROM rankings GROUP BY page"},
    )
    assert counts == {"rankings": 3, "pages": 1}
    assert _query(db, "SELECT * FROM page_sizes ORDER BY page") == [(1, 2), (2, 1)]
    assert _query(db, "SELECT offer FROM rankings ORDER BY offer") == [("a",), ("b",), ("c",)]
    kinds = _query(db, "SELECT table_name, table_type FROM information_schema.tables ORDER BY table_name")
    assert kinds == [("page_sizes", "VIEW"), ("pages", "BASE TABLE"), ("rankings", "BASE TABLE")]
    assert not (db.parent / ".analytics.duckdb.building").exists()


def test_publish_duckdb_replaces_while_old_reader_keeps_old_data(tmp_path: Path) -> None:
    db = tmp_path / "analytics.duckdb"
    publish_duckdb(db, {"t": pl.DataFrame({"v": [1]})})
    reader = duckdb.connect(str(db), read_only=True)
    try:
        assert reader.execute("SELECT v FROM t").fetchall() == [(1,)]
        publish_duckdb(db, {"t": pl.DataFrame({"v": [2, 3]}), "extra": pl.DataFrame({"w": [0]})})
        # The open connection still sees the file it opened, unbroken.
        assert reader.execute("SELECT v FROM t").fetchall() == [(1,)]
    finally:
        reader.close()
    assert _query(db, "SELECT v FROM t ORDER BY v") == [(2,), (3,)]
    assert _query(db, "SELECT count(*) FROM extra") == [(1,)]


def test_publish_duckdb_failure_leaves_previous_file(tmp_path: Path) -> None:
    db = tmp_path / "analytics.duckdb"
    publish_duckdb(db, {"t": pl.DataFrame({"v": [1, 2]})}, {"doubled": "SELECT v * 2 AS v2 FROM t"})
    before = db.read_bytes()
    with pytest.raises(duckdb.Error):
        publish_duckdb(db, {"t": pl.DataFrame({"v": [7]})}, {"broken": "SELEC nonsense FROM nowhere"})
    assert db.read_bytes() == before
    assert _query(db, "SELECT v FROM t ORDER BY v") == [(1,), (2,)]
    assert _query(db, "SELECT v2 FROM doubled ORDER BY v2") == [(2,), (4,)]
    # No half-built database (or its WAL) is left beside the live one.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["analytics.duckdb", "analytics.lock"]


def test_publish_duckdb_unsafe_table_name_fails_cleanly(tmp_path: Path) -> None:
    db = tmp_path / "analytics.duckdb"
    with pytest.raises(ValueError, match="unsafe table or partition name"):
        publish_duckdb(db, {'x"; DROP TABLE y; --': pl.DataFrame({"v": [1]})})
    assert not db.exists()


def test_concurrent_publications_both_succeed(tmp_path: Path) -> None:
    db = tmp_path / "analytics.duckdb"
    results: dict[int, dict[str, int]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def publish(i: int) -> None:
        try:
            start.wait()
            frame = pl.DataFrame({"writer": [i] * 2000, "n": list(range(2000))})
            results[i] = publish_duckdb(db, {"t": frame}, {"summary": "SELECT writer, count(*) AS n FROM t GROUP BY 1"})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(i,)) for i in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert results == {1: {"t": 2000}, 2: {"t": 2000}}
    # The file holds one complete publication, not a mix.
    summary = _query(db, "SELECT writer, n FROM summary")
    assert summary in ([(1, 2000)], [(2, 2000)])
    assert not (tmp_path / ".analytics.duckdb.building").exists()
