"""A small generated demo in a temp data root, and a pipeline that has run over it once."""

import os
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.defs_state.base import DefsStateStorage

from assets.definitions import build_resources
from assets.runner import materialize_all_pages
from resources import RankingSettings
from seestocks_rank.synthetic.demo import generate_demo

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# A few seconds of cross-encoder and offer-matcher fine-tuning: enough to exercise the path, not to learn much.
FAST_SETTINGS = RankingSettings(
    cross_encoder_minutes=0.05, cross_encoder_epochs=0.2, matcher_minutes=0.05, matcher_epochs=0.5
)


@pytest.fixture(autouse=True)
def no_leaked_instance_context():
    """A schedule/sensor context or instance left open keeps its instance as Dagster's current state storage;
    once that instance is collected, any later Definitions load in the process fails (a weakref error)."""
    yield
    assert DefsStateStorage.get() is None, "a test left a Dagster instance context open: use `with`"


@pytest.fixture(scope="session")
def small_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    generate_demo(root / "demo", n_products=1500, n_retailers=4, seed=3)
    return root


@pytest.fixture(scope="session")
def pipeline_run(small_data_dir: Path) -> tuple[dg.DagsterInstance, dg.ExecuteInProcessResult, Path]:
    """The whole graph materialized once over every page (module tests read its outputs)."""
    instance = dg.DagsterInstance.ephemeral()
    result = materialize_all_pages(instance, build_resources(str(small_data_dir), FAST_SETTINGS))
    return instance, result, small_data_dir
