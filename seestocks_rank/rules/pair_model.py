"""The learned offer matcher: which two offers are the same product.

A MiniLM cross-encoder (the relevance cross-encoder's machinery) reads both offers' text jointly (title,
brand, price) and a small gradient-boosted stack adds the lexical evidence a transformer reads poorly
(equal numbers and model codes, the price ratio); a lexical screen in front spares the cross-encoder the
plainly different pairs. Trained on labelled offer pairs in the :data:`PAIR_COLUMNS` format (public matching
sets, a catalog's own duplicate clusters). :mod:`seestocks_rank.rules.offer_matching` serves it in the rules.
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
from seestocks_rank.rules.dedup import LEXICAL_PAIR_FEATURES, lexical_pair_features

__all__ = ["MANIFEST", "PAIR_COLUMNS", "PairModel", "offer_pairs", "offer_text", "pair_sides", "read_matching_pairs"]

PAIR_COLUMNS = ("title_a", "brand_a", "price_a", "title_b", "brand_b", "price_b", "label")
"""A labelled offer pair; ``brand_*`` and ``price_*`` may be empty; optional ``source`` names the set it
came from (reports only). ``label``: 1 same product, 0 different."""

MANIFEST = "offer_matcher.json"
ENCODER_DIR = "cross_encoder"
STACK_FILE = "stack.txt"
SCREEN_FILE = "screen.txt"
SCREEN_RECALL = 0.99  # share of the held-out same-product pairs the lexical screen lets through to the cross-encoder
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


def pair_sides(pairs: pl.DataFrame, side: str) -> pl.DataFrame:
    """``title, brand, price`` of one side (``a`` or ``b``) of a pairs frame (missing columns: null)."""
    return pairs.select(
        [
            (pl.col(f"{c}_{side}") if f"{c}_{side}" in pairs.columns else pl.lit(None, pl.String)).alias(c)
            for c in ("title", "brand", "price")
        ]
    ).with_columns(pl.col("price").cast(pl.Float64, strict=False))


def offer_pairs(offers: pl.DataFrame, i: np.ndarray, j: np.ndarray) -> pl.DataFrame:
    """The pair frame (``title_a, brand_a, price_a, title_b, ...``) of offers ``i[k]`` and ``j[k]`` of a frame
    with ``title`` and optional ``brand``, ``price`` (missing: null; a price that is not a number: null)."""
    side = offers.select(
        "title",
        pl.col("brand") if "brand" in offers.columns else pl.lit(None, pl.String).alias("brand"),
        (
            pl.col("price").cast(pl.Float64, strict=False) if "price" in offers.columns else pl.lit(None, pl.Float64)
        ).alias("price"),
    )
    return pl.concat([side[i].rename(lambda c: f"{c}_a"), side[j].rename(lambda c: f"{c}_b")], how="horizontal")


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
    """Same-product probability for offer pairs, a two-step cascade: a lexical LightGBM ``screen`` drops
    the pairs that are plainly different products (its ``screen_cut`` lets through ``SCREEN_RECALL`` of the
    same-product pairs it was validated on; the rest get probability 0), then the cross-encoder's logit and
    the lexical features go through a small LightGBM ``stack`` (None: the logit's sigmoid). Pairs at or
    above ``threshold`` are matches."""

    cross_encoder: object
    stack: object | None = None
    threshold: float = 0.5
    version: str = "untrained"
    report: dict = field(default_factory=dict)
    screen: object | None = None
    screen_cut: float = 0.0

    @staticmethod
    def _lexical(a: pl.DataFrame, b: pl.DataFrame) -> np.ndarray:
        return lexical_pair_features(
            a.get_column("title").fill_null(""),
            a.get_column("price").to_numpy(),
            b.get_column("title").fill_null(""),
            b.get_column("price").to_numpy(),
        )

    def features(self, pairs: pl.DataFrame) -> np.ndarray:
        """``[n, len(STACK_FEATURES)]``: the cross-encoder's logit on both offers' text, then the lexical
        pair features of their titles and prices."""
        a, b = pair_sides(pairs, "a"), pair_sides(pairs, "b")
        logits = self.cross_encoder.score(_texts(a), _texts(b)) if pairs.height else np.zeros(0, np.float32)
        return np.column_stack([logits.astype(np.float64), self._lexical(a, b)])

    def proba_from_features(self, features: np.ndarray) -> np.ndarray:
        if self.stack is None:
            return 1.0 / (1.0 + np.exp(-features[:, 0]))
        return self.stack.predict(features)

    def proba(self, pairs: pl.DataFrame) -> np.ndarray:
        """Same-product probability per row of a frame with ``title_a, title_b`` (+ brand, price); the
        cross-encoder reads only the pairs the screen lets through."""
        a, b = pair_sides(pairs, "a"), pair_sides(pairs, "b")
        lexical = self._lexical(a, b)
        through = (
            np.ones(pairs.height, bool) if self.screen is None else self.screen.predict(lexical) >= self.screen_cut
        )
        out = np.zeros(pairs.height)
        if through.any():
            rows = pl.Series(through)
            logits = self.cross_encoder.score(_texts(a.filter(rows)), _texts(b.filter(rows)))
            out[through] = self.proba_from_features(np.column_stack([logits.astype(np.float64), lexical[through]]))
        return out

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
        cross_encoder: object | None = None,
        serve_int8: bool = True,
    ) -> PairModel:
        """Fine-tune the cross-encoder on ``1 - stack_share`` of the pairs (each pair's sides in a random
        order, so the model reads them symmetrically), then fit the stack on the rest from the cross-encoder's
        scores on pairs it never saw; the threshold maximises F1 on the stack's own out-of-fold predictions.
        ``cross_encoder``: an untrained model to fine-tune instead of MiniLM (tests pass a small stand-in).
        ``serve_int8``: the model will be served int8 on CPU (:meth:`load`'s default), so the stack learns
        from the int8 model's logits, not the float ones it would never see."""
        import lightgbm as lgb

        from seestocks_rank.models.cross_encoder import CrossEncoder

        if pairs.height < 20 or pairs.get_column("label").n_unique() < 2:
            raise InputError("matching pairs: need at least 20 labelled pairs with both labels to train a matcher")
        rng = np.random.default_rng(seed)
        held = rng.random(pairs.height) < stack_share
        fit, stack_rows = pairs.filter(pl.Series(~held)), pairs.filter(pl.Series(held))
        swap = rng.random(fit.height) < 0.5
        a, b = _texts(pair_sides(fit, "a")), _texts(pair_sides(fit, "b"))
        left = [y if s else x for x, y, s in zip(a, b, swap, strict=True)]
        right = [x if s else y for x, y, s in zip(a, b, swap, strict=True)]
        encoder = cross_encoder or CrossEncoder.from_pretrained(
            base_model, device=device, max_length=max_length, seed=seed
        )
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
        served_as = encoder.quantized() if serve_int8 and getattr(encoder, "device", None) == "cpu" else encoder
        x = cls(served_as).features(stack_rows)
        model = cls(encoder)
        y = stack_rows.get_column("label").to_numpy().astype(np.int64)
        params = dict(n_estimators=150, learning_rate=0.05, num_leaves=15, min_child_samples=10, n_jobs=1, verbose=-1)
        folds = np.arange(len(y)) % 5
        rng.shuffle(folds)
        stack_oof, screen_oof = np.empty(len(y)), np.empty(len(y))
        for k in range(5):  # five fits of each small model on a few thousand rows
            m = folds == k
            stack_oof[m] = lgb.LGBMClassifier(**params).fit(x[~m], y[~m]).predict_proba(x[m])[:, 1]
            screen_oof[m] = lgb.LGBMClassifier(**params).fit(x[~m, 1:], y[~m]).predict_proba(x[m, 1:])[:, 1]
        model.screen_cut = float(np.quantile(screen_oof[y == 1], 1 - SCREEN_RECALL)) if y.any() else 0.0
        through = screen_oof >= model.screen_cut
        threshold, f1 = _best_f1_threshold(np.where(through, stack_oof, 0.0), y)
        model.stack = lgb.LGBMClassifier(**params).fit(x, y).booster_
        model.screen = lgb.LGBMClassifier(**params).fit(x[:, 1:], y).booster_
        model.threshold = threshold
        fingerprint = f"{encoder.version}:{model.stack.model_to_string()}:{model.screen.model_to_string()}"
        model.version = hashlib.sha1(fingerprint.encode()).hexdigest()[:12]
        model.report = {
            "pairs": pairs.height,
            "cross_encoder_pairs": fit.height,
            "stack_pairs": stack_rows.height,
            "epochs": round(train_report.epochs, 2),
            "train_seconds": round(train_report.seconds, 1),
            "pairs_per_second": round(train_report.pairs_per_second, 1),
            "threshold": round(threshold, 3),
            "stack_out_of_fold_f1": round(f1, 4),
            "screen_cut": round(model.screen_cut, 4),
            "screen_pass_share": round(float(through.mean()), 4),
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
        if self.screen is not None:
            self.screen.save_model(str(tmp / SCREEN_FILE))
        manifest = {
            "version": self.version,
            "threshold": self.threshold,
            "screen_cut": self.screen_cut,
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
        stack, screen = (lgb.Booster(model_file=str(folder / f)) if (folder / f).exists() else None
                         for f in (STACK_FILE, SCREEN_FILE))  # fmt: skip
        encoder = CrossEncoder.load(folder / ENCODER_DIR, device=device, quantize=quantize)
        return cls(
            encoder,
            stack,
            float(manifest["threshold"]),
            manifest["version"],
            manifest.get("report", {}),
            screen,
            float(manifest.get("screen_cut", 0.0)),
        )
