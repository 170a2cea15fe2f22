"""Hierarchical categorization: a beam walk down the taxonomy, refined by the sibling-disambiguation layer
(:mod:`.siblings`). The out-of-category filter that reads its calls is :mod:`.out_of_category`.

* :func:`node_prototypes` gives every taxonomy node a vector: its prompt blended with the trimmed mean of
  the products at or below it (nodes without products keep their prompt, so a bare taxonomy works).
* :func:`categorize` walks the tree level by level: the children of the ``beam`` best nodes are scored
  (``(1 - path_weight) * cosine + path_weight * parent score``) and a node may also stop the walk, so a
  product can land on an inner node. It never takes a flat argmax over all leaves.
* :func:`predict_categories` runs the walk and the sibling layer over a whole catalog (prototypes from the
  catalog's own tags), incrementally.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import sparse

from seestocks_rank.inputs.taxonomy import Taxonomy
from seestocks_rank.models.encoders import TextEncoder
from seestocks_rank.numeric import normalize_rows, rowwise_dot
from seestocks_rank.reranking.siblings import SiblingDisambiguator
from seestocks_rank.reranking.tree import _membership, children_table


def node_prompts(taxonomy: Taxonomy) -> list[str]:
    """One text per node: its name, then its path (the same form as the page prompt)."""
    return taxonomy.nodes.select(pl.format("{}. {}", pl.col("name"), pl.col("path"))).to_series().to_list()


def node_prototypes(
    taxonomy: Taxonomy,
    prompt_vectors: np.ndarray,
    product_vectors: np.ndarray | None = None,
    product_categories: np.ndarray | None = None,
    *,
    prompt_weight: float = 0.35,
    trim: float = 0.25,
) -> np.ndarray:
    """``[n_nodes, dim]`` unit vectors: the node's prompt blended with the mean of its products after
    dropping the ``trim`` share least like the first mean (robust to a few wrong tags)."""
    prompts = normalize_rows(np.asarray(prompt_vectors, dtype=np.float32))
    if product_vectors is None or product_categories is None or len(product_vectors) == 0:
        return prompts
    member = _membership(taxonomy, np.asarray(product_categories))
    counts = np.asarray(member.sum(axis=0)).ravel()
    centre = normalize_rows(np.asarray(member.T @ product_vectors))
    coo = member.tocoo()  # each member's similarity to its nodes' centres, only where it is a member
    coo.data = rowwise_dot(product_vectors, coo.row, centre, coo.col)
    order = np.lexsort((coo.data, coo.col))
    rank_in_node = np.arange(len(order)) - np.searchsorted(coo.col[order], coo.col[order])
    keep = np.empty(len(order), dtype=bool)
    keep[order] = rank_in_node >= np.floor(trim * counts[coo.col[order]]) * (counts[coo.col[order]] >= 5)
    kept = sparse.csr_matrix((np.ones(keep.sum(), np.float32), (coo.row[keep], coo.col[keep])), shape=member.shape)
    mean = normalize_rows(np.asarray(kept.T @ product_vectors))
    has = (counts > 0)[:, None]
    return np.where(has, normalize_rows(mean + prompt_weight * prompts), prompts).astype(np.float32)


@dataclass(frozen=True)
class CategorizeResult:
    """Predicted node index and id per product, the walk score, and whether disambiguation changed it."""

    node_index: np.ndarray
    category_id: np.ndarray
    score: np.ndarray
    disambiguated: np.ndarray


def _walk(
    sims: np.ndarray,
    children: np.ndarray,
    start: np.ndarray,
    start_score: np.ndarray,
    *,
    beam: int,
    path_weight: float,
    stop_margin: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Beam walk from ``start`` (node index per row; ``len(taxonomy)`` is the virtual root) to a node."""
    n, virtual = sims.shape[0], children.shape[0] - 1
    nodes = start[:, None].astype(np.int64)
    score = start_score[:, None].astype(np.float64)
    done = np.zeros_like(nodes, dtype=bool)
    rows = np.arange(n)[:, None, None]
    while not done.all():
        kids = np.where(done[..., None], -1, children[nodes])  # n x b x c
        kid_sim = np.where(kids >= 0, sims[rows, np.maximum(kids, 0)], -np.inf)
        from_root = (nodes == virtual)[..., None]
        kid_score = np.where(from_root, kid_sim, (1 - path_weight) * kid_sim + path_weight * score[..., None])
        stop_score = np.where(done, score, score - stop_margin)
        stop_score = np.where((nodes == virtual) | (nodes < 0), -np.inf, stop_score)
        cand_nodes = np.concatenate([nodes, kids.reshape(n, -1)], axis=1)
        cand_score = np.concatenate([stop_score, kid_score.reshape(n, -1)], axis=1)
        cand_done = np.concatenate(
            [np.ones_like(nodes, dtype=bool), (children[np.maximum(kids, 0), 0] < 0).reshape(n, -1)], axis=1
        )
        k = min(beam, cand_nodes.shape[1])
        top = np.argsort(-cand_score, axis=1, kind="stable")[:, :k]
        nodes = np.take_along_axis(cand_nodes, top, 1)
        score = np.take_along_axis(cand_score, top, 1)
        done = np.take_along_axis(cand_done, top, 1) | ~np.isfinite(score)
    return nodes[:, 0], score[:, 0]


def categorize(
    vectors: np.ndarray,
    taxonomy: Taxonomy,
    prototypes: np.ndarray,
    *,
    titles: list[str] | None = None,
    disambiguator: SiblingDisambiguator | None = None,
    beam: int = 4,
    path_weight: float = 0.3,
    stop_margin: float = 0.02,
    chunk_rows: int = 2048,
) -> CategorizeResult:
    """Predict a taxonomy node per product by a beam walk over ``prototypes`` (see the module docstring);
    with ``disambiguator`` (and ``titles``), close sibling calls are re-scored."""
    children = children_table(taxonomy)
    n = len(vectors)
    node = np.empty(n, dtype=np.int64)
    score = np.empty(n, dtype=np.float64)
    changed = np.zeros(n, dtype=bool)
    protos = np.ascontiguousarray(prototypes, dtype=np.float32)
    options = {"beam": beam, "path_weight": path_weight, "stop_margin": stop_margin}
    for start in range(0, n, chunk_rows):  # a loop over chunks of products (bounded memory)
        sl = slice(start, min(n, start + chunk_rows))
        sims = np.ascontiguousarray(vectors[sl], dtype=np.float32) @ protos.T
        root = np.full(sims.shape[0], len(taxonomy), dtype=np.int64)
        node[sl], score[sl] = _walk(sims, children, root, np.zeros(len(root)), **options)
        if disambiguator is not None and titles is not None:

            def descend(rows: np.ndarray, from_nodes: np.ndarray, sims: np.ndarray = sims) -> np.ndarray:
                return _walk(sims[rows], children, from_nodes, sims[rows, from_nodes], **options)[0]

            node[sl], changed[sl] = disambiguator.refine(sims, node[sl], titles[sl], vectors[sl], descend)
    return CategorizeResult(node, taxonomy.ids[node], score, changed)


PREDICTION_COLUMNS = ("offer_id", "predicted_category_id", "predicted_score", "disambiguated", "content_hash", "basis")


def prediction_basis(taxonomy: Taxonomy, encoder: TextEncoder) -> str:
    """What a prediction depends on besides the offer itself: the text model and the taxonomy."""
    tree = hashlib.sha1(taxonomy.ids.tobytes() + taxonomy.nodes.get_column("path").str.join("|")[0].encode())
    return f"{encoder.model_version}|{tree.hexdigest()[:12]}"


def predict_categories(
    products: pl.DataFrame,
    vectors: np.ndarray,
    taxonomy: Taxonomy,
    encoder: TextEncoder,
    *,
    disambiguate: bool = True,
    previous: pl.DataFrame | None = None,
    max_fit_titles: int = 100_000,
) -> pl.DataFrame:
    """The tree walk over the catalog: ``products`` (``offer_id, title, category_id``, the retailer's
    tag) row-aligned with their title ``vectors``. Node prototypes blend each node's prompt (encoded with
    ``encoder``) with the robust mean of the products tagged at or below it; close sibling calls go through
    the :class:`SiblingDisambiguator` (its term statistics fitted on at most ``max_fit_titles`` of the
    catalog's titles and tags, a seeded sample beyond that). Returns :data:`PREDICTION_COLUMNS` in
    ``products``' order.

    Incremental: with ``previous`` (an earlier output), an offer whose title and tag are unchanged keeps its
    prediction when the ``basis`` (text model, taxonomy) is the same, so a nightly run walks only new and
    changed offers (the prototypes still come from the whole catalog)."""
    basis = prediction_basis(taxonomy, encoder)
    content = pl.concat_str(pl.col("title").fill_null(""), pl.col("category_id").cast(pl.String), separator="\x1f")
    keyed = products.select("offer_id", content.hash(seed=7).alias("content_hash")).with_row_index("_row")
    reused = keyed.clear().with_columns(
        pl.lit(None, pl.Int64).alias("predicted_category_id"),
        pl.lit(None, pl.Float32).alias("predicted_score"),
        pl.lit(None, pl.Boolean).alias("disambiguated"),
        pl.lit(None, pl.String).alias("basis"),
    )
    if previous is not None and set(PREDICTION_COLUMNS) <= set(previous.columns):
        reused = keyed.join(
            previous.filter(pl.col("basis") == basis).select(PREDICTION_COLUMNS),
            on=["offer_id", "content_hash"],
            how="inner",
        )
    todo = keyed.join(reused.select("offer_id"), on="offer_id", how="anti")
    if todo.height:
        rows = todo.get_column("_row").to_numpy()
        tags = products.get_column("category_id").to_numpy()
        prototypes = node_prototypes(taxonomy, encoder.encode(node_prompts(taxonomy)), vectors, tags)
        layer = None
        if disambiguate:
            fit = np.arange(products.height)
            if len(fit) > max_fit_titles:
                fit = np.sort(np.random.default_rng(0).choice(len(fit), max_fit_titles, replace=False))
            all_titles = products.get_column("title").fill_null("")
            layer = SiblingDisambiguator(taxonomy, encoder, all_titles.gather(fit).to_list(), tags[fit])
        titles = products.get_column("title").fill_null("").gather(rows).to_list()
        result = categorize(vectors[rows], taxonomy, prototypes, titles=titles, disambiguator=layer)
        todo = todo.with_columns(
            pl.Series("predicted_category_id", result.category_id, dtype=pl.Int64),
            pl.Series("predicted_score", result.score, dtype=pl.Float32),
            pl.Series("disambiguated", result.disambiguated, dtype=pl.Boolean),
            pl.lit(basis).alias("basis"),
        )
    else:
        todo = reused.clear()
    return (
        pl.concat([reused.select("_row", *PREDICTION_COLUMNS), todo.select("_row", *PREDICTION_COLUMNS)])
        .sort("_row")
        .drop("_row")
    )
