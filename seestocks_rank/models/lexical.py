"""Lexical signals shared by the pipeline and the evaluation harness: tokens, BM25, term coverage."""

from __future__ import annotations

import numpy as np
import polars as pl

TOKEN_PATTERN = r"[\p{L}\p{N}]+"  # letters and digits of any script


def tokens(expr: pl.Expr) -> pl.Expr:
    """Word tokens in any language: lower-cased, accents folded (jamón = jamon, größe keeps its ß), with a
    light plural strip that holds in English and Spanish (peppers -> pepper, pimientos -> pimiento)."""
    return (
        expr.str.to_lowercase()
        .str.normalize("NFKD")
        .str.replace_all(r"\p{Mn}", "")
        .str.extract_all(TOKEN_PATTERN)
        .list.eval(pl.element().str.replace(r"^(.{2,}[^s])s$", "$1"))
    )


def term_coverage(queries: pl.Expr, titles: pl.Expr) -> pl.Expr:
    """Share of the query's distinct words present in the title."""
    query_tokens = tokens(queries).list.unique()
    overlap = tokens(titles).list.unique().list.set_intersection(query_tokens).list.len()
    return (overlap / query_tokens.list.len().clip(1)).cast(pl.Float32)


def bm25_scores(
    pairs: pl.DataFrame, *, query: str = "query", document: str = "title", k1: float = 1.2, b: float = 0.75
) -> pl.Series:
    """Okapi BM25 of each row's ``document`` text for its ``query`` text, vectorised.

    Document frequencies and the average length come from the distinct documents in ``pairs`` (the
    collection being ranked), so the score needs no external index.
    """
    docs = pairs.select(pl.col(document).alias("_doc")).unique().with_columns(tokens(pl.col("_doc")).alias("_t"))
    n_docs = max(docs.height, 1)
    doc_len = docs.select("_doc", pl.col("_t").list.len().alias("_len"))
    avg_len = float(doc_len.get_column("_len").mean() or 1.0)
    doc_tf = docs.explode("_t").drop_nulls("_t").group_by("_doc", "_t").len("_tf")
    doc_freq = doc_tf.group_by("_t").len("_df")
    exploded = (
        pairs.select(pl.col(query).alias("_q"), pl.col(document).alias("_doc"))
        .with_row_index("_row")
        .with_columns(tokens(pl.col("_q")).list.unique().alias("_t"))
        .explode("_t")
        .drop_nulls("_t")
        .join(doc_tf, on=["_doc", "_t"], how="inner")
        .join(doc_freq, on="_t", how="left")
        .join(doc_len, on="_doc", how="left")
    )
    idf = ((n_docs - pl.col("_df") + 0.5) / (pl.col("_df") + 0.5) + 1.0).log()
    tf = pl.col("_tf").cast(pl.Float64)
    norm = tf * (k1 + 1) / (tf + k1 * (1 - b + b * pl.col("_len") / avg_len))
    per_row = exploded.group_by("_row").agg((idf * norm).sum().alias("bm25"))
    scores = np.zeros(pairs.height, dtype=np.float32)
    if per_row.height:
        scores[per_row.get_column("_row").to_numpy()] = per_row.get_column("bm25").to_numpy()
    return pl.Series("bm25", scores)
