"""The relevance report: every ranker side by side on the pipeline's judgments."""

import base64
import dataclasses
import io

import dagster as dg
import numpy as np
import polars as pl

from assets._metadata import preview, timed
from assets.models import pipeline_judgments
from resources import CrossEncoderResource, StorageResource, TextModelResource
from seestocks_rank.evaluation.harness import RelevanceModels, evaluate


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
            **timings,
        }
    )
    return table
