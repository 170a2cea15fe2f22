"""Seeded generator of a realistic embedded demo for the category-page reranking pipeline.

``generate_demo`` writes a Google-style taxonomy slice, the active category pages, an offer catalog with
near-duplicates, mis-tagged offers, price outliers, stale offers and bad rows, human relevance judgments
and a ground-truth parquet (evaluation only). Output is byte-identical for a given seed.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from seestocks_rank.synthetic.demo_images import _write_images
from seestocks_rank.synthetic.demo_matching import demo_matching_pairs
from seestocks_rank.synthetic.demo_vocabulary import (
    CONFUSIONS,
    DESCRIPTIONS,
    EXTRAS,
    MID_PAGES,
    NEAR_TYPES,
    RETAILERS,
    TAXONOMY,
    TOKEN_SUBS,
    VOCAB,
)

DEFAULT_REFERENCE_TIME = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)


UNKNOWN_CATEGORY_ID = 999_999


BAD_ROW_KINDS = (
    "missing_product_id", "missing_title", "bad_price", "nonpositive_price",
    "unknown_category", "duplicate", "absurd_title", "bad_last_seen",
)  # fmt: skip


@dataclass(frozen=True)
class DemoPaths:
    """Locations of the generated demo files."""

    root: Path
    taxonomy: Path
    catalog: Path
    category_pages: Path
    judgments: Path
    truth: Path
    matching_pairs: Path


@dataclass(frozen=True)
class _Tax:
    ids: dict[str, int]  # node name -> id
    parent: dict[str, str | None]

    def root(self, name: str) -> str:
        parent = self.parent[name]
        return name if parent is None else self.root(parent)

    def subtree(self, name: str) -> set[str]:
        out = {name}
        for node in self.parent:  # parents precede children in TAXONOMY
            if self.parent[node] in out:
                out.add(node)
        return out


def _taxonomy() -> _Tax:
    ids: dict[str, int] = {}
    parent: dict[str, str | None] = {}
    for cid, path in TAXONOMY:
        parts = path.split(" > ")
        ids[parts[-1]] = cid
        parent[parts[-1]] = parts[-2] if len(parts) > 1 else None
    assert len(ids) == len(TAXONOMY) == len(set(ids.values())), "taxonomy names and ids must be unique"
    return _Tax(ids, parent)


def _retailers(n: int) -> list[str]:
    return [RETAILERS[i] if i < len(RETAILERS) else f"Tienda{i + 1:02d}" for i in range(n)]


def _pretty_price(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Round to cents, with ``.99`` endings for most prices above 10 EUR."""
    p = np.maximum(np.round(p, 2), 0.01)
    nines = (p >= 10) & (rng.random(p.size) < 0.6)
    return np.where(nines, np.floor(p) + 0.99, p)


def _make_title(cat: dict[str, Any], rnd: random.Random) -> tuple[str, str, str, list[str]]:
    """One canonical title for ``cat``: returns (title, brand, noun, attributes)."""
    models: dict[str, list[str]] | None = cat.get("models")
    brand = rnd.choice(list(models) if models else cat["brands"])
    model = rnd.choice(models[brand]) if models else ""
    noun = rnd.choice(cat["nouns"])
    attrs = [rnd.choice(slot) for slot in cat["a"]]
    fields = {"b": brand, "m": model, "n": noun, **{f"a{i}": a for i, a in enumerate(attrs)}}
    return " ".join(cat["tpl"].format(**fields).split()), brand, noun, [a for a in attrs if a]


_UNITS = frozenset({"ml", "mL", "ML", "g", "gr", "grs", "kg", "Kg", "L", "l", "cm", "in", "inch", '"', "W"})


def _plain(tok: str) -> bool:
    return tok.isalpha() and tok not in _UNITS and tok.lower() not in {"x", "for", "with", "con", "w/"}


def _variant(title: str, brand: str, rnd: random.Random) -> str:
    """A retailer's rewording of ``title``: abbreviations, case, moved size, extra tokens, missing brand."""
    toks = title.split()
    nb = len(brand.split())
    ops = rnd.sample(["subs", "merge", "move", "drop_brand", "case", "extra", "swap"], rnd.randint(1, 3))
    for op in ops:
        if op == "subs":
            idx = [i for i, t in enumerate(toks) if t in TOKEN_SUBS]
            for i in rnd.sample(idx, min(len(idx), 2)):
                toks[i] = rnd.choice(TOKEN_SUBS[toks[i]])
        elif op == "merge":  # "60 ml" -> "60ml"
            for i in range(len(toks) - 1, 0, -1):
                if re.fullmatch(r"[\d.,]+", toks[i - 1]) and toks[i] in _UNITS:
                    toks[i - 1 : i + 1] = [toks[i - 1] + toks[i]]
        elif op == "move" and len(toks) > nb + 2 and re.match(r"[\d.,]+$", toks[-2]):
            size = toks[-2:]
            toks = toks[:nb] + size + toks[nb:-2] if rnd.random() < 0.5 else size + toks[:-2]
        elif op == "drop_brand" and toks[:nb] == brand.split() and len(toks) > nb + 1:
            toks = toks[nb:]
        elif op == "case":
            toks = (" ".join(toks).upper() if rnd.random() < 0.3 else " ".join(toks).lower()).split()
        elif op == "extra":
            toks.append(rnd.choice(EXTRAS))
        elif op == "swap":  # swap two adjacent plain words (never sizes or units)
            ok = [i for i in range(nb, len(toks) - 1) if _plain(toks[i]) and _plain(toks[i + 1])]
            if ok:
                i = rnd.choice(ok)
                toks[i], toks[i + 1] = toks[i + 1], toks[i]
    out = " ".join(toks)
    return out if out != title else f"{title} {rnd.choice(EXTRAS)}"


def _offers(n: int, n_ret: int, rng: np.random.Generator, rnd: random.Random) -> dict[str, Any]:
    """Good offers: canonical clusters, near-duplicate offers, retailers and base prices."""
    cats = list(VOCAB)
    # 35% of clusters are offered by 2-4 retailers; mean offers per cluster = 0.65 + 0.35 * 3.
    mult = np.minimum(np.where(rng.random(n) < 0.35, rng.integers(2, 5, n), 1), n_ret)
    ends = np.cumsum(mult)
    n_clusters = int(np.searchsorted(ends, n)) + 1
    mult = mult[:n_clusters]
    mult[-1] -= int(ends[n_clusters - 1] - n)  # trim the last cluster so that sum(mult) == n
    weights = rng.uniform(0.5, 1.5, len(cats))
    ccat = rng.choice(len(cats), n_clusters, p=weights / weights.sum())
    if n_clusters >= len(cats):
        ccat[: len(cats)] = np.arange(len(cats))  # every category gets products
    medians = np.array([VOCAB[c]["price"] for c in cats])
    base = medians[ccat] * np.exp(rng.normal(0.0, 0.35, n_clusters))

    titles, brands, nouns, attrs, seen = [], [], [], [], set()
    for k in ccat:
        for _ in range(30):
            t, b, nn, a = _make_title(VOCAB[cats[k]], rnd)
            if t not in seen:
                break
        if t in seen:
            t = f"{t} Pack of {rnd.randint(2, 12)}"
        seen.add(t)
        titles.append(t)
        brands.append(b)
        nouns.append(nn)
        attrs.append(a)

    # retailers: weighted sampling without replacement per cluster (Gumbel top-k); one big retailer.
    rw = 0.65 ** np.arange(n_ret)
    rw[0] = rw[1:].sum() * 0.55 if n_ret > 1 else 1.0
    keys = np.log(rw / rw.sum()) + rng.gumbel(size=(n_clusters, n_ret))
    order = np.argsort(-keys, axis=1)
    cl = np.repeat(np.arange(n_clusters), mult)
    rank = np.arange(n) - np.repeat(np.cumsum(mult) - mult, mult)
    retailer = order[cl, rank]
    price = base[cl] * np.where(rank == 0, 1.0, rng.uniform(0.85, 1.15, n))
    offer_titles = [titles[c] if r == 0 else _variant(titles[c], brands[c], rnd) for c, r in zip(cl, rank, strict=True)]
    return dict(cats=cats, cl=cl, ccat=ccat, retailer=retailer, price=price, title=offer_titles,
                brands=brands, nouns=nouns, attrs=attrs)  # fmt: skip


def _mistag(cats: list[str], tax: _Tax, cat: np.ndarray, price: np.ndarray, n_mis: int,
            rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """Assigned category index per offer: ~75% systematic confusions, the rest far-away categories.

    Only offers below 80% of the target category's median price are mis-tagged into it.
    """
    idx = {c: i for i, c in enumerate(cats)}
    medians = 0.8 * np.array([VOCAB[c]["price"] for c in cats])
    assigned = cat.copy()
    perm = rng.permutation(cat.size)
    chosen: list[int] = []
    n_sys = int(round(0.75 * n_mis))
    for i in perm:
        conf = CONFUSIONS.get(cats[cat[i]])
        if len(chosen) >= n_sys:
            break
        if conf:
            t = idx[conf[int(rng.integers(len(conf)))]]
            if price[i] < medians[t]:
                assigned[i] = t
                chosen.append(i)
    root_arr = np.array([tax.root(c) for c in cats])
    for i in rng.permutation(cat.size):
        if len(chosen) >= n_mis:
            break
        if assigned[i] != cat[i]:
            continue
        far = np.flatnonzero((root_arr != root_arr[cat[i]]) & (medians > price[i]))
        if far.size:
            assigned[i] = far[int(rng.integers(far.size))]
            chosen.append(i)
    return assigned


def _iso(ts: np.ndarray) -> list[str]:
    return [datetime.fromtimestamp(int(t), UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for t in ts]


def generate_demo(out_dir: str | Path, *, n_products: int = 20_000, n_retailers: int = 8, seed: int = 0,
                  reference_time: datetime | None = None, images: bool = False) -> DemoPaths:  # fmt: skip
    """Write the demo (taxonomy, pages, catalog, judgments, offer matching pairs, truth) into ``out_dir``.

    ``n_products`` is the number of good catalog offers; ~0.2% bad rows (at least 2 per kind) come on top.
    Truth rows align one-to-one, in order, with catalog rows. With ``images``, every product (cluster) gets
    a small PNG under ``images/`` drawn for its *true* category (see :func:`draw_product_image`), so a
    mis-tagged offer looks like what it is; ``image_path`` is filled, relative to the catalog file.
    """
    if n_products < 200 or n_retailers < 2:
        raise ValueError("need n_products >= 200 and n_retailers >= 2")
    ref = reference_time or DEFAULT_REFERENCE_TIME
    ref = ref.replace(tzinfo=UTC) if ref.tzinfo is None else ref.astimezone(UTC)
    rng = np.random.default_rng(seed)
    rnd = random.Random(seed)
    tax = _taxonomy()
    n = n_products
    o = _offers(n, n_retailers, rng, rnd)
    cats, cl = o["cats"], o["cl"]
    true_cat = o["ccat"][cl]
    assigned = _mistag(cats, tax, true_cat, o["price"], int(round(0.07 * n)), rng)
    mistagged = assigned != true_cat

    price = o["price"].copy()
    outlier = np.zeros(n, bool)
    outlier[rng.choice(np.flatnonzero(~mistagged), int(round(0.01 * n)), replace=False)] = True
    price[outlier] *= np.where(rng.random(int(outlier.sum())) < 0.5, 0.01, 50.0)
    price = _pretty_price(price, rng)
    stale = np.zeros(n, bool)
    stale[rng.choice(n, int(round(0.10 * n)), replace=False)] = True
    age = np.where(stale, rng.uniform(15 * 86400, 60 * 86400, n), rng.uniform(0, 2 * 86400, n))
    last_seen = _iso((ref.timestamp() - age) // 60 * 60)

    # descriptions and brand column
    rows_brand = [o["brands"][c] for c in cl]
    brand_col = [b if rng.random() < 0.93 else None for b in rows_brand]
    desc: list[str | None] = []
    for c in cl:
        if rnd.random() < 0.5:
            a = ", ".join(o["attrs"][c]) or "top quality"
            desc.append(rnd.choice(DESCRIPTIONS).format(b=o["brands"][c], n=o["nouns"][c].lower(), a=a))
        else:
            desc.append(None)

    cat_ids = np.array([tax.ids[c] for c in cats])
    good = pl.DataFrame({
        "retailer_idx": o["retailer"].astype(np.int64), "title": o["title"],
        "price": [f"{p:.2f}" for p in price], "category_id": cat_ids[assigned], "last_seen": last_seen,
        "description": desc, "brand": brand_col,
        "true_category_id": cat_ids[true_cat], "is_mistagged": mistagged,
        "cluster_id": [f"C{c:06d}" for c in cl], "is_price_outlier": outlier, "is_stale": stale,
    })  # fmt: skip
    good = good.with_columns(pl.lit(None, pl.Utf8).alias("bad_row_kind"))

    # bad rows: corrupted copies of random good offers (duplicates are exact copies placed after the original)
    per_kind = max(2, int(round(0.002 * n / len(BAD_ROW_KINDS))))
    bad_parts = []
    for kind in BAD_ROW_KINDS[:5] + BAD_ROW_KINDS[6:]:  # duplicates are made after ids are assigned
        src = good[rng.choice(n, per_kind, replace=False).tolist()].with_columns(
            pl.lit(kind).alias("bad_row_kind"), pl.lit(False).alias("is_mistagged"),
            pl.lit(False).alias("is_price_outlier"))  # fmt: skip
        if kind == "missing_title":
            src = src.with_columns(pl.lit(None, pl.Utf8).alias("title"))
        elif kind == "bad_price":
            src = src.with_columns(pl.lit("abc").alias("price"))
        elif kind == "nonpositive_price":
            src = src.with_columns(pl.Series("price", ["0", "-4.99"] * per_kind)[:per_kind])
        elif kind == "unknown_category":
            src = src.with_columns(pl.lit(UNKNOWN_CATEGORY_ID, pl.Int64).alias("category_id"))
        elif kind == "absurd_title":
            src = src.with_columns((pl.col("title") + " ").repeat_by(60).list.join("").str.strip_chars()
                                   .str.slice(0, 640).alias("title"))  # fmt: skip
        elif kind == "bad_last_seen":
            src = src.with_columns(pl.lit("yesterday").alias("last_seen"))
        bad_parts.append(src)
    bad = pl.concat(bad_parts)

    # product ids: unique random sequence numbers per retailer
    rows = pl.concat([good, bad])
    pid = np.empty(rows.height, dtype=object)
    ridx = rows["retailer_idx"].to_numpy()
    for r in range(n_retailers):
        where = np.flatnonzero(ridx == r)
        seq = rng.choice(9_000_000, where.size, replace=False) + 1
        pid[where] = [f"R{r + 1:02d}-{s:07d}" for s in seq]
    rows = rows.with_columns(pl.Series("product_id", pid.tolist(), pl.Utf8))
    rows = rows.with_columns(
        pl.when(pl.col("bad_row_kind") == "missing_product_id").then(None).otherwise(pl.col("product_id"))
        .alias("product_id"))  # fmt: skip
    rows = rows.sort("retailer_idx", "product_id", nulls_last=True)
    # shuffle bad rows into the good ones; duplicates copy a random earlier good row
    key = np.arange(rows.height, dtype=float)
    is_bad = rows["bad_row_kind"].is_not_null().to_numpy()
    key[is_bad] = rng.uniform(0, rows.height, int(is_bad.sum()))
    good_pos = np.flatnonzero(~is_bad)
    orig = rng.choice(good_pos, per_kind, replace=False)
    dups = rows[orig.tolist()].with_columns(pl.lit("duplicate").alias("bad_row_kind"))
    dup_key = orig + rng.uniform(0.5, 30.0, per_kind)
    allrows = pl.concat([rows, dups]).with_columns(pl.Series("_key", np.concatenate([key, dup_key])))
    allrows = allrows.sort("_key").drop("_key")

    retailers = _retailers(n_retailers)
    allrows = allrows.with_columns(pl.col("retailer_idx").replace_strict(
        dict(enumerate(retailers)), return_dtype=pl.Utf8).alias("retailer"))  # fmt: skip
    image_col = ("images/" + pl.col("cluster_id") + ".png") if images else pl.lit(None, pl.Utf8)
    catalog = allrows.select(
        "product_id", "title", "retailer", "price", pl.lit("EUR").alias("currency"), "category_id",
        image_col.alias("image_path"), "last_seen", "description", "brand")  # fmt: skip
    truth = allrows.select(
        "product_id", "retailer", "true_category_id", pl.col("category_id").alias("assigned_category_id"),
        "is_mistagged", "cluster_id", "is_price_outlier", "is_stale", "bad_row_kind")  # fmt: skip

    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    paths = DemoPaths(root, root / "taxonomy.txt", root / "catalog.csv", root / "category_pages.csv",
                      root / "judgments.csv", root / "truth.parquet", root / "matching_pairs.csv")  # fmt: skip
    lines = ["# Google_Product_Taxonomy_Version: seestocks-demo", *(f"{i} - {p}" for i, p in TAXONOMY)]
    paths.taxonomy.write_text("\n".join(lines) + "\n", encoding="utf-8")
    page_names = [c for c in cats if c not in MID_PAGES] + list(MID_PAGES)
    pages = pl.DataFrame({"category_id": [tax.ids[p] for p in page_names], "page_name": page_names})
    pages.write_csv(paths.category_pages)
    if images:
        _write_images(root / "images", o["ccat"], len(cats), seed)
    catalog.write_csv(paths.catalog)
    truth.write_parquet(paths.truth)
    _judgments(tax, page_names, truth, rng).write_csv(paths.judgments)
    demo_matching_pairs(catalog, truth, rng).write_csv(paths.matching_pairs)
    return paths


def _grade(tax: _Tax, page: str, true_name: str) -> int:
    """Relevance of a product of category ``true_name`` on ``page`` (0-3)."""
    sub = tax.subtree(page)
    if true_name in sub:
        return 3
    if (page, true_name) in NEAR_TYPES:
        return 2
    return 1 if true_name in _confusable(tax, page) else 0


def _confusable(tax: _Tax, page: str) -> set[str]:
    sub = tax.subtree(page)
    out: set[str] = set()
    for c in sub:
        out.update(CONFUSIONS.get(c, ()))
        out.update(s for s, targets in CONFUSIONS.items() if c in targets)
        out.update(s for s, p in tax.parent.items() if p is not None and p == tax.parent[c])
    return out - sub


def _judgments(tax: _Tax, pages: list[str], truth: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """Graded judgments for ~65% of pages: genuine, mis-tagged, confusable and random offers."""
    name = {v: k for k, v in tax.ids.items()}
    ok = truth.filter(pl.col("bad_row_kind").is_null() & pl.col("product_id").is_not_null())
    pid = ok["product_id"].to_numpy()
    tcat = np.array([name[c] for c in ok["true_category_id"]])
    acat = np.array([name[c] for c in ok["assigned_category_id"]])
    judged = sorted(rng.choice(len(pages), int(round(0.65 * len(pages))), replace=False).tolist())
    out: dict[str, list[Any]] = {"category_id": [], "product_id": [], "grade": []}
    for j in judged:
        page = pages[j]
        sub = np.array(sorted(tax.subtree(page)))
        tagged, gen = np.isin(acat, sub), np.isin(tcat, sub)
        conf = np.isin(tcat, np.array(sorted(_confusable(tax, page)))) & ~tagged
        size = int(rng.integers(40, 61))
        pools = [(tagged & ~gen, 0.25), (tagged & gen, 0.45), (conf, 0.2), (np.ones(pid.size, bool), 1.0)]
        picked: list[int] = []
        for mask, share in pools:
            cand = np.setdiff1d(np.flatnonzero(mask), picked)
            k = min(cand.size, int(round(share * size)), size - len(picked))
            picked.extend(rng.choice(cand, k, replace=False).tolist())
        for i in sorted(picked, key=lambda i: pid[i]):
            g = _grade(tax, page, tcat[i])
            if rng.random() < 0.05:
                g = int(np.clip(g + rng.choice([-1, 1]), 0, 3))
            out["category_id"].append(tax.ids[page])
            out["product_id"].append(pid[i])
            out["grade"].append(g)
    return pl.DataFrame(out, schema={"category_id": pl.Int64, "product_id": pl.Utf8, "grade": pl.Int64})
