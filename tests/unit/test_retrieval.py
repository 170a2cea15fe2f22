"""Tests for seestocks_rank.retrieval: page membership, robust centroids and the FAISS search."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from seestocks_rank.inputs.taxonomy import Taxonomy
from seestocks_rank.retrieval.centroids import (
    ancestor_pairs,
    category_centroids,
    page_members,
    page_prompt,
    robust_centroid,
)
from seestocks_rank.retrieval.index import add_tagged_products, build_index, search_candidates

# 1 Food
#   2 Food > Vegetables
#     3 Food > Vegetables > Peppers
#     4 Food > Vegetables > Onions
#   5 Food > Sauces
# 10 Tools
#   11 Tools > Hammers
TAXONOMY = """\
1 - Food
2 - Food > Vegetables
3 - Food > Vegetables > Peppers
4 - Food > Vegetables > Onions
5 - Food > Sauces
10 - Tools
11 - Tools > Hammers
"""


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return Taxonomy.from_text(TAXONOMY)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_ancestor_pairs_include_self_and_all_ancestors(taxonomy: Taxonomy) -> None:
    pairs = ancestor_pairs(taxonomy)
    assert pairs.columns == ["category_id", "ancestor_id"]
    got = sorted(pairs.iter_rows())
    expected = sorted(
        [(1, 1), (2, 2), (2, 1), (3, 3), (3, 2), (3, 1), (4, 4), (4, 2), (4, 1), (5, 5), (5, 1), (10, 10), (11, 11)]
        + [(11, 10)]
    )
    assert got == expected


def test_page_members_include_descendants(taxonomy: Taxonomy) -> None:
    products = pl.DataFrame({"category_id": [3, 4, 5, 11, 2, 99]})  # 99 is not in the taxonomy
    pages = pl.DataFrame({"category_id": [1, 2, 3, 10, 4]})
    members = page_members(products, pages, taxonomy)
    assert members.columns == ["category_id", "row"]
    assert members.schema["row"] == pl.Int64
    got: dict[int, list[int]] = {}
    for cid, row in members.iter_rows():
        got.setdefault(cid, []).append(row)
    assert got == {1: [0, 1, 2, 4], 2: [0, 1, 4], 3: [0], 4: [1], 10: [3]}
    # Sorted by page then row.
    assert members.rows() == sorted(members.rows())


def test_page_members_of_page_with_no_products_is_empty(taxonomy: Taxonomy) -> None:
    products = pl.DataFrame({"category_id": [11, 11]})
    members = page_members(products, pl.DataFrame({"category_id": [5]}), taxonomy)
    assert members.height == 0


def _clustered_members(n_clean: int, n_outliers: int, dim: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    direction = _unit(rng.standard_normal(dim))
    clean = _unit(direction + 0.15 * rng.standard_normal((n_clean, dim)))
    other = rng.standard_normal(dim)
    other = _unit(other - (other @ direction) * direction)  # mis-tagged products: another, orthogonal cluster
    outliers = _unit(other + 0.15 * rng.standard_normal((n_outliers, dim)))
    return direction, clean, outliers


def test_robust_centroid_ignores_far_outliers() -> None:
    direction, clean, outliers = _clustered_members(90, 10)
    members = np.vstack([clean, outliers]).astype(np.float32)
    prompt = direction.astype(np.float32)
    centre, keep = robust_centroid(members, prompt, prompt_weight=0.0)
    clean_mean = _unit(clean.mean(axis=0))
    naive_mean = _unit(members.mean(axis=0))
    assert centre.dtype == np.float32
    assert np.linalg.norm(centre) == pytest.approx(1.0, abs=1e-5)
    assert float(centre @ clean_mean) > 0.999
    # The plain mean is pulled noticeably towards the outliers' cluster.
    assert float(naive_mean @ clean_mean) < 0.995
    assert keep.shape == (100,) and keep.dtype == bool
    assert not keep[90:].any()  # every outlier trimmed
    assert keep[:90].sum() == 75  # trim=0.25 keeps the 75 most central members


def test_robust_centroid_blends_in_prompt() -> None:
    members = np.tile(np.array([[1.0, 0.0, 0.0]], dtype=np.float32), (3, 1))
    prompt = np.array([0.0, 1.0, 0.0], dtype=np.float32)
    centre, keep = robust_centroid(members, prompt, prompt_weight=0.5)
    np.testing.assert_allclose(centre, _unit(np.array([1.0, 0.5, 0.0])), atol=1e-6)
    assert keep.all()  # fewer than 5 members: nothing trimmed


def test_robust_centroid_without_members_is_prompt_direction() -> None:
    prompt = np.array([3.0, 4.0, 0.0], dtype=np.float32)
    centre, keep = robust_centroid(np.zeros((0, 3), dtype=np.float32), prompt)
    np.testing.assert_allclose(centre, [0.6, 0.8, 0.0], atol=1e-7)
    assert keep.shape == (0,)


def test_page_prompt() -> None:
    assert page_prompt("Food > Vegetables > Peppers") == "Peppers. Food > Vegetables > Peppers"
    assert page_prompt("Tools") == "Tools. Tools"


def test_category_centroids_columns_and_stats(taxonomy: Taxonomy) -> None:
    dim = 4
    e = np.eye(dim, dtype=np.float32)
    products = pl.DataFrame({"category_id": [3, 3, 4, 11], "price": [1.0, 4.0, 16.0, 20.0]})
    product_vectors = np.stack([e[0], e[0], e[1], e[2]])
    pages = pl.DataFrame({"category_id": [2, 3, 5]})  # 5 (Sauces) has no products
    prompts = np.stack([e[0], e[0], e[3]])
    prof = category_centroids(pages, taxonomy, products, product_vectors, prompts, prompt_weight=0.0)
    assert prof.columns == [
        "category_id",
        "path",
        "n_members",
        "n_core",
        "member_cos_median",
        "member_cos_mad",
        "log_price_median",
        "log_price_mad",
        "centroid",
        "prompt_embedding",
    ]
    assert prof.get_column("category_id").to_list() == [2, 3, 5]
    assert prof.get_column("path").to_list() == ["Food > Vegetables", "Food > Vegetables > Peppers", "Food > Sauces"]
    assert prof.get_column("n_members").to_list() == [3, 2, 0]
    assert prof.get_column("n_core").to_list() == [3, 2, 0]
    # Vegetables: log prices of 1, 4, 16 -> median log 4, MAD log 4.
    assert prof.get_column("log_price_median").to_list()[:2] == pytest.approx([np.log(4), np.log(np.sqrt(4))])
    assert prof.get_column("log_price_mad")[0] == pytest.approx(np.log(4))
    assert prof.get_column("log_price_mad")[1] == pytest.approx(np.log(2))
    # Peppers: both members are e0 so the centroid is e0 and every member has cosine 1.
    np.testing.assert_allclose(prof.get_column("centroid").to_numpy()[1], e[0], atol=1e-6)
    assert prof.get_column("member_cos_median")[1] == pytest.approx(1.0)
    assert prof.get_column("member_cos_mad")[1] == pytest.approx(0.0)
    # Vegetables: centroid = unit(2*e0 + e1) / ...; members' cosines 2/sqrt5, 2/sqrt5, 1/sqrt5.
    np.testing.assert_allclose(prof.get_column("centroid").to_numpy()[0], _unit(np.array([2.0, 1, 0, 0])), atol=1e-6)
    assert prof.get_column("member_cos_median")[0] == pytest.approx(2 / np.sqrt(5), abs=1e-6)
    assert prof.get_column("member_cos_mad")[0] == pytest.approx(0.0, abs=1e-6)
    # No members: centroid is the prompt, stats are null (not NaN).
    sauces = prof.row(2, named=True)
    np.testing.assert_allclose(np.asarray(sauces["centroid"]), e[3])
    assert sauces["member_cos_median"] is None and sauces["log_price_median"] is None
    np.testing.assert_array_equal(prof.get_column("prompt_embedding").to_numpy(), prompts)


def _random_unit(n: int, dim: int, seed: int) -> np.ndarray:
    return _unit(np.random.default_rng(seed).standard_normal((n, dim))).astype(np.float32)


def _brute_force_topk(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(queries @ base.T), axis=1, kind="stable")[:, :k]


def _centroid_frame(queries: np.ndarray, ids: list[int]) -> pl.DataFrame:
    from seestocks_rank.numeric import array_series

    return pl.DataFrame({"category_id": ids}).with_columns(array_series("centroid", queries))


@pytest.fixture(scope="module")
def corpus() -> tuple[np.ndarray, np.ndarray, pl.Series]:
    base = _random_unit(2000, 32, seed=1)
    queries = _random_unit(20, 32, seed=2)
    offer_ids = pl.Series("offer_id", [f"o{i}" for i in range(len(base))])
    return base, queries, offer_ids


def test_flat_search_is_exact(corpus) -> None:
    base, queries, offer_ids = corpus
    k = 10
    index = build_index(base, kind="flat", use_gpu=False)
    assert index.ntotal == 2000
    out = search_candidates(index, _centroid_frame(queries, list(range(100, 120))), offer_ids, k)
    assert out.columns == ["category_id", "offer_id", "retrieval_rank", "retrieval_score"]
    assert out.height == 20 * k
    truth = _brute_force_topk(base, queries, k)
    for qi, (cid, group) in enumerate(out.group_by("category_id", maintain_order=True)):
        assert cid[0] == 100 + qi
        assert group.get_column("retrieval_rank").to_list() == list(range(1, k + 1))
        assert group.get_column("offer_id").to_list() == [f"o{j}" for j in truth[qi]]
        np.testing.assert_allclose(group.get_column("retrieval_score").to_numpy(), base[truth[qi]] @ queries[qi], 1e-5)


def test_hnsw_recall(corpus) -> None:
    base, queries, offer_ids = corpus
    k = 20
    index = build_index(base, kind="hnsw", use_gpu=False)
    out = search_candidates(index, _centroid_frame(queries, list(range(20))), offer_ids, k)
    truth = _brute_force_topk(base, queries, k)
    hits = 0
    for qi in range(20):
        got = set(out.filter(pl.col("category_id") == qi).get_column("offer_id").to_list())
        hits += len(got & {f"o{j}" for j in truth[qi]})
    assert hits / (20 * k) >= 0.9
    # Scores come back in descending order with ranks 1..k.
    first = out.filter(pl.col("category_id") == 0)
    assert first.get_column("retrieval_rank").to_list() == list(range(1, k + 1))
    scores = first.get_column("retrieval_score").to_numpy()
    assert np.all(np.diff(scores) <= 1e-6)


def test_ivf_recall(corpus) -> None:
    base, queries, offer_ids = corpus
    k = 10
    index = build_index(base, kind="ivf", use_gpu=False)
    out = search_candidates(index, _centroid_frame(queries, list(range(20))), offer_ids, k)
    truth = _brute_force_topk(base, queries, k)
    hits = sum(
        len(
            set(out.filter(pl.col("category_id") == qi).get_column("offer_id").to_list()) & {f"o{j}" for j in truth[qi]}
        )
        for qi in range(20)
    )
    # nprobe = nlist/8 scans ~1/8 of the lists on random data: a loose bound, but well above chance (k/n = 0.5%).
    assert hits / (20 * k) >= 0.3


def test_k_larger_than_index_is_clipped() -> None:
    base = _random_unit(5, 8, seed=4)
    offer_ids = pl.Series("offer_id", ["a", "b", "c", "d", "e"])
    index = build_index(base, kind="flat", use_gpu=False)
    out = search_candidates(index, _centroid_frame(base[:2], [7, 8]), offer_ids, k=50)
    assert out.height == 10
    for cid, self_id in ((7, "a"), (8, "b")):
        page = out.filter(pl.col("category_id") == cid)
        assert page.get_column("retrieval_rank").to_list() == [1, 2, 3, 4, 5]
        assert sorted(page.get_column("offer_id").to_list()) == ["a", "b", "c", "d", "e"]
        assert page.get_column("offer_id")[0] == self_id  # a vector is its own nearest neighbour
        assert page.get_column("retrieval_score")[0] == pytest.approx(1.0, abs=1e-5)


def test_unknown_index_kind_raises() -> None:
    with pytest.raises(ValueError, match="unknown index kind 'annoy'"):
        build_index(_random_unit(4, 4, seed=0), kind="annoy", use_gpu=False)


class _Vectors:
    """The two things :func:`add_tagged_products` reads from an embedding store: its offers and their vectors."""

    def __init__(self, vectors: np.ndarray, offer_ids: pl.Series):
        self.manifest = pl.DataFrame({"offer_id": offer_ids})
        self._rows = {o: i for i, o in enumerate(offer_ids.to_list())}
        self._vectors = vectors

    def vectors(self, kind: str, offer_ids: pl.Series) -> np.ndarray:
        return self._vectors[[self._rows[o] for o in offer_ids.to_list()]]


def test_retrieval_only_adds_to_the_tagged_products(corpus) -> None:
    """A page's tagged products far from its centroid are still candidates (nearest first, at most
    ``per_page``), the search's neighbours keep their ranks, and nothing is listed twice."""
    base, queries, offer_ids = corpus
    k = 10
    centroids = _centroid_frame(queries[:2], [100, 101])
    searched = search_candidates(build_index(base, kind="flat", use_gpu=False), centroids, offer_ids, k)
    far = np.argsort(queries[0] @ base.T)[:30]  # page 100's tags: its 30 farthest products ...
    tagged = pl.DataFrame(
        {
            "category_id": [100] * 32 + [101],
            "offer_id": [*offer_ids.gather(far).to_list(), *searched["offer_id"][:2].to_list(), "o-unknown"],
        }
    )  # ... plus two it found anyway, and an offer the store does not hold
    out = add_tagged_products(searched, centroids, tagged, _Vectors(base, offer_ids), per_page=25)
    assert out.columns == searched.columns and out.schema == searched.schema
    page = out.filter(pl.col("category_id") == 100)
    assert page.get_column("offer_id").n_unique() == page.height == k + 25
    assert page.get_column("retrieval_rank").to_list() == list(range(1, k + 26))
    assert page.head(k).equals(searched.filter(pl.col("category_id") == 100))  # the search's ranks hold
    added = set(page.tail(25).get_column("offer_id").to_list())
    assert added == set(offer_ids.gather(far[5:]).to_list())  # the 25 nearest of the 30 missed tags
    expected = base[far[5:]] @ queries[0]
    np.testing.assert_allclose(np.sort(page.tail(25)["retrieval_score"].to_numpy()), np.sort(expected), rtol=1e-5)
    assert out.filter(pl.col("category_id") == 101).equals(searched.filter(pl.col("category_id") == 101))
