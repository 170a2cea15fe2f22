"""Relevance: the cross-encoder the features stage uses (a versioned artifact) and the relevance report
comparing rankers on judgments."""

import base64
import dataclasses
import hashlib
import io
import json
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl

from assets._metadata import preview, timed
from assets.features import RERANKING
from resources import CrossEncoderResource, RankingSettings, StorageResource, TextModelResource
from seestocks_rank.cross_encoder import MANIFEST, CrossEncoder
from seestocks_rank.judgments import judged_pairs
from seestocks_rank.relevance import RelevanceModels, evaluate
from seestocks_rank.retrieval import page_prompt


def pipeline_judgments(judgments: pl.DataFrame, catalog: pl.DataFrame, pages: pl.DataFrame) -> pl.DataFrame:
    """The pipeline's judgments in the evaluation format: each page is a query whose text is the
    page prompt the cross-encoder reads at serving time."""
    pairs = judged_pairs(judgments, catalog, pages.get_column("category_id"))
    prompts = pages.select("category_id", pl.col("path").map_elements(page_prompt, pl.Utf8).alias("query"))
    return (
        pairs.join(prompts, on="category_id")
        .join(catalog.select("offer_id", "title", "price", "retailer"), on="offer_id")
        .select(
            pl.col("category_id").cast(pl.Utf8).alias("query_id"),
            "query",
            pl.col("offer_id").alias("product_id"),
            "title",
            "grade",
            "price",
            "retailer",
        )
        .sort("query_id", "product_id")
    )


def _fingerprint(rows: pl.DataFrame, settings: RankingSettings) -> str:
    h = hashlib.sha1(f"{settings.cross_encoder_minutes}:{settings.cross_encoder_epochs}:{settings.seed}".encode())
    for row in rows.select("query", "title", "grade").iter_rows():
        h.update(repr(row).encode())
    return h.hexdigest()[:12]


@dg.asset(group_name=RERANKING, kinds={"pytorch"})
def cross_encoder_model(
    context: dg.AssetExecutionContext,
    judgments: pl.DataFrame,
    catalog: pl.DataFrame,
    category_pages: pl.DataFrame,
    cross_encoder: CrossEncoderResource,
    settings: RankingSettings,
) -> pl.DataFrame:
    """Fine-tune the MiniLM cross-encoder on the judgments (page prompt, title, grade) within
    ``cross_encoder_minutes``; reuses the saved model when the training data and settings are
    unchanged. With ``cross_encoder_minutes = 0`` it only registers the model already in the
    folder (for instance one trained on other judgments with ``seestocks-rank train``)."""
    folder = cross_encoder.folder
    rows = pipeline_judgments(judgments, catalog, category_pages)
    fingerprint = _fingerprint(rows, settings)
    manifest = json.loads((folder / MANIFEST).read_text()) if (folder / MANIFEST).exists() else {}
    status = "reused"
    if settings.cross_encoder_minutes > 0 and manifest.get("training_data") != fingerprint:
        lo, hi = float(rows["grade"].min()), float(rows["grade"].max())
        model = CrossEncoder.from_pretrained(device=cross_encoder.compute.torch_device(), seed=settings.seed)
        report = model.train(
            rows.get_column("query").to_list(),
            rows.get_column("title").to_list(),
            ((rows.get_column("grade") - lo) / max(hi - lo, 1e-9)).to_numpy(),
            budget_seconds=settings.cross_encoder_minutes * 60,
            max_epochs=settings.cross_encoder_epochs,
            seed=settings.seed,
            log=context.log.info,
        )
        model.save(folder, extra={"training_data": fingerprint, "train_pairs": rows.height, **report.__dict__})
        manifest = json.loads((folder / MANIFEST).read_text())
        status = "trained"
    elif not manifest:
        status = "absent"
    context.add_output_metadata(
        {
            "status": status,
            "version": manifest.get("version", "none"),
            "path": dg.MetadataValue.path(str(folder)),
            "train_pairs": int(manifest.get("train_pairs", 0)),
            "pairs_per_second": float(manifest.get("pairs_per_second", 0.0)),
            "epochs": float(manifest.get("epochs", 0.0)),
            "training_precision": str(manifest.get("precision", "float32")),
        }
    )
    return pl.DataFrame({"version": [manifest.get("version")], "path": [str(folder)], "status": [status]})


def _bar_chart(rankers: dict) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rankers)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, metric in zip(axes, ("ndcg@10", "bad_pages@10"), strict=True):
        x = np.arange(len(names))
        for offset, subset in ((-0.2, "all"), (0.2, "deep")):
            ax.bar(x + offset, [rankers[n][subset][metric] for n in names], width=0.4, label=f"{subset} queries")
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
        ax.set_title(metric + (" (lower is better)" if metric.startswith("bad") else ""))
        ax.set_ylim(0, 1)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


@dg.asset(group_name="analytics", kinds={"polars"}, deps=["cross_encoder_model"])
def relevance_report(
    context: dg.AssetExecutionContext,
    judgments: pl.DataFrame,
    catalog: pl.DataFrame,
    category_pages: pl.DataFrame,
    text_model: TextModelResource,
    cross_encoder: CrossEncoderResource,
    storage: StorageResource,
) -> pl.DataFrame:
    """Every ranker (random, price, BM25, bi-encoder, cross-encoder, fusion) on the judged pages,
    side by side: NDCG@10, relevant@10 and bad pages@10, on all and on deep pages. Texts and pairs the
    models saw on an earlier run are answered from the model cache."""
    rows = pipeline_judgments(judgments, catalog, category_pages)
    models_dir = cross_encoder.folder.parent
    models = (
        RelevanceModels.load(models_dir, device=cross_encoder.compute.torch_device()) if models_dir.exists() else None
    )
    timings: dict[str, float] = {}
    with (
        timed(timings, "evaluate_s"),
        storage.cached_text_encoder(text_model.encoder()) as encoder,
        storage.cached_cross_encoder(models.cross_encoder if models else None) as scorer,
    ):
        result = evaluate(rows, encoder, dataclasses.replace(models, cross_encoder=scorer) if models else None)
    table = pl.DataFrame(
        [
            {"ranker": name, "subset": subset, **values}
            for name, by_subset in result["rankers"].items()
            for subset, values in by_subset.items()
        ]
    )
    png = _bar_chart(result["rankers"])
    chart_path = Path(storage.root) / "reports" / "relevance_report.png"
    chart_path.parent.mkdir(parents=True, exist_ok=True)
    chart_path.write_bytes(png)
    context.add_output_metadata(
        {
            "table": preview(table, 40),
            "chart": dg.MetadataValue.md(f"![rankers](data:image/png;base64,{base64.b64encode(png).decode()})"),
            "chart_path": dg.MetadataValue.path(str(chart_path)),
            "relevant_min": result["relevant_min"],
            "irrelevant_max": result["irrelevant_max"],
            "judgments": result["judgments"],
            **timings,
        }
    )
    return table
