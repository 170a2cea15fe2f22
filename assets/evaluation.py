"""The relevance report: every ranker side by side on the pipeline's judgments."""

import base64
import io
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl

from assets._metadata import preview, timed
from assets.models import HELD_OUT_SCORES_FILE, pipeline_judgments
from resources import CrossEncoderResource, StorageResource, TextModelResource
from seestocks_rank.evaluation.harness import evaluate
from seestocks_rank.evaluation.out_of_fold import leak_free_cross_encoder_scores, saved_out_of_fold


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


@dg.asset(kinds={"polars"}, deps=["cross_encoder_model"])
def relevance_report(
    context: dg.AssetExecutionContext,
    judgments: pl.DataFrame,
    catalog: pl.DataFrame,
    category_pages: pl.DataFrame,
    fusion_model: pl.DataFrame,
    text_model: TextModelResource,
    cross_encoder: CrossEncoderResource,
    storage: StorageResource,
) -> pl.DataFrame:
    """The served rankers on the judged pages, out of sample, side by side with the untrained ones (random,
    price, BM25, bi-encoder): the cross-encoder by its out-of-fold scores (the served model's own score
    only for pairs it never trained on) and the served fusion (``fusion``) by its held-out scores from the
    grouped cross-validation that chose it. NDCG@10, relevant@10 and bad pages@10, on all and on deep
    pages."""
    rows = pipeline_judgments(judgments, catalog, category_pages)
    scores, extra = {}, {}
    served = cross_encoder.load()
    if served is not None:
        out_of_fold, trained_on_judgments = saved_out_of_fold(cross_encoder.folder)
        judged = rows.with_columns(pl.col("query_id").alias("category_id"), pl.col("product_id").alias("offer_id"))
        with storage.cached_cross_encoder(served) as scorer:
            leak_free, sources = leak_free_cross_encoder_scores(
                judged,
                out_of_fold,
                trained_on_judgments=trained_on_judgments,
                score=lambda part: scorer.score(part["query"].to_list(), part["title"].to_list()),
            )
        scores["cross_encoder"] = leak_free.select(
            "query_id", "product_id", pl.col("cross_encoder_score").alias("score")
        )
        extra["cross_encoder_scores"] = dg.MetadataValue.json(sources)
    held_out_path = Path(fusion_model.get_column("path")[0]) / HELD_OUT_SCORES_FILE
    if held_out_path.exists():
        scores["fusion"] = pl.read_parquet(held_out_path).select(
            pl.col("category_id").cast(pl.Utf8).alias("query_id"), pl.col("offer_id").alias("product_id"), "score"
        )
    timings: dict[str, float] = {}
    with timed(timings, "evaluate_s"), storage.cached_text_encoder(text_model.encoder()) as encoder:
        result = evaluate(rows, encoder, None, scores=scores)
    table = pl.DataFrame(
        [
            {"ranker": name, "subset": subset, **values}
            for name, by_subset in result["rankers"].items()
            for subset, values in by_subset.items()
        ]
    )
    png = _bar_chart(result["rankers"])
    chart_path = storage.root.reports / "relevance_report.png"
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
            "out_of_sample": dg.MetadataValue.json(sorted(scores)),
            **extra,
            **timings,
        }
    )
    return table
