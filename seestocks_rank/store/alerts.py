"""Run failures, kept for operators: one JSON line per failure in ``<data root>/alerts/run_failures.jsonl``
(published to the analysts' DuckDB file as ``run_failures``), and posted to a webhook when one is set."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import polars as pl

WEBHOOK_ENV = "SEESTOCKS_ALERT_WEBHOOK"
FAILURES_FILE = "run_failures.jsonl"


def record_failure(alerts_dir: Path, failure: dict[str, object]) -> Path:
    """Append ``failure`` (a JSON object) to the failures file; returns its path."""
    alerts_dir.mkdir(parents=True, exist_ok=True)
    path = alerts_dir / FAILURES_FILE
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(failure, default=str) + "\n")
    return path


def read_failures(alerts_dir: Path) -> pl.DataFrame | None:
    """The recorded failures as a table (``steps`` and the other nested fields as JSON text), or None."""
    path = alerts_dir / FAILURES_FILE
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    rows = [json.loads(line) for line in lines if line.strip()]
    if not rows:
        return None
    flat = [{k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in row.items()} for row in rows]
    return pl.DataFrame(flat, infer_schema_length=None)


def post_webhook(failure: dict[str, object], url: str | None = None, timeout_s: float = 10.0) -> int | None:
    """POST ``failure`` as JSON to ``url`` (default ``$SEESTOCKS_ALERT_WEBHOOK``); the HTTP status, or None
    when no webhook is set. Raises on a network error (the caller decides whether that matters)."""
    url = url or os.environ.get(WEBHOOK_ENV)
    if not url:
        return None
    body = json.dumps(failure, default=str).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - operator-set URL
        return response.status
