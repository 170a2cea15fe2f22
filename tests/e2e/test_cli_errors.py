"""A broken feed speaks plainly: ``seestocks-rank run`` (a real process) on an input with a missing or mistyped
column, a missing file or a bad row stops with one line naming the file and the column or row, a distinct
exit code (2) and no traceback; the last good output is untouched."""

from pathlib import Path

import polars as pl
import pytest

from seestocks_rank.synthetic.demo import generate_demo
from tests.operations.support import pipeline_env, run_cli


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    generate_demo(root / "demo", n_products=300, n_retailers=3, seed=3)
    return root


def _broken_catalog(tmp: Path, demo: Path, kind: str) -> Path:
    catalog = pl.read_csv(demo / "demo" / "catalog.csv", infer_schema=False)
    if kind == "missing_price":
        path = tmp / "catalog.csv"
        catalog.drop("price").write_csv(path)
    else:  # a price column of lists: a mistyped column
        path = tmp / "catalog.parquet"
        catalog.with_columns(
            pl.col("price").map_elements(lambda p: [p], return_dtype=pl.List(pl.String))
        ).write_parquet(path)
    return path


@pytest.mark.parametrize(
    ("variable", "make", "expected"),
    [
        (
            "SEESTOCKS_CATALOG",
            lambda t, d: _broken_catalog(t, d, "missing_price"),
            "required column 'price' is missing",
        ),
        ("SEESTOCKS_CATALOG", lambda t, d: _broken_catalog(t, d, "mistyped_price"), "column 'price' has dtype"),
        ("SEESTOCKS_TAXONOMY", lambda t, d: t / "nowhere.txt", "nowhere.txt: no such file"),
        ("SEESTOCKS_CATEGORY_PAGES", lambda t, d: _pages(t, "category_id\n6016\nbanana\n"), "row 1 has category_id"),
        ("SEESTOCKS_JUDGMENTS", lambda t, d: _pages(t, "category_id,product_id\n6016,x\n"), "lack column(s) ['grade']"),
        ("SEESTOCKS_SETTINGS", lambda t, d: '{"page_size": "many"}', "page_size"),
        ("SEESTOCKS_VISION", lambda t, d: '{"image_weigth": 0}', "unknown setting(s) ['image_weigth']"),
    ],
)
def test_an_unusable_input_stops_the_run_with_one_line(demo: Path, tmp_path: Path, variable, make, expected):
    broken = make(tmp_path, demo)
    done = run_cli(pipeline_env(demo, tmp_path / "home", **{variable: str(broken)}), "run")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and str(broken) in lines[0], done.stderr[-3000:]
    assert "Traceback" not in done.stderr + done.stdout
    assert not (demo / "seestocks.duckdb").exists()  # nothing ran


def _pages(tmp: Path, text: str) -> Path:
    path = tmp / "table.csv"
    path.write_text(text)
    return path


def test_a_run_past_its_maximum_run_time_stops_itself_and_says_so(demo: Path, tmp_path: Path):
    done = run_cli(pipeline_env(demo, tmp_path / "home"), "run", "--max-runtime-minutes", "0.02")
    assert done.returncode == 1
    assert "maximum run time of 0.02 minutes" in done.stderr.strip().splitlines()[-1]
    assert not (demo / "seestocks.duckdb").exists()
