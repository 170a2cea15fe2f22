"""A nightly killed at any moment loses nothing: ``seestocks-rank run`` subprocesses are SIGKILLed at every
write of a run (the failpoints: the embedding write, each per-page table, the publication, ...) and at random
moments; after each kill the analysts' file is the last good one, whole, and the next run completes with
rankings byte-identical to an uninterrupted run's."""

import hashlib
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import polars as pl

from tests.operations.support import BIN, PROJECT, new_dagster_home, pipeline_env, run_cli, snapshot_problems

FAILPOINTS = (
    "table.written:catalog",
    "embeddings.chunk_written",
    "table.written:manifest",
    "table.written:taxonomy_centroids",
    "partitions.written:candidate_sets",
    "partitions.written:cross_encoder_features",
    "table.written:fusion_model",
    "partitions.written:fused_scores",
    "table.written:_partitions",
    "partitions.written:filtered_rankings",
    "publication.built",
)
# differ from run to run by design: the run, when a model was trained, where its file lives (another data root)
MODEL_REGISTRIES = ("fusion_model", "offer_matcher_model")
VOLATILE = {"run_id"} | {f"{model}.{c}" for model in MODEL_REGISTRIES for c in ("trained_at", "path")}
# carried from publication to publication, or compared with the previous one: checked by _published_runs
HISTORY = {"runs", "ranking_history", "page_health", "rank_churn"}


def fingerprint(db: Path) -> str:
    """sha256 of every analyst table's sorted rows (what an analyst can read)."""
    digest = hashlib.sha256()
    with duckdb.connect(str(db), read_only=True) as con:
        names = sorted(r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall())
        for name in (n for n in names if n not in HISTORY):
            described = [r[0] for r in con.execute(f'DESCRIBE "{name}"').fetchall()]
            columns = [c for c in described if c not in VOLATILE and f"{name}.{c}" not in VOLATILE]
            rows = con.execute(f'SELECT {", ".join(columns)} FROM "{name}" ORDER BY ALL').fetchall()
            digest.update(f"{name}:{columns}:{rows}".encode())
    return digest.hexdigest()


def _published_runs(db: Path) -> list[str]:
    """The runs in the file's history, oldest first; the latest one's snapshot must be what rankings shows."""
    with duckdb.connect(str(db), read_only=True) as con:
        runs = [r for (r,) in con.execute("SELECT run_id FROM runs ORDER BY published_at").fetchall()]
        snapshot = con.execute("SELECT count(*) FROM ranking_history WHERE run_id = ?", [runs[-1]]).fetchall()
        assert snapshot[0][0] == con.execute("SELECT count(*) FROM rankings").fetchall()[0][0]
    return runs


def _next_night(catalog: Path) -> None:
    """The next night's feed: some offers retitled and repriced, a few gone."""
    df = pl.read_csv(catalog, infer_schema=False)
    rng = random.Random(5)
    changed = set(rng.sample(range(df.height), df.height // 20))
    gone = set(rng.sample(range(df.height), df.height // 100))
    df = df.with_row_index("_r").filter(~pl.col("_r").is_in(list(gone)))
    df = df.with_columns(
        pl.when(pl.col("_r").is_in(list(changed)))
        .then(pl.col("title") + " Pack")
        .otherwise(pl.col("title"))
        .alias("title")
    ).drop("_r")
    df.write_csv(catalog)


def _env(root: Path, **extra: str) -> dict[str, str]:
    return pipeline_env(root, root / "dagster_home", **extra)


def test_a_nightly_killed_at_any_moment_loses_nothing(demo_root: Path, tmp_path: Path):
    new_dagster_home(demo_root / "dagster_home")
    assert run_cli(_env(demo_root), "run").returncode == 0
    db = demo_root / "seestocks.duckdb"
    last_good, history = fingerprint(db), _published_runs(db)
    _next_night(demo_root / "demo" / "catalog.csv")

    uninterrupted = tmp_path / "uninterrupted"
    shutil.copytree(demo_root, uninterrupted)
    start = time.perf_counter()
    done = run_cli(_env(uninterrupted), "run")
    run_seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stderr[-2000:]
    expected = fingerprint(uninterrupted / "seestocks.duckdb")
    assert expected != last_good  # the night changed the pages

    for point in FAILPOINTS:
        killed = run_cli(_env(demo_root, SEESTOCKS_FAILPOINT=point), "run")
        assert killed.returncode == -signal.SIGKILL, f"{point}: the run was not killed there ({killed.returncode})"
        assert snapshot_problems(db) == [] and fingerprint(db) == last_good, f"killed at {point}"
        assert _published_runs(db) == history
    rng = random.Random(11)
    for _ in range(4):  # and at moments nobody chose
        proc = subprocess.Popen([str(BIN / "seestocks-rank"), "run"], env=_env(demo_root), cwd=PROJECT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(rng.uniform(0.15, 0.95) * run_seconds)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert snapshot_problems(db) == []
        assert fingerprint(db) in (last_good, expected)  # the old file, or the new one once swapped in
        assert _published_runs(db)[: len(history)] == history  # no history lost

    final = run_cli(_env(demo_root), "run")
    assert final.returncode == 0, final.stderr[-2000:]
    assert snapshot_problems(db) == [] and fingerprint(db) == expected
    assert _published_runs(db)[: len(history)] == history and len(_published_runs(db)) > len(history)
