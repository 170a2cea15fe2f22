"""Tests for seestocks_rank.taxonomy."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from seestocks_rank.inputs.taxonomy import Taxonomy, TaxonomyError

DATA_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "google_taxonomy"
EN_US = DATA_DIR / "taxonomy-with-ids.en-US.txt"
ES_ES = DATA_DIR / "taxonomy-with-ids.es-ES.2015.txt"

# 1 Animals                 depth 1
#   2 Pets                  depth 2
#     3 Dogs                depth 3
#       6 Dog Toys          depth 4
#     4 Cats                depth 3
#   5 Live                  depth 2
# 10 Tools                  depth 1
#   11 Saws                 depth 2
# 20 Toys                   depth 1
TINY = """\
# Google_Product_Taxonomy_Version: test
1 - Animals
2 - Animals > Pets
3 - Animals > Pets > Dogs

4 - Animals > Pets > Cats
5 - Animals > Live
10 - Tools
11 - Tools > Saws
6 -   Animals > Pets >Dogs > Dog Toys
20 - Toys
"""


@pytest.fixture(scope="module")
def tiny() -> Taxonomy:
    return Taxonomy.from_text(TINY)


@pytest.fixture(scope="module")
def en_us() -> Taxonomy:
    if not EN_US.exists():
        pytest.skip(f"real taxonomy not available at {DATA_DIR.resolve()} (../shared/data is absent)")
    return Taxonomy.load(EN_US)


def slow_distance(tax: Taxonomy, a: int, b: int) -> int:
    """Reference tree distance from explicit ancestor chains."""
    chain_a = [*tax.ancestors(a), a]
    chain_b = [*tax.ancestors(b), b]
    common = 0
    for x, y in zip(chain_a, chain_b, strict=False):
        if x != y:
            break
        common += 1
    return len(chain_a) + len(chain_b) - 2 * common


# ---------------------------------------------------------------------------- tiny taxonomy
def test_nodes_table(tiny: Taxonomy) -> None:
    nodes = tiny.nodes
    assert nodes.schema == pl.Schema(
        {
            "category_id": pl.Int64,
            "name": pl.String,
            "path": pl.String,
            "parent_id": pl.Int64,
            "depth": pl.Int32,
        }
    )
    assert nodes["category_id"].to_list() == [1, 2, 3, 4, 5, 10, 11, 6, 20]
    assert tiny.ids.dtype == np.int64
    assert tiny.ids.tolist() == [1, 2, 3, 4, 5, 10, 11, 6, 20]
    row = nodes.filter(pl.col("category_id") == 6).row(0, named=True)
    assert row == {
        "category_id": 6,
        "name": "Dog Toys",
        "path": "Animals > Pets > Dogs > Dog Toys",
        "parent_id": 3,
        "depth": 4,
    }
    assert nodes.filter(pl.col("depth") == 1)["parent_id"].null_count() == 3


def test_lookups(tiny: Taxonomy) -> None:
    assert len(tiny) == 9
    assert 3 in tiny and 99 not in tiny and "3" not in tiny
    assert tiny.index_of([6, 1, 99, -1]).tolist() == [7, 0, -1, -1]
    assert tiny.path(4) == "Animals > Pets > Cats"
    assert tiny.parent(3) == 2 and tiny.parent(1) is None
    assert tiny.children(2) == [3, 4]
    assert tiny.children(6) == []
    assert tiny.siblings(3) == [4]
    assert tiny.siblings(5) == [2]
    assert tiny.siblings(10) == [1, 20]
    assert tiny.siblings(11) == []
    assert tiny.ancestors(6) == [1, 2, 3]
    assert tiny.ancestors(1) == []
    assert tiny.descendants(2).tolist() == [2, 3, 4, 6]
    assert tiny.descendants(2, include_self=False).tolist() == [3, 4, 6]
    assert tiny.descendants(20, include_self=False).tolist() == []
    with pytest.raises(KeyError):
        tiny.path(99)


def test_distance(tiny: Taxonomy) -> None:
    a = np.array([3, 3, 3, 6, 6, 1, 11, 99, 3])
    b = np.array([3, 4, 5, 4, 11, 10, 20, 3, 99])
    assert tiny.distance(a, b).tolist() == [0, 2, 3, 3, 6, 2, 3, -1, -1]
    assert tiny.lca_depth(a, b).tolist() == [3, 2, 1, 2, 0, 0, 0, -1, -1]
    assert tiny.distance(6, [1, 2, 3, 6]).tolist() == [3, 2, 1, 0]
    assert int(tiny.distance(4, 3)) == 2
    pairs = [(int(x), int(y)) for x in tiny.ids for y in tiny.ids]
    xs, ys = np.array(pairs).T
    assert tiny.distance(xs, ys).tolist() == [slow_distance(tiny, x, y) for x, y in pairs]
    assert (tiny.distance(xs, ys) == tiny.distance(ys, xs)).all()


def test_is_within(tiny: Taxonomy) -> None:
    a = np.array([6, 6, 6, 6, 3, 2, 11, 99, 1])
    b = np.array([6, 3, 1, 4, 6, 1, 1, 1, 99])
    assert tiny.is_within(a, b).tolist() == [True, True, True, False, False, True, False, False, False]
    assert tiny.is_within([3, 4, 5, 6], 2).tolist() == [True, True, False, True]


def test_round_trips(tiny: Taxonomy) -> None:
    again = Taxonomy.from_text(tiny.to_text())
    assert again.nodes.equals(tiny.nodes)
    buf = io.BytesIO()
    tiny.nodes.write_parquet(buf)
    buf.seek(0)
    rebuilt = Taxonomy.from_nodes(pl.read_parquet(buf))
    assert rebuilt == tiny
    assert rebuilt.distance(6, 11).tolist() == 6


def test_load_file(tmp_path: Path) -> None:
    path = tmp_path / "tax.txt"
    path.write_text(TINY, encoding="utf-8")
    assert Taxonomy.load(path).nodes.equals(Taxonomy.from_text(TINY).nodes)


def test_parents_may_follow_children() -> None:
    tax = Taxonomy.from_text("3 - A > B > C\n2 - A > B\n1 - A\n")
    assert tax.ids.tolist() == [3, 2, 1]
    assert tax.ancestors(3) == [1, 2]
    assert tax.nodes["depth"].to_list() == [3, 2, 1]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("1 - A\n2 A > B\n", r"line 2: expected 'ID - Path'"),
        ("1 - A\nx2 - A > B\n", r"line 2: category id 'x2' is not an integer"),
        ("1 - A\n\n1 - B\n", r"line 3: duplicate category id 1 \(first defined on line 1\)"),
        ("# c\n1 - A\n2 - A > B\n3 - A >  B\n", r"line 4: duplicate path 'A > B' \(first defined on line 3"),
        ("1 - A\n2 - A > B > C\n", r"line 2: parent category 'A > B' of 'A > B > C' is not defined"),
        ("1 - A\n2 - A >  > C\n", r"line 2: empty category name"),
    ],
    ids=["no-separator", "non-integer-id", "duplicate-id", "duplicate-path", "missing-parent", "empty-name"],
)
def test_parse_errors(text: str, match: str) -> None:
    with pytest.raises(TaxonomyError, match=match):
        Taxonomy.from_text(text)


def test_taxonomy_error_is_value_error() -> None:
    assert issubclass(TaxonomyError, ValueError)


def test_from_nodes_rejects_inconsistent_table(tiny: Taxonomy) -> None:
    bad = tiny.nodes.with_columns(
        pl.when(pl.col("category_id") == 3).then(5).otherwise(pl.col("parent_id")).alias("parent_id")
    )
    with pytest.raises(TaxonomyError, match=r"row 3: parent_id"):
        Taxonomy.from_nodes(bad)
    with pytest.raises(TaxonomyError, match="missing column"):
        Taxonomy.from_nodes(tiny.nodes.drop("path"))


def test_empty_taxonomy_is_rejected() -> None:
    with pytest.raises(TaxonomyError, match="no categories"):
        Taxonomy.from_text("# nothing\n\n")


# ---------------------------------------------------------------------------- real files
@pytest.mark.realdata
def test_real_taxonomy_shape(en_us: Taxonomy) -> None:
    nodes = en_us.nodes
    assert len(en_us) == 5595
    assert nodes.filter(pl.col("depth") == 1).height == 21
    assert nodes["depth"].max() == 7
    assert en_us.path(3237) == "Animals & Pet Supplies > Live Animals"
    assert en_us.path(499676) == "Food, Beverages & Tobacco > Beverages > Alcoholic Beverages"
    assert en_us.ancestors(3) == [1, 2]
    assert en_us.parent(166) is None
    assert Taxonomy.from_text(en_us.to_text()) == en_us


@pytest.mark.realdata
def test_real_taxonomy_distances(en_us: Taxonomy) -> None:
    # 3 Bird Supplies / 4 Cat Supplies are siblings under 2 Pet Supplies; 543510/543511 are depth-7 siblings.
    a = np.array([3, 3237, 543510, 543510, 1, 166])
    b = np.array([4, 3, 543511, 166, 222, 166])
    assert en_us.distance(a, b).tolist() == [2, 3, 2, 8, 2, 0]
    assert en_us.is_within([543510, 543510, 3], [1, 166, 2]).tolist() == [False, False, True]
    assert en_us.is_within(543510, en_us.ancestors(543510)).all()


@pytest.mark.realdata
def test_real_taxonomy_vectorised_matches_reference(en_us: Taxonomy) -> None:
    rng = np.random.default_rng(7)
    a = rng.choice(en_us.ids, 1_000_000)
    b = rng.choice(en_us.ids, 1_000_000)
    dist = en_us.distance(a, b)
    within = en_us.is_within(a, b)
    assert dist.shape == (1_000_000,) and (dist >= 0).all()
    for i in rng.choice(len(a), 200, replace=False):
        x, y = int(a[i]), int(b[i])
        assert dist[i] == slow_distance(en_us, x, y)
        assert within[i] == (x == y or y in en_us.ancestors(x))


@pytest.mark.realdata
def test_spanish_taxonomy_parses() -> None:
    if not ES_ES.exists():
        pytest.skip(f"Spanish taxonomy not available at {DATA_DIR.resolve()}")
    es = Taxonomy.load(ES_ES)
    assert len(es) == 5427
    assert es.path(3237) == "Productos para mascotas y animales > Animales vivos"
    assert es.nodes["depth"].max() == 7
