"""Jobs, the nightly schedule and the sensor that keeps partitions in step with the pages file."""

import dagster as dg

from assets.partitions import CATEGORY_PAGES
from assets.sharding import SHARDED_ASSETS
from resources import InputsResource

# Everything but the sharded-embedding demo (its own job), in one run: unpartitioned stages once,
# per-category stages for a range of pages.
nightly_job = dg.define_asset_job("nightly_rankings", selection=dg.AssetSelection.all() - SHARDED_ASSETS)


pages_job = dg.define_asset_job("sync_category_pages", selection=dg.AssetSelection.assets("category_pages").upstream())


RANGE_START = "dagster/asset_partition_range_start"


RANGE_END = "dagster/asset_partition_range_end"


def all_pages_run_request(instance: dg.DagsterInstance, run_key: str | None = None) -> dg.RunRequest | dg.SkipReason:
    """One run over every registered page: the partition range from the first to the last key."""
    keys = instance.get_dynamic_partitions(CATEGORY_PAGES)
    if not keys:
        return dg.SkipReason("no category pages registered yet: materialize category_pages first")
    return dg.RunRequest(run_key=run_key, tags={RANGE_START: keys[0], RANGE_END: keys[-1]})


@dg.schedule(job=nightly_job, cron_schedule="0 2 * * *", execution_timezone="Europe/Madrid")
def nightly_schedule(context: dg.ScheduleEvaluationContext):
    """02:00 Madrid time: re-rank every active page in a single run (results served from cache)."""
    return all_pages_run_request(context.instance, run_key=context.scheduled_execution_time.isoformat())


@dg.sensor(job=pages_job, minimum_interval_seconds=300)
def category_pages_sensor(context: dg.SensorEvaluationContext, inputs: InputsResource):
    """Re-sync the dynamic partitions when the category pages file changes (by modification time)."""
    path = inputs.category_pages_path
    if not path.exists():
        return dg.SkipReason(f"{path} does not exist")
    stamp = str(path.stat().st_mtime_ns)
    if stamp == context.cursor:
        return dg.SkipReason("category pages unchanged")
    context.update_cursor(stamp)
    return dg.RunRequest(run_key=f"pages-{stamp}")
