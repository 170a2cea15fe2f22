"""The demo with the image path switched on: open_clip fine-tuned briefly, image embeddings, visual signal."""

import re

import dagster as dg
import polars as pl

from assets.definitions import build_resources
from assets.runner import materialize_all_pages
from resources import VisionModelResource
from seestocks_rank.store.embedding_store import EmbeddingStore
from seestocks_rank.store.layout import DataRoot
from seestocks_rank.store.tables import TableStore
from seestocks_rank.synthetic.demo import generate_demo
from tests.dagster.conftest import FAST_SETTINGS


def test_demo_with_images_runs_end_to_end(tmp_path):
    generate_demo(tmp_path / "demo", n_products=300, n_retailers=3, seed=5, images=True)
    resources = build_resources(str(tmp_path), FAST_SETTINGS)
    resources["vision"] = VisionModelResource(train_minutes=0.1, train_max_epochs=1.0, train_batch_size=32)
    result = materialize_all_pages(dg.DagsterInstance.ephemeral(), resources)
    assert result.success
    store = TableStore(DataRoot.at(tmp_path).tables)
    embeddings = EmbeddingStore.open(tmp_path / "embeddings")
    assert embeddings.image_mask().all()
    assert (embeddings.vectors("fused") != embeddings.vectors("text")).any()  # fused where images exist
    features = store.read_partitions("cross_encoder_features")
    assert features["visual_similarity"].null_count() == 0
    assert features["visual_similarity"].is_between(-1.0001, 1.0001).all()
    assert "visual_prototype" in store.read("taxonomy_centroids").columns
    assert store.read_partitions("filtered_rankings").filter(pl.col("status") == "shown").height > 0
    # the page reports show a thumbnail of each shown product, copied beside them (readable elsewhere)
    reports = DataRoot.at(tmp_path).reports / "pages"
    page = next(p for p in reports.glob("*.html") if p.name != "index.html").read_text()
    sources = re.findall(r'<img src="(thumbs/[0-9a-f]+\.jpg)"', page)
    assert sources and all((reports / s).stat().st_size > 0 for s in sources)
