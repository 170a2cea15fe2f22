"""Adapters from public data sets to the project's file formats."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import polars as pl


def homedepot_split(query: str) -> str:
    """The fixed split of ../shared/data/README.md: TEST when md5(query) % 5 == 0."""
    return "test" if int(hashlib.md5(query.encode("utf-8")).hexdigest(), 16) % 5 == 0 else "train"


def homedepot_judgments(path: str | Path) -> pl.DataFrame:
    """Home Depot's ``train.csv(.zip)`` (latin-1) -> the judgments format
    ``query_id, query, product_id, title, grade, split``. A query is the lower-cased, stripped search term;
    its id is stable (a hash of the text)."""
    path = Path(path)
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".csv"))
            raw = archive.read(name).decode("latin-1")
    else:
        raw = path.read_bytes().decode("latin-1")
    df = pl.read_csv(io.StringIO(raw), infer_schema=False)
    missing = {"product_uid", "product_title", "search_term", "relevance"} - set(df.columns)
    if missing:
        raise ValueError(f"{path}: not a Home Depot judgments file, missing {sorted(missing)}")
    queries = df.get_column("search_term").str.to_lowercase().str.strip_chars()
    distinct = queries.unique().to_list()
    split = {q: homedepot_split(q) for q in distinct}  # one md5 per distinct query (11.8K), not per row
    qid = {q: hashlib.md5(q.encode("utf-8")).hexdigest()[:12] for q in distinct}
    return pl.DataFrame(
        {
            "query_id": queries.replace_strict(qid),
            "query": queries,
            "product_id": df.get_column("product_uid"),
            "title": df.get_column("product_title"),
            "grade": df.get_column("relevance").cast(pl.Float64),
            "split": queries.replace_strict(split),
        }
    ).unique(["query_id", "product_id"], keep="first", maintain_order=True)
