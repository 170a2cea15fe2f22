"""The run's catalog context: built once per run by the first asset that scores, shared by the others."""

import dagster as dg
import polars as pl
from pydantic import PrivateAttr

from seestocks_rank.inputs.taxonomy import Taxonomy
from seestocks_rank.reranking.context import CatalogContext
from seestocks_rank.store.embedding_store import EmbeddingStore


class CatalogContextResource(dg.ConfigurableResource):
    """Hands every scoring asset of a run the same :class:`CatalogContext` (the catalog's products and
    vectors, gathered once: ~0.9 GB of vectors at 565K offers). Within one process (the in-process
    executor of ``seestocks-rank run`` and of the daemon's runs) it is built once per run; a process per
    step builds its own."""

    _built: dict[str, tuple[CatalogContext, bool]] = PrivateAttr(default_factory=dict)

    def for_run(
        self,
        run_id: str,
        catalog: pl.DataFrame,
        store: EmbeddingStore,
        taxonomy: pl.DataFrame,
        predicted: pl.DataFrame | None = None,
    ) -> CatalogContext:
        """The run's context; with ``predicted`` (the tree walk's categories) when any caller needs them."""
        built = self._built.get(run_id)
        if built is None or (predicted is not None and not built[1]):
            self._built.clear()  # one run's context at a time
            context = CatalogContext.build(catalog, store, Taxonomy.from_nodes(taxonomy), predicted)
            self._built[run_id] = (context, predicted is not None)
        return self._built[run_id][0]
