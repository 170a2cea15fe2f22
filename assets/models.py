"""The trained models the pipeline serves, as versioned assets: the fine-tuned vision-language model, the
cross-encoder and the fusion ranker. Each asset's table is the registry row the stages read."""

import base64
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl

from assets._metadata import timed
from resources import (
    CatalogContextResource,
    CrossEncoderResource,
    InputsResource,
    OfferMatcherResource,
    RankingSettings,
    StorageResource,
    VisionModelResource,
)
from seestocks_rank.evaluation.out_of_fold import (
    OUT_OF_FOLD_FILE,
    fit_cross_encoder_out_of_fold,
    leak_free_cross_encoder_scores,
    saved_out_of_fold,
    write_out_of_fold,
)
from seestocks_rank.inputs.judgments import judged_pairs
from seestocks_rank.models.cross_encoder import META_FILE as CROSS_ENCODER_META_FILE
from seestocks_rank.models.images import image_stamp
from seestocks_rank.models.registry import registry_row
from seestocks_rank.models.vision import architecture_name
from seestocks_rank.models.vlm_cadence import (
    decide,
    install,
    pair_keys,
    read_pairs,
    read_served,
    setup_key,
    staging_folder,
    write_pairs,
    write_served,
)
from seestocks_rank.models.vlm_training import (
    CHECKPOINT_FILE,
    LOSS_CURVE_FILE,
    META_FILE,
    save_training,
    train_contrastive,
    training_version,
)
from seestocks_rank.reranking.calibration import reliability_plot
from seestocks_rank.reranking.features import candidate_features
from seestocks_rank.reranking.ranker import PAGE_Z_SUFFIX, train_served_ranker
from seestocks_rank.reranking.signals import add_cross_encoder_scores
from seestocks_rank.retrieval.centroids import page_prompt
from seestocks_rank.rules.pair_model import MANIFEST as OFFER_MATCHER_MANIFEST
from seestocks_rank.rules.pair_model import PairModel, read_matching_pairs
from seestocks_rank.store.embedding_store import EmbeddingStore


def _png_markdown(path: Path) -> dg.MetadataValue:
    data = base64.b64encode(path.read_bytes()).decode()
    return dg.MetadataValue.md(f"![training loss](data:image/png;base64,{data})\n\n`{path}`")


@dg.asset(kinds={"pytorch", "parquet"})
def vlm_checkpoint(
    context: dg.AssetExecutionContext,
    catalog: pl.DataFrame,
    vision: VisionModelResource,
    storage: StorageResource,
) -> pl.DataFrame:
    """open_clip fine-tuned contrastively on the catalog's (image, title) pairs, from ``checkpoint_path`` or
    from random initialisation, saved under ``models/vlm/<version>/`` (the version hashes the pairs, the
    architecture, the start checkpoint and the training settings) with the keys of the pairs it saw.

    The served model (``models/vlm/served.json``) is kept until ``retrain`` is set, the training setup
    changes or more than ``drift_threshold`` of the catalog's pairs are new to it (see
    :mod:`seestocks_rank.models.vlm_cadence`): a night in between re-embeds only new or changed images.

    One registry row: ``status`` is ``kept`` (the served model, within the drift threshold), ``trained``,
    ``reused`` (an identical earlier training), ``configured`` (fine-tuning off: the configured checkpoint as
    is) or ``skipped`` (no images, or the image path is off); ``path`` is what ``product_embeddings`` loads
    (null: text only)."""
    arch = architecture_name(vision.architecture)
    threshold = vision.checked_drift_threshold()
    if not vision.enabled_for(catalog):
        context.add_output_metadata({"status": "skipped", "reason": f"mode={vision.mode}, no image paths in catalog"})
        return registry_row("skipped", details={"architecture": arch})
    if not vision.fine_tune:
        path = vision.checkpoint_path or None
        context.add_output_metadata({"status": "configured", "path": str(path)})
        return registry_row(
            "configured", path=path, version=vision.model(path).model_version, details={"architecture": arch}
        )

    pairs = (
        catalog.filter(pl.col("image_path").is_not_null()).unique(["image_path", "title"]).sort("image_path", "title")
    )
    paths, titles = pairs.get_column("image_path").to_list(), pairs.get_column("title").to_list()
    config = vision.train_config()
    start = vision.checkpoint_path or None
    version = training_version(arch, start, paths, titles, config)
    setup = setup_key(arch, vision.model(start).model_version, config)
    keys = pair_keys(paths, titles, [image_stamp(p) for p in paths])
    root = storage.root.vision_models
    served = read_served(root, required=(CHECKPOINT_FILE, META_FILE))
    decision = decide(
        keys,
        setup,
        served_setup=served.setup if served else None,
        served_pairs=read_pairs(served.folder) if served else None,
        retrain=vision.retrain,
        threshold=threshold,
    )
    cadence = {
        "reason": decision.reason,
        "drift_threshold": threshold,
        "pairs": len(keys),
        **(
            {
                "drift_share": round(decision.drift.new_share, 4),
                "new_pairs": decision.drift.new,
                "removed_pairs": decision.drift.removed,
                "removed_share": round(decision.drift.removed_share, 4),
            }
            if decision.drift is not None
            else {}
        ),
    }
    context.log.info(f"vlm_checkpoint: {'keep' if decision.keep else 'train'} ({decision.reason})")
    if decision.keep:
        return _existing_model(context, "kept", served.version, served.folder, arch, cadence)

    folder = root / version
    if not vision.retrain and _same_training(folder, setup):
        if read_pairs(folder) is None:  # trained before the cadence: its pairs are today's by its version
            write_pairs(folder, keys)
        write_served(root, version, setup)
        return _existing_model(context, "reused", version, folder, arch, cadence)

    model = vision.model(start, training=True).loaded
    timings: dict[str, float] = {}
    with timed(timings, "train_s"):
        result = train_contrastive(model, paths, titles, config, log=context.log.info)
    staging = staging_folder(root, version)  # written whole, then renamed into place: never served half-written
    save_training(
        model,
        result,
        staging,
        architecture=vision.architecture,
        meta={"version": version, "start_checkpoint": start, "setup": setup, "pairs": len(paths)},
    )
    write_pairs(staging, keys)
    install(staging, folder)
    write_served(root, version, setup)  # last: the pointer names a whole model
    checkpoint = folder / CHECKPOINT_FILE
    summary = result.summary()
    context.add_output_metadata(
        {
            "status": "trained",
            "version": version,
            "path": dg.MetadataValue.path(str(checkpoint)),
            "loss_curve": _png_markdown(folder / LOSS_CURVE_FILE),
            "train": dg.MetadataValue.json(summary),
            "device": model.device,
            **cadence,
            **timings,
        }
    )
    return registry_row("trained", version=version, path=str(checkpoint), trained_at=datetime.now(UTC),
                        metrics=summary, details={"architecture": arch})  # fmt: skip


def _same_training(folder: Path, setup: str) -> bool:
    """Whether ``folder`` holds a whole earlier training with this setup (a folder from before the cadence
    has no setup in its meta: its version, which hashes the start checkpoint's path, decides)."""
    if not ((folder / CHECKPOINT_FILE).exists() and (folder / META_FILE).exists()):
        return False
    return json.loads((folder / META_FILE).read_text()).get("setup", setup) == setup


def _existing_model(
    context: dg.AssetExecutionContext, status: str, version: str, folder: Path, arch: str, cadence: dict
) -> pl.DataFrame:
    """The registry row (and metadata) of a model already on disk: ``kept`` or ``reused``."""
    meta = json.loads((folder / META_FILE).read_text())
    checkpoint = folder / CHECKPOINT_FILE
    curve = folder / LOSS_CURVE_FILE
    context.add_output_metadata(
        {
            "status": status,
            "version": version,
            "path": dg.MetadataValue.path(str(checkpoint)),
            **({"loss_curve": _png_markdown(curve)} if curve.exists() else {}),
            "train": dg.MetadataValue.json(meta.get("train", {})),
            **cadence,
        }
    )
    trained_at = datetime.fromtimestamp(checkpoint.stat().st_mtime, UTC)
    return registry_row(status, version=version, path=str(checkpoint), trained_at=trained_at,
                        metrics=meta.get("train", {}), details={"architecture": arch})  # fmt: skip


@dg.asset(kinds={"lightgbm", "parquet"}, deps=["cross_encoder_model"])
def fusion_model(
    context: dg.AssetExecutionContext,
    judgments: pl.DataFrame,
    catalog: pl.DataFrame,
    product_embeddings: EmbeddingStore,
    taxonomy_centroids: pl.DataFrame,
    taxonomy: pl.DataFrame,
    predicted_categories: pl.DataFrame,
    cross_encoder: CrossEncoderResource,
    storage: StorageResource,
    settings: RankingSettings,
    catalog_context: CatalogContextResource,
) -> pl.DataFrame:
    """The served ranker, trained on the judged (page, product) pairs and saved under
    ``models/fusion/<version>/``: chosen by the same cross-validated rule as ``seestocks-rank train``
    (cross-encoder alone, linear blends, LightGBM), reading out-of-fold cross-encoder scores (no pair is
    scored by a model that trained on it), with its confidence calibrated on held-out scores. Metadata:
    every candidate's held-out figures, the held-out calibration error and a reliability plot. The table
    is the model registry row the scoring stage reads."""
    pages = taxonomy_centroids.get_column("category_id")
    scoring = catalog_context.for_run(context.run_id, catalog, product_embeddings, taxonomy, predicted_categories)
    judged = candidate_features(judged_pairs(judgments, catalog, pages), scoring, taxonomy_centroids)
    out_of_fold, trained_on_judgments = saved_out_of_fold(cross_encoder.folder)
    with storage.cached_cross_encoder(cross_encoder.load()) as model:

        def score(rows: pl.DataFrame) -> np.ndarray:  # the served model, on the pairs it never trained on
            scored = add_cross_encoder_scores(rows, scoring.products, taxonomy_centroids, model)
            return scored.get_column("cross_encoder_score").to_numpy()

        judged, sources = leak_free_cross_encoder_scores(
            judged, out_of_fold, trained_on_judgments=trained_on_judgments, score=score if model is not None else None
        )
    timings: dict[str, float] = {}
    with timed(timings, "train_s"):
        served = train_served_ranker(judged, seed=settings.seed)
    model, record = served.model, served.record
    folder = model.save(storage.root.fusion_models / model.version)
    if served.held_out_scores.height:
        served.held_out_scores.write_parquet(folder / HELD_OUT_SCORES_FILE)
    selection, calibration = record["selection"], record["calibration"]
    (folder / "selection.json").write_text(json.dumps(record, indent=2, default=float))
    plot = reliability_plot(calibration)
    (folder / "reliability.png").write_bytes(plot)
    importances = {name.removesuffix(PAGE_Z_SUFFIX): share for name, share in model.importances().items()}
    context.add_output_metadata(
        {
            "version": model.version,
            "chosen": selection["chosen"],
            "judged_pairs": judged.height,
            "judgments_unmatched": judgments.height
            - judgments.join(catalog.select("product_id"), on="product_id", how="semi").height,
            "cross_encoder_scores": dg.MetadataValue.json(sources),
            "held_out": dg.MetadataValue.json(selection["held_out"]),
            **({"held_out_ece": float(calibration["ece"])} if calibration["ece"] is not None else {}),
            "ece_if_fitted_on_same_rows": float(calibration["ece_fitted_on_same_rows"]),
            "reliability": dg.MetadataValue.md(
                f"![reliability](data:image/png;base64,{base64.b64encode(plot).decode()})"
            ),
            "feature_importance": dg.MetadataValue.json(importances),
            **timings,
            "path": dg.MetadataValue.path(str(folder)),
        }
    )
    return registry_row(
        "trained",
        version=model.version,
        path=str(folder),
        trained_at=datetime.now(UTC),
        metrics={**model.metrics, "held_out_ece": calibration["ece"]},
        details={
            "chosen": selection["chosen"],
            "features": model.features,
            "feature_importance": importances,
            "cross_encoder_scores": sources,
        },
    )


HELD_OUT_SCORES_FILE = "held_out_scores.parquet"  # in the served ranker's folder: its held-out judged scores


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
    knobs = (settings.cross_encoder_minutes, settings.cross_encoder_epochs, settings.cross_encoder_folds, settings.seed)
    h = hashlib.sha1(":".join(map(str, knobs)).encode())
    for row in rows.select("query", "title", "grade").iter_rows():
        h.update(repr(row).encode())
    return h.hexdigest()[:12]


@dg.asset(kinds={"pytorch"})
def cross_encoder_model(
    context: dg.AssetExecutionContext,
    judgments: pl.DataFrame,
    catalog: pl.DataFrame,
    category_pages: pl.DataFrame,
    cross_encoder: CrossEncoderResource,
    settings: RankingSettings,
) -> pl.DataFrame:
    """Fine-tune the MiniLM cross-encoder on the judgments (page prompt, title, grade) within
    ``cross_encoder_minutes``: ``cross_encoder_folds`` fold models (grouped by page) first score the pairs
    they did not train on, for the fusion (``out_of_fold.parquet``), then the served model is refit on all
    of them. Reuses the saved model when the training data and settings are unchanged. With
    ``cross_encoder_minutes = 0`` it only registers the model already in the folder (for instance one
    trained on other judgments with ``seestocks-rank train``)."""
    folder = cross_encoder.folder
    rows = pipeline_judgments(judgments, catalog, category_pages)
    fingerprint = _fingerprint(rows, settings)
    meta_path = folder / CROSS_ENCODER_META_FILE
    manifest = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    status = "reused"
    # a run killed between saving the model and its out-of-fold scores retrains rather than feed the fusion
    # in-sample scores
    stale = manifest.get("training_data") != fingerprint or saved_out_of_fold(folder)[0] is None
    if settings.cross_encoder_minutes > 0 and stale:
        model, out_of_fold, record = fit_cross_encoder_out_of_fold(
            rows,
            folds=settings.cross_encoder_folds,
            budget_s=settings.cross_encoder_minutes * 60,
            max_epochs=settings.cross_encoder_epochs,
            seed=settings.seed,
            device=cross_encoder.compute.torch_device(),
            log=context.log.info,
        )
        model.save(folder, extra={"training_data": fingerprint, **record})
        write_out_of_fold(out_of_fold, folder / OUT_OF_FOLD_FILE, model.version)
        manifest = json.loads(meta_path.read_text())
        status = "trained"
    elif not manifest:
        status = "absent"
    context.add_output_metadata(
        {
            "status": status,
            "version": manifest.get("version", "none"),
            "path": dg.MetadataValue.path(str(folder)),
            "train_pairs": int(manifest.get("train_pairs", 0)),
            "out_of_fold_folds": int(manifest.get("folds", 0)),
            "pairs_per_second": float(manifest.get("pairs_per_second", 0.0)),
            "epochs": float(manifest.get("epochs", 0.0)),
            "training_precision": str(manifest.get("precision", "float32")),
        }
    )
    trained_at = datetime.fromtimestamp(meta_path.stat().st_mtime, UTC) if manifest else None
    figures = ("train_pairs", "folds", "pairs_per_second", "epochs", "seconds", "precision")
    return registry_row(
        status,
        version=manifest.get("version"),
        path=str(folder),
        trained_at=trained_at,
        metrics={k: manifest[k] for k in figures if k in manifest},
    )


@dg.asset(kinds={"pytorch", "lightgbm"})
def offer_matcher_model(
    context: dg.AssetExecutionContext,
    inputs: InputsResource,
    offer_matcher: OfferMatcherResource,
    settings: RankingSettings,
) -> pl.DataFrame:
    """Train the cross-retailer offer matcher (MiniLM cross-encoder on both offers' text + a lexical
    LightGBM stack) on the matching pairs input within ``matcher_minutes``; reused while the pairs and the
    settings are unchanged. Without a pairs file it registers the folder's model, if any; with none the
    rules' dedup uses the strict duplicate test."""
    folder = offer_matcher.folder
    meta_path = folder / OFFER_MATCHER_MANIFEST
    manifest = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    pairs_path = inputs.matching_pairs_path
    status = "configured" if manifest else "absent"
    if pairs_path is not None and settings.matcher_minutes > 0:
        knobs = f"{settings.matcher_minutes}:{settings.matcher_epochs}:{settings.seed}"
        fingerprint = hashlib.sha1(pairs_path.read_bytes() + knobs.encode()).hexdigest()[:12]
        if manifest.get("training_data") == fingerprint:
            status = "reused"
        else:
            pairs = read_matching_pairs(pairs_path)
            model = PairModel.train(
                pairs,
                budget_seconds=settings.matcher_minutes * 60,
                max_epochs=settings.matcher_epochs,
                device=offer_matcher.compute.torch_device(),
                seed=settings.seed,
                log=context.log.info,
                serve_int8=offer_matcher.cpu_int8,
            )
            model.save(folder, extra={"training_data": fingerprint, "pairs_file": str(pairs_path)})
            manifest = json.loads(meta_path.read_text())
            status = "trained"
    report = manifest.get("report", {})
    context.add_output_metadata(
        {
            "status": status,
            "version": manifest.get("version", "none"),
            "path": dg.MetadataValue.path(str(folder)),
            "threshold": float(manifest.get("threshold", 0.0)),
            **{k: v for k, v in report.items() if isinstance(v, int | float)},
        }
    )
    trained_at = datetime.fromtimestamp(meta_path.stat().st_mtime, UTC) if manifest else None
    return registry_row(
        status,
        version=manifest.get("version"),
        path=str(folder) if manifest else None,
        trained_at=trained_at,
        metrics=report,
        details={"threshold": manifest.get("threshold"), "features": manifest.get("stack_features")},
    )
