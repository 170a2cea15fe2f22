"""Where the pipeline's inputs and outputs live: one data root, shared by every resource that reads or
writes under it (``DataRootResource``, nested in the others)."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from seestocks_rank.store.layout import DataRoot
from seestocks_rank.store.model_cache import CachedCrossEncoder, CachedTextEncoder, cached
from seestocks_rank.store.tables import TableStore
from seestocks_rank.store.writer_lock import DataRootLock, Holder

LAUNCHED_BY_TAG = "seestocks/launched_by"  # "cli" on seestocks-rank's in-process runs
# a command-line run's deadline (epoch seconds) and its maximum run time: past it, nothing is published
DEADLINE_TAG, MAX_RUNTIME_TAG = "seestocks/deadline", "seestocks/max_runtime_minutes"


def past_deadline(run: dg.DagsterRun) -> str | None:
    """Why ``run`` must not publish (it went past its maximum run time), or None."""
    deadline = run.tags.get(DEADLINE_TAG)
    if deadline is None or time.time() <= float(deadline):
        return None
    return f"the run went past its maximum run time of {float(run.tags[MAX_RUNTIME_TAG]):g} minutes"


class DataRootResource(dg.ConfigurableResource):
    """The data root (:class:`~seestocks_rank.store.layout.DataRoot`): ``path``, or when empty
    ``$SEESTOCKS_DATA_DIR``, else ``./data`` in the working directory.

    A run holds the data root's writer lock (:class:`~seestocks_rank.store.writer_lock.DataRootLock`)
    from its start to its end, so two runs never write one data root at once: a run launched while
    another writes waits up to ``lock_wait_minutes`` (logging which run it waits for), then fails."""

    path: str = ""
    lock_wait_minutes: float = 360.0

    @property
    def root(self) -> DataRoot:
        return DataRoot.at(self.path)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        run = context.dagster_run
        if run is None:  # a sensor or a schedule reading inputs: not a writer
            return
        holder = Holder(run_id=run.run_id, launched_by=run.tags.get(LAUNCHED_BY_TAG, "daemon"))
        log = context.log.info if context.log else None
        DataRootLock(self.root.path).acquire(holder, wait_s=self.lock_wait_minutes * 60, on_wait=log)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if context.dagster_run is not None:
            DataRootLock(self.root.path).release()


class StorageResource(dg.ConfigurableResource):
    """Tables, vectors, models and the model cache under the data root. ``cache_days``: cached model
    outputs unused this long are dropped."""

    data_root: DataRootResource
    cache_days: float = 7.0

    @property
    def root(self) -> DataRoot:
        return self.data_root.root

    @property
    def tables(self) -> TableStore:
        return TableStore(self.root.tables)

    @contextmanager
    def cached_cross_encoder(self, model: object | None) -> Iterator[CachedCrossEncoder | None]:
        """``model`` answering pairs scored on earlier runs from ``cache/cross_encoder_scores.parquet``.
        ``None`` stays ``None``."""
        if model is None:
            yield None
            return
        with cached(CachedCrossEncoder, model, self.root.cache / "cross_encoder_scores.parquet", self.cache_days) as c:
            yield c

    @contextmanager
    def cached_text_encoder(self, encoder: object) -> Iterator[CachedTextEncoder]:
        """``encoder`` answering texts embedded on earlier runs (prompts, judged titles) from
        ``cache/text_vectors.parquet``."""
        with cached(CachedTextEncoder, encoder, self.root.cache / "text_vectors.parquet", self.cache_days) as c:
            yield c


class InputsResource(dg.ConfigurableResource):
    """Input files. Any left empty defaults to the embedded demo under ``<data root>/demo/``.

    - ``catalog``: Parquet or CSV in the catalog contract (see README)
    - ``taxonomy``: Google ``taxonomy-with-ids`` text file
    - ``category_pages``: CSV/Parquet with a ``category_id`` column (the active pages)
    - ``judgments``: CSV/Parquet with ``category_id, product_id, grade``
    - ``matching_pairs``: CSV/Parquet of labelled offer pairs (``title_a, brand_a, price_a, title_b, brand_b,
      price_b, label``) the offer matcher trains on; empty: the demo's with the demo catalog, else none
      (the rules' strict duplicate test)
    """

    data_root: DataRootResource
    catalog: str = ""
    taxonomy: str = ""
    category_pages: str = ""
    judgments: str = ""
    matching_pairs: str = ""

    def _path(self, value: str, demo_name: str) -> Path:
        return Path(value) if value else self.data_root.root.demo / demo_name

    @property
    def catalog_path(self) -> Path:
        return self._path(self.catalog, "catalog.csv")

    @property
    def taxonomy_path(self) -> Path:
        return self._path(self.taxonomy, "taxonomy.txt")

    @property
    def category_pages_path(self) -> Path:
        return self._path(self.category_pages, "category_pages.csv")

    @property
    def judgments_path(self) -> Path:
        return self._path(self.judgments, "judgments.csv")

    @property
    def matching_pairs_path(self) -> Path | None:
        """The offer matcher's training pairs: the configured file; the demo's only with the demo catalog."""
        if self.matching_pairs:
            return Path(self.matching_pairs)
        demo = self.data_root.root.demo / "matching_pairs.csv"
        return demo if not self.catalog and demo.exists() else None
