"""Active category pages: which taxonomy nodes have a page (the pipeline's partitions)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from seestocks_rank.inputs.files import read_table
from seestocks_rank.inputs.taxonomy import Taxonomy


def load_category_pages(path: str | Path, taxonomy: Taxonomy) -> pl.DataFrame:
    """Pages file (CSV/Parquet with a ``category_id`` column) -> ``category_id, path, depth``.

    Raises naming the first bad row: a non-integer id or an id that is not in the taxonomy.
    Duplicate ids are collapsed; file order is kept.
    """
    raw = read_table(path)
    if "category_id" not in raw.columns:
        raise ValueError(f"{path}: category pages need a 'category_id' column, found {raw.columns}")
    ids = raw.get_column("category_id").cast(pl.Utf8).str.strip_chars().cast(pl.Int64, strict=False)
    bad = ids.is_null() | ~ids.is_in(pl.Series(taxonomy.ids))
    if bad.any():
        row = int(bad.arg_max())
        value = raw.get_column("category_id")[row]
        raise ValueError(f"{path}: row {row} has category_id {value!r}, which is not a taxonomy category id")
    pages = pl.DataFrame({"category_id": ids}).unique(maintain_order=True)
    return pages.join(
        taxonomy.nodes.select("category_id", "path", "depth"), on="category_id", how="left", maintain_order="left"
    )
