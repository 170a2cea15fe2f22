"""Learned cross-retailer offer matching: which offers of different retailers are the same product.

A MiniLM cross-encoder (the relevance cross-encoder's machinery) reads both offers' text jointly (title,
brand, price) and a small gradient-boosted stack adds the lexical evidence a transformer reads poorly
(equal numbers and model codes, the price ratio). Trained on labelled offer pairs in the
:data:`PAIR_COLUMNS` format (public matching sets, a catalog's own duplicate clusters), it serves the
business rules through :func:`score_offer_pairs` (incremental: a pair is re-scored only when one of its
offers' text or the model changed) and :func:`match_groups` (only offers of different retailers linked).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from seestocks_rank.inputs.errors import InputError
from seestocks_rank.rules.dedup import LEXICAL_PAIR_FEATURES, components, lexical_pair_features

__all__ = [
    "PAIR_COLUMNS",
    "PairModel",
    "blocked_pairs",
    "match_groups",
    "offer_keys",
    "offer_text",
    "read_matching_pairs",
    "score_offer_pairs",
]

PAIR_COLUMNS = ("title_a", "brand_a", "price_a", "title_b", "brand_b", "price_b", "label")
"""A labelled offer pair; ``brand_*`` and ``price_*`` may be empty; optional ``source`` names the set it
came from (reports only). ``label``: 1 same product, 0 different."""

MANIFEST = "offer_matcher.json"
ENCODER_DIR = "cross_encoder"
STACK_FILE = "stack.txt"
STACK_FEATURES = ("cross_encoder_logit", *LEXICAL_PAIR_FEATURES)


def offer_text(title: pl.Expr, brand: pl.Expr, price: pl.Expr) -> pl.Expr:
    """One offer as the matcher reads it: ``title | brand | price`` (brand left out when the title already
    names it, empty parts dropped). Language-neutral: no stemming, no stop words."""
    title = title.cast(pl.String).fill_null("").str.strip_chars()
    brand = brand.cast(pl.String).fill_null("").str.strip_chars()
    named = (brand == "") | title.str.to_lowercase().str.contains(brand.str.to_lowercase(), literal=True)
    price_text = pl.when(price.cast(pl.Float64, strict=False).is_not_null()).then(
        pl.format("{}", price.cast(pl.Float64, strict=False).round(2))
    )
    parts = pl.concat_list(title, pl.when(named).then(None).otherwise(brand), price_text)
    return parts.list.drop_nulls().list.join(" | ")


def _side(pairs: pl.DataFrame, side: str) -> pl.DataFrame:
    """``title, brand, price`` of one side (``a`` or ``b``) of a pairs frame (missing columns: null)."""
    return pairs.select(
        [
            (pl.col(f"{c}_{side}") if f"{c}_{side}" in pairs.columns else pl.lit(None, pl.String)).alias(c)
            for c in ("title", "brand", "price")
        ]
    ).with_columns(pl.col("price").cast(pl.Float64, strict=False))


def _texts(side: pl.DataFrame) -> list[str]:
    return side.select(offer_text(pl.col("title"), pl.col("brand"), pl.col("price"))).to_series().to_list()


def read_matching_pairs(path: str | Path) -> pl.DataFrame:
    """Labelled pairs from CSV or Parquet in the :data:`PAIR_COLUMNS` format. Raises :class:`InputError`
    naming the column, or the first rows, that break the contract."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"matching pairs {path}: no such file")
    df = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path, infer_schema=False)
    missing = [c for c in ("title_a", "title_b", "label") if c not in df.columns]
    if missing:
        raise InputError(
            f"matching pairs {path}: missing column(s) {', '.join(missing)} (need {', '.join(PAIR_COLUMNS)})"
        )
    df = df.with_row_index("row", offset=2 if path.suffix != ".parquet" else 0)
    label = pl.col("label").cast(pl.String).str.strip_chars()
    bad_label = df.filter(~label.is_in(["0", "1"]) | label.is_null())
    if bad_label.height:
        rows = ", ".join(map(str, bad_label.get_column("row").head(5).to_list()))
        raise InputError(f"matching pairs {path}: field label must be 0 or 1 (row {rows})")
    for col in ("title_a", "title_b"):
        empty = df.filter(pl.col(col).cast(pl.String).fill_null("").str.strip_chars() == "")
        if empty.height:
            rows = ", ".join(map(str, empty.get_column("row").head(5).to_list()))
            raise InputError(f"matching pairs {path}: field {col} is empty (row {rows})")
    for col in ("price_a", "price_b"):
        if col in df.columns:
            text = pl.col(col).cast(pl.String).str.strip_chars()
            bad = df.filter((text != "") & text.cast(pl.Float64, strict=False).is_null())
            if bad.height:
                rows = ", ".join(map(str, bad.get_column("row").head(5).to_list()))
                raise InputError(f"matching pairs {path}: field {col} is not a number (row {rows})")
    columns = [c for c in (*PAIR_COLUMNS, "source") if c in df.columns]
    return df.select(columns).with_columns(
        label.cast(pl.Int8),
        *[
            pl.col(c).cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
            for c in ("price_a", "price_b")
            if c in df.columns
        ],
    )


def _best_f1_threshold(proba: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The probability cut with the highest F1 on labelled pairs, and that F1."""
    grid = np.linspace(0.05, 0.95, 91)
    truth = labels.astype(bool)
    f1 = []
    for t in grid:  # 91 cuts, vectorised over pairs
        pred = proba >= t
        tp = float((pred & truth).sum())
        f1.append(0.0 if tp == 0 else 2 * tp / (pred.sum() + truth.sum()))
    best = int(np.argmax(f1))
    return float(grid[best]), float(f1[best])


@dataclass
class PairModel:
    """Same-product probability for offer pairs: cross-encoder logit + lexical features through a small
    LightGBM stack (``stack`` None: the logit's sigmoid). Pairs at or above ``threshold`` are matches."""

    cross_encoder: object
    stack: object | None = None
    threshold: float = 0.5
    version: str = "untrained"
    report: dict = field(default_factory=dict)

    def features(self, pairs: pl.DataFrame) -> np.ndarray:
        """``[n, len(STACK_FEATURES)]``: the cross-encoder's logit on both offers' text, then the lexical
        pair features of their titles and prices."""
        a, b = _side(pairs, "a"), _side(pairs, "b")
        logits = self.cross_encoder.score(_texts(a), _texts(b)) if pairs.height else np.zeros(0, np.float32)
        lexical = lexical_pair_features(
            a.get_column("title").fill_null(""),
            a.get_column("price").to_numpy(),
            b.get_column("title").fill_null(""),
            b.get_column("price").to_numpy(),
        )
        return np.column_stack([logits.astype(np.float64), lexical])

    def proba_from_features(self, features: np.ndarray) -> np.ndarray:
        if self.stack is None:
            return 1.0 / (1.0 + np.exp(-features[:, 0]))
        return self.stack.predict(features)

    def proba(self, pairs: pl.DataFrame) -> np.ndarray:
        """Same-product probability per row of a frame with ``title_a, title_b`` (+ brand, price)."""
        return self.proba_from_features(self.features(pairs))

    @classmethod
    def train(
        cls,
        pairs: pl.DataFrame,
        *,
        budget_seconds: float,
        max_epochs: float = 3.0,
        stack_share: float = 0.2,
        learning_rate: float = 4e-5,
        max_length: int = 96,
        device: str = "auto",
        base_model: str | Path | None = None,
        seed: int = 0,
        log=None,  # noqa: ANN001
    ) -> PairModel:
        """Fine-tune the cross-encoder on ``1 - stack_share`` of the pairs (each pair's sides in a random
        order, so the model reads them symmetrically), then fit the stack on the rest from the cross-encoder's
        scores on pairs it never saw; the threshold maximises F1 on the stack's own out-of-fold predictions."""
        import lightgbm as lgb

        from seestocks_rank.models.cross_encoder import CrossEncoder

        if pairs.height < 20 or pairs.get_column("label").n_unique() < 2:
            raise InputError("matching pairs: need at least 20 labelled pairs with both labels to train a matcher")
        rng = np.random.default_rng(seed)
        held = rng.random(pairs.height) < stack_share
        fit, stack_rows = pairs.filter(pl.Series(~held)), pairs.filter(pl.Series(held))
        swap = rng.random(fit.height) < 0.5
        a, b = _texts(_side(fit, "a")), _texts(_side(fit, "b"))
        left = [y if s else x for x, y, s in zip(a, b, swap, strict=True)]
        right = [x if s else y for x, y, s in zip(a, b, swap, strict=True)]
        encoder = CrossEncoder.from_pretrained(base_model, device=device, max_length=max_length, seed=seed)
        train_report = encoder.train(
            left,
            right,
            fit.get_column("label").to_numpy().astype(np.float32),
            budget_seconds=budget_seconds,
            max_epochs=max_epochs,
            learning_rate=learning_rate,
            seed=seed,
            log=log,
        )
        model = cls(encoder)
        x = model.features(stack_rows)
        y = stack_rows.get_column("label").to_numpy().astype(np.int64)
        params = dict(n_estimators=150, learning_rate=0.05, num_leaves=15, min_child_samples=10, verbose=-1)
        folds = np.arange(len(y)) % 5
        rng.shuffle(folds)
        out_of_fold = np.empty(len(y))
        for k in range(5):  # five stack fits on a few thousand rows
            m = folds == k
            out_of_fold[m] = lgb.LGBMClassifier(**params).fit(x[~m], y[~m]).predict_proba(x[m])[:, 1]
        threshold, f1 = _best_f1_threshold(out_of_fold, y)
        model.stack = lgb.LGBMClassifier(**params).fit(x, y).booster_
        model.threshold = threshold
        model.version = hashlib.sha1(f"{encoder.version}:{model.stack.model_to_string()}".encode()).hexdigest()[:12]
        model.report = {
            "pairs": pairs.height,
            "cross_encoder_pairs": fit.height,
            "stack_pairs": stack_rows.height,
            "epochs": round(train_report.epochs, 2),
            "train_seconds": round(train_report.seconds, 1),
            "pairs_per_second": round(train_report.pairs_per_second, 1),
            "threshold": round(threshold, 3),
            "stack_out_of_fold_f1": round(f1, 4),
        }
        return model

    def save(self, folder: str | Path, extra: dict | None = None) -> Path:
        """Cross-encoder, stack and manifest into ``folder`` (replaced atomically; the manifest last)."""
        folder = Path(folder)
        tmp = folder.with_name(f".{folder.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.cross_encoder.save(tmp / ENCODER_DIR)
        if self.stack is not None:
            self.stack.save_model(str(tmp / STACK_FILE))
        manifest = {
            "version": self.version,
            "threshold": self.threshold,
            "stack_features": list(STACK_FEATURES),
            "report": self.report,
            **(extra or {}),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
        return folder

    @classmethod
    def load(cls, folder: str | Path, *, device: str = "auto", quantize: bool = True) -> PairModel:
        """A saved matcher; on CPU its cross-encoder runs int8 (``quantize``)."""
        import lightgbm as lgb

        from seestocks_rank.models.cross_encoder import CrossEncoder

        folder = Path(folder)
        if not (folder / MANIFEST).exists():
            raise FileNotFoundError(f"no offer matcher in {folder} ({MANIFEST} missing)")
        manifest = json.loads((folder / MANIFEST).read_text())
        stack = lgb.Booster(model_file=str(folder / STACK_FILE)) if (folder / STACK_FILE).exists() else None
        encoder = CrossEncoder.load(folder / ENCODER_DIR, device=device, quantize=quantize)
        return cls(encoder, stack, float(manifest["threshold"]), manifest["version"], manifest.get("report", {}))


# ---------------------------------------------------------------------------- serving in the rules
def offer_keys(offers: pl.DataFrame) -> pl.Series:
    """A content key per offer (hash of the text the matcher reads): a pair is re-scored when it changes."""
    brand = pl.col("brand") if "brand" in offers.columns else pl.lit(None, pl.String)
    return offers.select(
        offer_text(pl.col("title"), brand, pl.col("price")).hash(seed=7).alias("offer_key")
    ).to_series()


def blocked_pairs(
    vectors: np.ndarray, retailers: np.ndarray, *, neighbours: int = 10, min_cosine: float = 0.6
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs ``(i, j)``, ``i < j``: ``j`` among ``i``'s nearest neighbours in the embedding index
    with cosine at least ``min_cosine``, of a different retailer (a retailer lists a product once)."""
    from seestocks_rank.retrieval.index import build_index

    n = len(vectors)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    index = build_index(vectors, kind="flat" if n <= 200_000 else "ivf")
    k = min(neighbours + 1, n)
    sims, nn = index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)
    src = np.repeat(np.arange(n), k)
    dst, sim = nn.ravel(), sims.ravel()
    shops = np.unique(np.asarray(retailers).astype(str), return_inverse=True)[1].ravel()
    ok = (dst >= 0) & (dst != src) & (sim >= min_cosine)
    ok[ok] &= shops[src[ok]] != shops[dst[ok]]
    pairs = np.unique(np.stack([np.minimum(src[ok], dst[ok]), np.maximum(src[ok], dst[ok])], axis=1), axis=0)
    return pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)


PAIR_SCORE_SCHEMA = {
    "offer_a": pl.String,
    "offer_b": pl.String,
    "key_a": pl.UInt64,
    "key_b": pl.UInt64,
    "model_version": pl.String,
    "probability": pl.Float64,
}


def score_offer_pairs(
    model: PairModel, offers: pl.DataFrame, i: np.ndarray, j: np.ndarray, previous: pl.DataFrame | None = None
) -> tuple[pl.DataFrame, int]:
    """Match probability of each candidate pair ``(offers[i], offers[j])``, reusing ``previous`` scores of a
    pair whose two offers' text and the model are unchanged. ``offers``: ``product_id, title, price``
    (+ ``brand``). Returns the scores (:data:`PAIR_SCORE_SCHEMA`) and how many pairs were scored anew."""
    keys = offer_keys(offers)
    ids = offers.get_column("product_id").cast(pl.String)
    current = pl.DataFrame(
        {
            "offer_a": ids.gather(i),
            "offer_b": ids.gather(j),
            "key_a": keys.gather(i),
            "key_b": keys.gather(j),
            "_i": i,
            "_j": j,
        }
    ).with_columns(pl.lit(model.version).alias("model_version"))
    on = ["offer_a", "offer_b", "key_a", "key_b", "model_version"]
    if previous is not None and previous.height:
        current = current.join(previous.select(*on, "probability"), on=on, how="left")
    else:
        current = current.with_columns(pl.lit(None, pl.Float64).alias("probability"))
    todo = current.filter(pl.col("probability").is_null())
    if todo.height:
        side = offers.select(
            "title", pl.col("brand") if "brand" in offers.columns else pl.lit(None, pl.String).alias("brand"), "price"
        )
        ta, tb = side[todo.get_column("_i").to_numpy()], side[todo.get_column("_j").to_numpy()]
        frame = pl.concat([ta.rename(lambda c: f"{c}_a"), tb.rename(lambda c: f"{c}_b")], how="horizontal")
        fresh = todo.with_columns(pl.Series("probability", model.proba(frame), pl.Float64))
        current = pl.concat([current.filter(pl.col("probability").is_not_null()), fresh]).sort("_i", "_j")
    return current.select(list(PAIR_SCORE_SCHEMA)).cast(PAIR_SCORE_SCHEMA), todo.height


def match_groups(offer_ids: pl.Series, retailers: np.ndarray, scores: pl.DataFrame, threshold: float) -> np.ndarray:
    """Group label per offer: offers linked by a pair at or above ``threshold``, transitively; pairs of
    one retailer are never linked (its near-identical titles are variants: sizes, colours, packs)."""
    positions = pl.DataFrame({"offer": offer_ids.cast(pl.String), "n": np.arange(len(offer_ids), dtype=np.int64)})
    linked = (
        scores.filter(pl.col("probability") >= threshold)
        .join(positions.rename({"offer": "offer_a", "n": "i"}), on="offer_a")
        .join(positions.rename({"offer": "offer_b", "n": "j"}), on="offer_b")
    )
    i, j = linked.get_column("i").to_numpy(), linked.get_column("j").to_numpy()
    shops = np.asarray(retailers).astype(str)
    keep = shops[i] != shops[j]
    return components(len(offer_ids), i[keep], j[keep])
