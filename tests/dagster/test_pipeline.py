"""The Dagster graph on a small generated catalog in a temp data root."""

import json
import re
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assets.definitions import build_resources, defs
from assets.partitions import CATEGORY_PAGES, page_ids
from assets.runner import materialize_all_pages
from resources import RankingSettings
from seestocks_rank.evaluation.out_of_fold import OUT_OF_FOLD_FILE, read_out_of_fold
from seestocks_rank.inputs.pages import page_id
from seestocks_rank.models.cross_encoder import META_FILE as CROSS_ENCODER_META_FILE
from seestocks_rank.reranking.signals import FEATURE_COLUMNS
from seestocks_rank.store.layout import DataRoot
from seestocks_rank.store.tables import TableStore
from tests.dagster.conftest import FAST_SETTINGS

PARTITIONED = ("candidate_sets", "cross_encoder_features", "fused_scores", "filtered_rankings")


def _metadata(instance: dg.DagsterInstance, asset: str) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_every_asset_materializes_and_checks_pass(pipeline_run):
    instance, result, _ = pipeline_run
    assert result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {
        "product_embeddings",
        "taxonomy_centroids",
        "predicted_categories",
        "fusion_model",
        "analyst_database",
        "page_reports",
        *PARTITIONED,
    } <= materialized
    checks = result.get_asset_check_evaluations()
    assert checks, "asset checks should have run"
    assert all(c.passed for c in checks), [c.check_name for c in checks if not c.passed]


def test_partitions_follow_the_category_pages(pipeline_run):
    instance, _, data_dir = pipeline_run
    pages = pl.read_csv(data_dir / "demo" / "category_pages.csv")
    keys = instance.get_dynamic_partitions(CATEGORY_PAGES)
    assert sorted(page_ids(keys)) == sorted(pages["category_id"])
    assert all(re.fullmatch(r"\d+-[a-z0-9-]+", k) for k in keys), keys  # "4283-tool-bags": findable by name
    store = TableStore(DataRoot.at(data_dir).tables)
    for asset in PARTITIONED:  # stored by category id, whatever the page's name
        stored = store.partition_index(asset).get_column("partition").to_list()
        assert sorted(stored) == sorted(str(c) for c in pages["category_id"])
        assert len(store.partition_files(asset)) == 1  # the whole run's pages in one batch file


def test_duckdb_has_rankings_for_every_active_page(pipeline_run):
    _, _, data_dir = pipeline_run
    with duckdb.connect(str(data_dir / "seestocks.duckdb"), read_only=True) as con:
        tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
        assert {"rankings", "naive_rankings", "page_exclusions", "quarantine", "catalog", "filtered_rankings"} <= tables
        pages = con.execute("select count(*) from category_pages").fetchone()[0]
        ranked = con.execute("select count(distinct category_id) from rankings").fetchone()[0]
        assert ranked == pages
        cols = {r[0] for r in con.execute("describe rankings").fetchall()}
        assert {"category_id", "category_path", "rank", "product_id", "title", "retailer", "price", "score"} <= cols
        # one analyst query from the README: the exclusions by reason
        reasons = dict(con.execute("select status, count(*) from page_exclusions group by 1").fetchall())
    assert reasons.get("duplicate", 0) > 0


def test_out_of_category_products_are_kept_off_the_pages_with_a_reason(pipeline_run):
    from seestocks_rank.inputs.taxonomy import Taxonomy

    _, _, data_dir = pipeline_run
    with duckdb.connect(str(data_dir / "seestocks.duckdb"), read_only=True) as con:
        flagged = pl.DataFrame(
            con.execute(
                "select category_id, offer_id, reason from page_exclusions where status = 'out_of_category'"
            ).fetchall(),
            schema=["category_id", "offer_id", "reason"],
            orient="row",
        )
        shown_flagged = con.execute(
            "select count(*) from rankings r join filtered_rankings f using (category_id, offer_id)"
            " where f.out_of_category_reason is not null"
        ).fetchone()[0]
    assert flagged.height > 0 and shown_flagged == 0
    signals = flagged.get_column("reason").str.extract(r"^(\w+):")
    assert signals.null_count() == 0 and set(signals.to_list()) <= {"title", "visual", "price"}
    # Candidates tagged within their page: the demo's mis-tagged ones are mostly flagged, the others rarely.
    store = TableStore(DataRoot.at(data_dir).tables)
    tree = Taxonomy.from_nodes(store.read("taxonomy"))
    truth = pl.read_parquet(data_dir / "demo" / "truth.parquet").select(
        pl.concat_str("retailer", "product_id", separator="|").alias("offer_id"), "true_category_id"
    )
    pairs = (
        store.read_partitions("filtered_rankings")
        .join(store.read("catalog").select("offer_id", "category_id"), on="offer_id", suffix="_tag")
        .join(truth, on="offer_id")
    )
    page, tag, true = (pairs.get_column(c).to_numpy() for c in ("category_id", "category_id_tag", "true_category_id"))
    tagged = tree.is_within(tag, page)
    belongs = tree.is_within(true, page)
    out = (pairs.get_column("status") == "out_of_category").to_numpy()
    recall, false_removal = out[tagged & ~belongs].mean(), out[tagged & belongs].mean()
    print(f"out_of_category: recall {recall:.3f}, false removal {false_removal:.3f} on {tagged.sum()} tagged pairs")
    assert recall > 0.5 and false_removal < 0.1


def test_retrieval_only_adds_to_what_the_tags_got_right(pipeline_run):
    """Every product tagged within a page (up to the per-page cap) is among the page's candidates."""
    from seestocks_rank.inputs.taxonomy import Taxonomy
    from seestocks_rank.retrieval.centroids import tagged_products

    instance, _, data_dir = pipeline_run
    store = TableStore(DataRoot.at(data_dir).tables)
    catalog, candidates = store.read("catalog"), store.read_partitions("candidate_sets")
    pages = candidates.select("category_id").unique()
    tagged = tagged_products(catalog, pages, Taxonomy.from_nodes(store.read("taxonomy")))
    cap = FAST_SETTINGS.candidates_per_page
    small = tagged.filter(pl.len().over("category_id") <= cap)
    assert small.height > 0
    assert small.join(candidates, on=["category_id", "offer_id"], how="anti").height == 0
    per_page = tagged.join(candidates, on=["category_id", "offer_id"], how="semi").group_by("category_id").len()
    assert per_page.get_column("len").max() <= 2 * cap  # found by the search, plus at most cap added
    assert candidates.select(pl.struct("category_id", "offer_id").is_unique().all()).item()
    searched = pages.height * min(cap, catalog.height)  # the search returns cap neighbours per page
    assert _metadata(instance, "candidate_sets")["tagged_added"] == candidates.height - searched


def test_every_offer_gets_a_predicted_category(pipeline_run):
    instance, _, data_dir = pipeline_run
    store = TableStore(DataRoot.at(data_dir).tables)
    catalog, predicted = store.read("catalog"), store.read("predicted_categories")
    assert predicted.height == catalog.height
    assert predicted.get_column("offer_id").sort().equals(catalog.get_column("offer_id").sort())
    taxonomy_ids = store.read("taxonomy").get_column("category_id")
    assert predicted.get_column("predicted_category_id").is_in(taxonomy_ids.implode()).all()
    features = store.read_partitions("cross_encoder_features")
    assert {"predicted_distance", "taxonomy_distance", "out_of_category_reason"} <= set(features.columns)
    assert features.get_column("predicted_distance").null_count() == 0
    fusion = _metadata(instance, "fusion_model")
    assert set(fusion["feature_importance"]) <= set(FEATURE_COLUMNS)  # blends' page z-scores named by signal
    assert "lightgbm" in fusion["held_out"] and fusion["chosen"] in fusion["held_out"]


def test_quarantine_holds_the_bad_rows(pipeline_run):
    instance, _, data_dir = pipeline_run
    quarantine = TableStore(DataRoot.at(data_dir).tables).read("quarantine")
    reasons = set(quarantine["reason"].str.split("; ").explode().to_list())
    assert {"missing_title", "non_positive_price", "unknown_category", "duplicate_offer"} <= reasons
    meta = _metadata(instance, "catalog")
    assert meta["quarantined"] == quarantine.filter(~pl.col("kept_without_image")).height > 0


def test_reranked_pages_hold_fewer_misplaced_products_than_naive(pipeline_run):
    from seestocks_rank.evaluation.report import comparison_report

    _, _, data_dir = pipeline_run
    metrics = comparison_report(DataRoot.at(data_dir), pages=[], k=10).metrics
    assert metrics["reranked"]["misplaced_share@10"] < metrics["naive"]["misplaced_share@10"] / 2
    assert metrics["reranked"]["pages_with_misplaced@10"] < metrics["naive"]["pages_with_misplaced@10"]


def test_rerun_is_incremental_and_deterministic(pipeline_run):
    instance, _, data_dir = pipeline_run
    store = TableStore(DataRoot.at(data_dir).tables)
    before = store.read_partitions("filtered_rankings").sort("category_id", "offer_id")
    result = materialize_all_pages(instance, build_resources(str(data_dir), FAST_SETTINGS))
    assert result.success
    meta = _metadata(instance, "product_embeddings")
    assert meta["encoded"] == 0 and meta["reused"] == meta["rows"]
    features = _metadata(instance, "cross_encoder_features")  # every pair was scored by the first run
    assert features["cross_encoder_pairs_scored"] == 0 and features["cross_encoder_pairs_reused"] > 0
    matches = _metadata(instance, "offer_matches")  # unchanged offers and matcher: no pair scored again
    assert matches["scored"] == 0 and matches["reused"] == matches["pairs"] > 0
    assert (data_dir / "cache" / "cross_encoder_scores.parquet").exists()
    assert (data_dir / "cache" / "text_vectors.parquet").exists()
    after = store.read_partitions("filtered_rankings").sort("category_id", "offer_id")
    assert after.drop("run_id").equals(before.drop("run_id"))  # cached scores and vectors are the models' own
    assert after.get_column("run_id").unique().to_list() == [result.run_id]  # each row says which run ranked it


def test_one_category_can_be_backfilled_alone(pipeline_run):
    instance, _, data_dir = pipeline_run
    store = TableStore(DataRoot.at(data_dir).tables)
    key = instance.get_dynamic_partitions(CATEGORY_PAGES)[0]
    other = instance.get_dynamic_partitions(CATEGORY_PAGES)[1]

    def entry(page: str) -> dict:
        stored = str(page_id(page))  # the table store keeps a page under its category id
        return store.partition_index("filtered_rankings").filter(pl.col("partition") == stored).row(0, named=True)

    other_before, key_before = entry(other), entry(key)
    job = defs.resolve_implicit_global_asset_job_def()
    selection = [dg.AssetKey(a) for a in PARTITIONED]
    result = job.get_subset(asset_selection=set(selection)).execute_in_process(
        instance=instance, resources=build_resources(str(data_dir), FAST_SETTINGS), partition_key=key
    )
    assert result.success
    assert entry(other) == other_before  # the other page still reads from the nightly batch
    assert entry(key)["file"] != key_before["file"]  # the backfilled page points at its new batch
    assert store.read_partitions("filtered_rankings", [str(page_id(key))]).height > 0


def test_a_failed_run_keeps_the_last_good_outputs(pipeline_run, tmp_path: Path):
    instance, _, data_dir = pipeline_run
    broken_root = tmp_path / "data"
    shutil.copytree(data_dir, broken_root)
    rankings_before = TableStore(DataRoot.at(broken_root).tables).read_partitions("filtered_rankings")
    # A catalog with the wrong schema stops the run at the catalog asset.
    catalog = pl.read_csv(broken_root / "demo" / "catalog.csv", infer_schema=False).drop("price")
    catalog.write_csv(broken_root / "demo" / "catalog.csv")
    result = materialize_all_pages(instance, build_resources(str(broken_root), FAST_SETTINGS), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "price" in str(failure.event_specific_data.error)
    assert TableStore(DataRoot.at(broken_root).tables).read_partitions("filtered_rankings").equals(rankings_before)
    with duckdb.connect(str(broken_root / "seestocks.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from rankings").fetchone()[0] > 0


@pytest.mark.parametrize("job_name", ["nightly_rankings", "sharded_embeddings"])
def test_jobs_resolve(job_name):
    assert defs.resolve_job_def(job_name) is not None


def test_definitions_are_loadable():
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    lineage = [
        "product_embeddings",
        "taxonomy_centroids",
        "candidate_sets",
        "cross_encoder_features",
        "fused_scores",
        "filtered_rankings",
    ]
    for upstream, downstream in zip(lineage, lineage[1:], strict=False):
        assert dg.AssetKey(upstream) in graph.get(dg.AssetKey(downstream)).parent_keys, upstream
    for asset in PARTITIONED:
        node = graph.get(dg.AssetKey(asset))
        assert node.partitions_def is not None and node.backfill_policy == dg.BackfillPolicy.single_run()


hostile_rows = st.lists(
    st.fixed_dictionaries(
        {
            "product_id": st.one_of(st.sampled_from(["h1", "h2", ""]), st.text(max_size=6)),
            "title": st.one_of(
                st.sampled_from(["'); DROP TABLE rankings; --", "Hot Sauce Peppers\x00\x1b", "x" * 100_000]),
                st.text(max_size=40),
            ),
            "retailer": st.sampled_from(["acme", "'; --", ""]),
            "price": st.one_of(st.sampled_from(["nan", "-inf", "1e308", "12,50 €", "abc"]), st.text(max_size=8)),
            "currency": st.sampled_from(["EUR", ""]),
            "category_id": st.one_of(st.sampled_from(["6016", "999999", "abc", ""]), st.text(max_size=5)),
            "last_seen": st.sampled_from(["2026-11-01", "not a date", ""]),
            "image_path": st.sampled_from(["", "/etc/passwd", "/dev/zero", "../../x.jpg"]),
        }
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
@given(extra=hostile_rows)
def test_a_whole_run_on_a_hostile_feed_ranks_every_page_and_accounts_for_every_row(
    extra: list[dict], small_data_dir: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
):
    root = tmp_path_factory.mktemp("hostile")
    shutil.copytree(small_data_dir / "demo", root / "demo")
    catalog = pl.read_csv(root / "demo" / "catalog.csv", infer_schema=False)
    hostile = pl.DataFrame(extra, schema={c: pl.String for c in extra[0]})
    pl.concat([catalog, hostile], how="diagonal").write_csv(root / "demo" / "catalog.csv")
    monkeypatch.setenv("SEESTOCKS_TEXT_MODEL", "hashing")
    settings_ = RankingSettings(cross_encoder_minutes=0, max_quarantined_share=1.0)
    result = materialize_all_pages(dg.DagsterInstance.ephemeral(), build_resources(str(root), settings_))
    assert result.success
    with duckdb.connect(str(root / "seestocks.duckdb"), read_only=True) as con:
        products = con.execute("SELECT count(*) FROM catalog").fetchone()[0]
        dropped = con.execute("SELECT count(*) FROM quarantine WHERE NOT kept_without_image").fetchone()[0]
        pages = con.execute("SELECT count(*) FROM category_pages").fetchone()[0]
        ranked = con.execute("SELECT count(DISTINCT category_id) FROM rankings").fetchone()[0]
        sql_titles = con.execute("SELECT count(*) FROM catalog WHERE title LIKE '%DROP TABLE rankings%'").fetchone()[0]
    assert products + dropped == catalog.height + hostile.height  # every row: a product or a quarantined row
    assert ranked == pages == pl.read_csv(root / "demo" / "category_pages.csv").height
    expected_sql = sum(1 for r in extra if "DROP TABLE rankings" in r["title"] and r["product_id"].strip()
                       and r["retailer"].strip() and r["category_id"] == "6016")  # fmt: skip
    assert sql_titles <= expected_sql  # stored as data (never run), when the row was otherwise valid


def test_every_table_carries_dagster_standard_metadata_and_an_owner(pipeline_run):
    instance, result, _ = pipeline_run
    graph = defs.resolve_asset_graph()
    for event in result.get_asset_materialization_events():
        key = event.asset_key
        node = graph.get(key)
        assert node.owners and node.tags.get("stage") and node.code_version, key
    for asset in ("catalog", "category_pages", "filtered_rankings", "fused_scores"):
        metadata = _metadata(instance, asset)
        assert metadata["dagster/column_schema"].columns, asset
        assert all(c.description for c in metadata["dagster/column_schema"].columns), asset  # documented
    assert _metadata(instance, "catalog")["dagster/row_count"] > 0
    assert _metadata(instance, "filtered_rankings")["rows_in_run"] > 0


def test_fusion_trains_on_out_of_fold_cross_encoder_scores(pipeline_run):
    """No judged pair's cross-encoder feature comes from a model that trained on it; the confidence is
    calibrated on held-out scores, with its error and reliability plot in the metadata."""
    instance, _, data_dir = pipeline_run
    root = DataRoot.at(data_dir)
    manifest = json.loads((root.cross_encoder / CROSS_ENCODER_META_FILE).read_text())
    assert manifest["folds"] == FAST_SETTINGS.cross_encoder_folds
    out_of_fold = read_out_of_fold(root.cross_encoder / OUT_OF_FOLD_FILE, manifest["version"])
    assert out_of_fold is not None and out_of_fold.height == manifest["train_pairs"]
    assert out_of_fold.get_column("cross_encoder_oof").null_count() == 0
    fusion = _metadata(instance, "fusion_model")
    assert fusion["cross_encoder_scores"] == {
        "out_of_fold": fusion["judged_pairs"],
        "nulled_no_fold": 0,
        "unseen_by_model": 0,
    }
    assert 0.0 <= fusion["held_out_ece"] <= 1.0
    assert "data:image/png;base64," in fusion["reliability"]
    folder = Path(TableStore(root.tables).read("fusion_model").get_column("path")[0])
    assert (folder / "reliability.png").stat().st_size > 0
    assert json.loads((folder / "selection.json").read_text())["selection"]["chosen"] == fusion["chosen"]


def test_relevance_report_scores_the_served_rankers_out_of_sample(pipeline_run):
    instance, _, data_dir = pipeline_run
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={dg.AssetKey("relevance_report")})
    result = job.execute_in_process(instance=instance, resources=build_resources(str(data_dir), FAST_SETTINGS))
    assert result.success
    report = result.output_for_node("relevance_report")
    assert {"bm25", "bi_encoder", "cross_encoder", "fusion", "oracle"} <= set(report.get_column("ranker"))
    meta = _metadata(instance, "relevance_report")
    assert meta["out_of_sample"] == ["cross_encoder", "fusion"]
    assert meta["cross_encoder_scores"]["out_of_fold"] == meta["judgments"]  # every pair scored out of fold
    # the served fusion's row is its held-out cross-validation score, as the fusion_model metadata records it
    fusion = report.filter((pl.col("ranker") == "fusion") & (pl.col("subset") == "all")).row(0, named=True)
    held_out = _metadata(instance, "fusion_model")["held_out"]
    assert fusion["ndcg@10"] == pytest.approx(
        held_out[_metadata(instance, "fusion_model")["chosen"]]["ndcg@10"], abs=1e-3
    )


def test_the_learned_matcher_merges_offers_of_other_retailers_only(pipeline_run):
    instance, _, data_dir = pipeline_run
    store = TableStore(DataRoot.at(data_dir).tables)
    matcher = store.read("offer_matcher_model")
    assert matcher["status"].item() in ("trained", "reused") and matcher["version"].item()
    pairs = store.read("offer_matches")
    assert pairs["matcher_version"].unique().to_list() == [matcher["version"].item()]
    ranked = store.read_partitions("filtered_rankings")
    dups = ranked.filter(pl.col("status") == "duplicate").join(
        ranked.select("category_id", pl.col("offer_id").alias("duplicate_of"), pl.col("retailer").alias("kept_by"),
                      pl.col("price").alias("kept_price"), pl.col("status").alias("kept_status")),
        on=["category_id", "duplicate_of"],
    )  # fmt: skip
    assert dups.height == ranked.filter(pl.col("status") == "duplicate").height > 0
    assert (dups["retailer"] != dups["kept_by"]).all()  # one retailer's variants are never merged
    # every duplicate points at a linked pair's offer on its page
    linked = pairs.filter("linked")
    ends = set(linked["offer_a"]) | set(linked["offer_b"])
    assert set(dups["offer_id"]) <= ends and set(dups["duplicate_of"]) <= ends
