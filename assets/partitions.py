"""Category pages are the partitions: one dynamic partition per active page, keyed ``<category id>-<slug>``
(``4283-tool-bags``: findable by name in the UI's partition picker, stable when a page is renamed).

The partitions follow the pages file through :func:`plan_partition_sync`, which the ``category_pages_sensor``
applies as ``dynamic_partitions_requests`` (and ``seestocks-rank run`` applies before its run). No run
adds or deletes partitions. A page is retired (its partition deleted) only while no run is queued or
running and no backfill is in flight, because a run's page range names its first and last keys and a
backfill fails when one of its pages disappears; until then the deletion waits for a later tick.
"""

from dataclasses import dataclass

import dagster as dg
import polars as pl
from dagster._core.execution.backfill import BulkActionsFilter, BulkActionStatus  # not exported in 1.13

from seestocks_rank.inputs.pages import page_id, plan_page_keys

CATEGORY_PAGES = "category_pages"
category_pages_partitions = dg.DynamicPartitionsDefinition(name=CATEGORY_PAGES)

# Per-category assets run a backfill of N pages as one run that processes them in batch.
single_run = dg.BackfillPolicy.single_run()

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
BACKFILLS_IN_FLIGHT = [BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING, BulkActionStatus.FAILING]


def page_ids(keys: list[str]) -> list[int]:
    """The category ids of partition keys."""
    return [page_id(k) for k in keys]


def range_tags(keys: list[str]) -> dict[str, str]:
    """Run tags for one run over the partition keys from ``keys[0]`` to ``keys[-1]`` (in partition order)."""
    return {RANGE_START: keys[0], RANGE_END: keys[-1]}


def runs_in_flight(instance: dg.DagsterInstance, exclude_run_id: str | None = None) -> list[dg.DagsterRun]:
    """Queued, starting, running or cancelling runs (but ``exclude_run_id``)."""
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=IN_FLIGHT))
    return [r for r in runs if r.run_id != exclude_run_id]


def retiring_is_safe(instance: dg.DagsterInstance, exclude_run_id: str | None = None) -> bool:
    """Whether a partition may be deleted now: no run in flight, no backfill in flight."""
    if runs_in_flight(instance, exclude_run_id):
        return False
    return not instance.get_backfills(filters=BulkActionsFilter(statuses=BACKFILLS_IN_FLIGHT), limit=1)


@dataclass(frozen=True)
class PartitionSync:
    """What to change so the partitions match the pages file: ``added`` keys (in page order, contiguous at
    the end of the partition order once added), ``retired`` keys deletable now, ``postponed`` retirements."""

    added: list[str]
    retired: list[str]
    postponed: list[str]

    @property
    def requests(self) -> list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest]:
        out: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
        if self.added:
            out.append(category_pages_partitions.build_add_request(self.added))
        if self.retired:
            out.append(category_pages_partitions.build_delete_request(self.retired))
        return out

    def apply(self, instance: dg.DagsterInstance) -> None:
        """Make the changes directly (for a run started outside the daemon, which holds the writer lock)."""
        if self.added:
            instance.add_dynamic_partitions(CATEGORY_PAGES, self.added)
        for key in self.retired:
            instance.delete_dynamic_partition(CATEGORY_PAGES, key)


def plan_partition_sync(
    instance: dg.DagsterInstance, pages: pl.DataFrame, exclude_run_id: str | None = None
) -> PartitionSync:
    """The :class:`PartitionSync` from the partitions the instance has to the ``pages`` table
    (``category_id, path``)."""
    added, removed = plan_page_keys(pages, instance.get_dynamic_partitions(CATEGORY_PAGES))
    if removed and not retiring_is_safe(instance, exclude_run_id):
        return PartitionSync(added, [], removed)
    return PartitionSync(added, removed, [])


def pages_in_flight(instance: dg.DagsterInstance, exclude_run_id: str | None = None) -> set[int]:
    """Category ids of the pages that a queued or running run (but ``exclude_run_id``) will rank."""
    keys = instance.get_dynamic_partitions(CATEGORY_PAGES)
    position = {k: i for i, k in enumerate(keys)}
    pages: set[int] = set()
    for run in runs_in_flight(instance, exclude_run_id):
        start, end = run.tags.get(RANGE_START), run.tags.get(RANGE_END)
        if start in position and end in position:
            pages.update(page_ids(keys[position[start] : position[end] + 1]))
        elif run.tags.get("dagster/partition") in position:
            pages.add(page_id(run.tags["dagster/partition"]))
    return pages
