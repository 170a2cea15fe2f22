"""The front door: `seestocks-rank demo` on a fresh data root, as `make demo` runs it (smaller), then the
report an analyst asks for: metrics as JSON, and the HTML page reports."""

import json
from pathlib import Path

import duckdb
import pytest

from seestocks_rank.cli import main


def test_demo_command_runs_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    data_dir = tmp_path / "data"
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    code = main(["--data-dir", str(data_dir), "demo", "--products", "1200", "--retailers", "4",
                 "--cross-encoder-minutes", "0.05"])  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    assert "NAIVE: tagged products, cheapest first" in captured.out and "RERANKED" in captured.out
    assert str(data_dir / "seestocks.duckdb") in captured.err
    # the persistent instance lives under the data root, so `dagster dev` sees these runs
    assert (data_dir / "dagster_home" / "dagster.yaml").exists()
    with duckdb.connect(str(data_dir / "seestocks.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from rankings").fetchone()[0] > 0
        pages = con.execute("select count(*) from category_pages").fetchone()[0]

    # options go before or after the command; --json turns the report into one JSON object on stdout
    assert main(["report", "--data-dir", str(data_dir), "--json", "--html"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["reranked"]["pages_with_misplaced@10"] < metrics["naive"]["pages_with_misplaced@10"]
    reports = data_dir / "reports" / "pages"
    assert (reports / "index.html").exists()
    assert len(list(reports.glob("*.html"))) == pages + 1

    # the published run scored against the demo's truth (true category and product cluster per offer)
    truth = data_dir / "demo" / "truth.parquet"
    assert main(["--data-dir", str(data_dir), "score", "--truth", str(truth), "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["pages"] == pages and scored["offers_with_truth"] > 0
    naive, pipeline = scored["naive"], scored["pipeline"]
    assert pipeline["pages_misplaced@10"] < naive["pages_misplaced@10"]
    assert pipeline["duplicate_slots@10"] < naive["duplicate_slots@10"]
    assert 0 < pipeline["coverage@50"] <= 1 and 0 < pipeline["max_retailer_share@10"] <= 1
    # each single signal's pages, for reference: every candidate ordered by that signal alone
    assert {"retrieval_rank", "centroid_cosine", "taxonomy_distance"} <= set(scored["single_signals"])
    assert scored["best_single_signal"] in scored["single_signals"]
    assert all(page["shown@10"] == 10 for page in scored["single_signals"].values())
