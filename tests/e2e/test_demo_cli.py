"""The front door: `seestocks-rank demo` on a fresh data root, as `make demo` runs it (smaller)."""

import json
from pathlib import Path

import duckdb
import pytest

from seestocks_rank.cli import main


def test_demo_command_runs_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    data_dir = tmp_path / "data"
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    metrics_file = tmp_path / "metrics.json"
    code = main(
        [
            "--data-dir",
            str(data_dir),
            "demo",
            "--products",
            "1200",
            "--retailers",
            "4",
            "--json",
            str(metrics_file),
            "--cross-encoder-minutes",
            "0.05",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "NAIVE: tagged products, cheapest first" in out and "RERANKED" in out
    assert str(data_dir / "seestocks.duckdb") in out
    metrics = json.loads(metrics_file.read_text())
    assert metrics["reranked"]["pages_with_misplaced@10"] < metrics["naive"]["pages_with_misplaced@10"]
    # the persistent instance lives under the data root, so `dagster dev` sees these runs
    assert (data_dir / "dagster_home" / "dagster.yaml").exists()
    with duckdb.connect(str(data_dir / "seestocks.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from rankings").fetchone()[0] > 0
