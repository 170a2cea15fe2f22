"""The analysts' three questions, one query each, on the demo after two nightly runs with a changed catalog in
between: why is this product first on Peppers, what changed since the last run, which pages need a look.
And the file documents itself: a comment on every table and column, status as an ENUM, JSON as JSON."""

import random
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from assets.definitions import build_resources
from assets.runner import materialize_all_pages
from resources import RankingSettings

SETTINGS = RankingSettings(cross_encoder_minutes=0)


def _next_night(catalog_file: Path) -> None:
    """Retitled and repriced offers, and one page's offers all unseen for two months (stale)."""
    catalog = pl.read_csv(catalog_file, infer_schema=False)
    rng = random.Random(3)
    changed = rng.sample(range(catalog.height), catalog.height // 10)
    stale_before = (datetime(2026, 11, 1, tzinfo=UTC) - timedelta(days=60)).isoformat()
    catalog = catalog.with_row_index("_r").with_columns(
        pl.when(pl.col("_r").is_in(changed)).then(pl.col("title") + " XL").otherwise(pl.col("title")).alias("title"),
        pl.when(pl.col("category_id") == "4284").then(pl.lit(stale_before)).otherwise(pl.col("last_seen"))
        .alias("last_seen"),
    ).drop("_r")  # fmt: skip
    catalog.write_csv(catalog_file)


@pytest.fixture(scope="module")
def two_nights(small_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("nights")
    shutil.copytree(small_data_dir / "demo", root / "demo")
    instance = dg.DagsterInstance.ephemeral()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEESTOCKS_TEXT_MODEL", "hashing")
        assert materialize_all_pages(instance, build_resources(str(root), SETTINGS)).success
        _next_night(root / "demo" / "catalog.csv")
        assert materialize_all_pages(instance, build_resources(str(root), SETTINGS)).success
    return root / "seestocks.duckdb"


def test_why_is_this_product_first_on_peppers(two_nights: Path):
    with duckdb.connect(str(two_nights), read_only=True) as con:
        why = con.sql(
            "SELECT title, signal, contribution, final_score FROM ranking_explanations "
            "WHERE category_path LIKE '%> Peppers' AND rank = 1"
        ).pl()
        score = con.execute("SELECT score FROM rankings WHERE category_path LIKE '%> Peppers' AND rank = 1").fetchone()
    assert why.get_column("title").n_unique() == 1 and "bias" in why.get_column("signal").to_list()
    assert why.get_column("contribution").sum() == pytest.approx(score[0], abs=1e-3)  # the reasons add up
    assert abs(why.get_column("contribution")[0]) >= abs(why.get_column("contribution")[-1])  # largest first


def test_what_changed_since_the_last_run(two_nights: Path):
    with duckdb.connect(str(two_nights), read_only=True) as con:
        churn = con.sql("SELECT category_path, change, title, rank_now, rank_before, why FROM rank_churn").pl()
        snapshots = con.execute("SELECT count(DISTINCT run_id) FROM ranking_history").fetchone()[0]
        runs = con.execute("SELECT count(*) FROM runs").fetchone()[0]
    assert snapshots == 2 and runs == 2
    assert set(churn.get_column("change")) == {"entered", "left"}
    left = churn.filter(pl.col("change") == "left")
    assert left.get_column("why").null_count() == 0
    assert (
        left.filter(pl.col("category_path").str.ends_with("Tool Boxes"))
        .get_column("why")
        .str.contains("low_confidence")
        .any()
    )  # the stale page's products left with the rule that kept them off


def test_which_pages_need_a_look(two_nights: Path):
    with duckdb.connect(str(two_nights), read_only=True) as con:
        pages = con.sql("SELECT category_path, why FROM pages_needing_a_look").pl()
    boxes = pages.filter(pl.col("category_path").str.ends_with("Tool Boxes"))
    assert boxes.height == 1 and "half empty" in boxes.get_column("why")[0]


def test_the_file_documents_itself(two_nights: Path):
    with duckdb.connect(str(two_nights), read_only=True) as con:
        tables = con.execute("SELECT table_name, comment FROM duckdb_tables()").fetchall()
        views = con.execute("SELECT view_name, comment FROM duckdb_views() WHERE NOT internal").fetchall()
        columns = con.execute(
            "SELECT table_name, column_name, comment, data_type FROM duckdb_columns() WHERE NOT internal"
        ).fetchall()
    assert all(comment for _, comment in tables + views), [t for t, c in tables + views if not c]
    assert [(t, c) for t, c, comment, _ in columns if not comment] == []
    types = {(t, c): data_type for t, c, _, data_type in columns}
    assert types[("rankings", "run_id")] == "VARCHAR" and types[("runs", "model_versions")] == "JSON"
    assert types[("filtered_rankings", "status")].startswith("ENUM")
    assert ("predicted_categories", "content_hash") not in types  # no bookkeeping columns


def test_every_query_in_the_analysts_guide_runs(two_nights: Path):
    guide = (Path(__file__).parents[2] / "docs" / "analysts.md").read_text()
    statements = [
        s.strip() for block in re.findall(r"```sql\n(.*?)```", guide, re.S) for s in block.split(";") if s.strip()
    ]
    assert len(statements) >= 8
    with duckdb.connect(str(two_nights), read_only=True) as con:
        for statement in statements:
            assert con.execute(statement).fetchall(), statement  # each answers with rows on the demo
