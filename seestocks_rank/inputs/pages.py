"""Active category pages: which taxonomy nodes have a page, and the partition key each page gets (its
category id and a slug of its name, stable when the page is renamed)."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import polars as pl

from seestocks_rank.inputs.errors import InputError
from seestocks_rank.inputs.files import read_table
from seestocks_rank.inputs.taxonomy import Taxonomy


def load_category_pages(path: str | Path, taxonomy: Taxonomy) -> pl.DataFrame:
    """Pages file (CSV/Parquet with a ``category_id`` column) -> ``category_id, path, depth``.

    Raises naming the first bad row: a non-integer id or an id that is not in the taxonomy.
    Duplicate ids are collapsed; file order is kept.
    """
    raw = read_table(path)
    if "category_id" not in raw.columns:
        raise InputError(f"{path}: category pages need a 'category_id' column, found {raw.columns}")
    ids = raw.get_column("category_id").cast(pl.Utf8).str.strip_chars().cast(pl.Int64, strict=False)
    bad = ids.is_null() | ~ids.is_in(pl.Series(taxonomy.ids))
    if bad.any():
        row = int(bad.arg_max())
        value = raw.get_column("category_id")[row]
        raise InputError(f"{path}: row {row} has category_id {value!r}, which is not a taxonomy category id")
    pages = pl.DataFrame({"category_id": ids}).unique(maintain_order=True)
    return pages.join(
        taxonomy.nodes.select("category_id", "path", "depth"), on="category_id", how="left", maintain_order="left"
    )


_SLUG_MAX_CHARS = 40


def page_slug(name: str) -> str:
    """Lower-case ASCII words of a page name joined by ``-`` (accents dropped): ``Tool Bags`` -> ``tool-bags``."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:_SLUG_MAX_CHARS].rstrip("-")


def page_key(category_id: int, name: str) -> str:
    """A page's partition key: its category id, then the slug of its name (``4283-tool-bags``), so a person
    finds a page by name where pages are picked. The id alone identifies the page (:func:`page_id`)."""
    slug = page_slug(name)
    return f"{category_id}-{slug}" if slug else str(category_id)


def page_id(key: str) -> int:
    """The category id of a partition key (``4283-tool-bags`` or a bare ``4283``)."""
    head = key.split("-", 1)[0]
    if not head.isdigit():
        raise ValueError(f"partition key {key!r} does not start with a category id")
    return int(head)


def plan_page_keys(pages: pl.DataFrame, existing_keys: list[str]) -> tuple[list[str], list[str]]:
    """The keys to add and to remove so the partitions match ``pages`` (``category_id, path``), in page
    order. A page keeps the key it was first given even when it is renamed (its id is what matches)."""
    existing_ids = {page_id(k): k for k in existing_keys}
    wanted = pages.select("category_id", pl.col("path").str.split(" > ").list.last().alias("name"))
    added = [page_key(c, n) for c, n in wanted.iter_rows() if c not in existing_ids]
    wanted_ids = set(wanted.get_column("category_id").to_list())
    removed = [k for c, k in existing_ids.items() if c not in wanted_ids]
    return added, removed
