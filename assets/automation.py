"""What runs the pipeline without a person: the nightly schedule, the sensor that keeps the page partitions
in step with the pages file, the automation that re-publishes the analysts' file after a backfill, and the
sensors that record failed runs and release the runs of killed command-line processes. All start RUNNING:
a deployment with the daemon running (``make ui``, or ``dagster-daemon run``) ranks every night."""

import hashlib
import os
import socket
from datetime import UTC, datetime

import dagster as dg

from assets.partitions import CATEGORY_PAGES, plan_partition_sync, range_tags
from assets.sharding import SHARDED_ASSETS
from resources import InputsResource
from resources.data_root import LAUNCHED_BY_TAG
from seestocks_rank.inputs.pages import load_category_pages
from seestocks_rank.inputs.taxonomy import Taxonomy
from seestocks_rank.store.alerts import post_webhook, record_failure
from seestocks_rank.store.layout import DataRoot

RUNNING = dg.DefaultSensorStatus.RUNNING
# How often the sensors look (seconds): once a minute by default; tests and impatient operators go lower.
SENSOR_SECONDS = int(os.environ.get("SEESTOCKS_SENSOR_SECONDS", "60"))
PID_TAG, HOST_TAG = "seestocks/pid", "seestocks/host"

# Everything but the sharded-embedding demo (its own job), in one run: unpartitioned stages once,
# per-category stages for a range of pages.
nightly_job = dg.define_asset_job("nightly_rankings", selection=dg.AssetSelection.all() - SHARDED_ASSETS)


def all_pages_run_request(instance: dg.DagsterInstance, run_key: str | None = None) -> dg.RunRequest | dg.SkipReason:
    """One run over every registered page: the partition range from the first to the last key. Pages
    added after this moment fall outside it (new keys come last) and get their own run from the sensor."""
    keys = instance.get_dynamic_partitions(CATEGORY_PAGES)
    if not keys:
        return dg.SkipReason("no category pages registered yet: the category_pages_sensor registers them")
    return dg.RunRequest(run_key=run_key, tags=range_tags(keys))


@dg.schedule(
    job=nightly_job,
    cron_schedule="0 2 * * *",
    execution_timezone="Europe/Madrid",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def nightly_schedule(context: dg.ScheduleEvaluationContext):
    """02:00 Madrid time: re-rank every active page in a single run (results served from cache)."""
    return all_pages_run_request(context.instance, run_key=context.scheduled_execution_time.isoformat())


@dg.sensor(job=nightly_job, minimum_interval_seconds=SENSOR_SECONDS, default_status=RUNNING)
def category_pages_sensor(context: dg.SensorEvaluationContext, inputs: InputsResource):
    """Keep the ``category_pages`` partitions in step with the pages file: add new pages at once and request
    one run that ranks them (and re-publishes), retire removed pages once no run or backfill is in flight."""
    path = inputs.category_pages_path
    if not path.exists():
        return dg.SkipReason(f"{path} does not exist")
    pages = load_category_pages(path, Taxonomy.load(inputs.taxonomy_path))
    sync = plan_partition_sync(context.instance, pages)
    if not sync.added and not sync.retired:
        waiting = f"; {len(sync.postponed)} retired page(s) wait for the runs in flight" if sync.postponed else ""
        return dg.SkipReason("partitions match the pages file" + waiting)
    runs = []
    if sync.added:
        run_key = "pages-added:" + hashlib.sha1(",".join(sync.added).encode()).hexdigest()[:16]
        runs.append(dg.RunRequest(run_key=run_key, tags=range_tags(sync.added)))
    return dg.SensorResult(dynamic_partitions_requests=sync.requests, run_requests=runs)


# After a backfill of selected pages (or any update of what it publishes), re-publish the analysts' file
# once the upstream runs are done and their blocking checks passed (asset analyst_database's condition);
# then the HTML page reports.
publication_automation = dg.AutomationConditionSensorDefinition(
    "publication_automation",
    target=dg.AssetSelection.assets("analyst_database", "page_reports"),
    default_status=RUNNING,
    minimum_interval_seconds=SENSOR_SECONDS,
)


def error_chain(error: object) -> list:
    """A step's error and its causes, outermost first (Dagster wraps the exception an asset raised)."""
    chain = []
    while error is not None:
        chain.append(error)
        error = error.cause  # type: ignore[attr-defined]
    return chain


def first_line(message: str) -> str:
    lines = message.strip().splitlines()
    return lines[0] if lines else ""


@dg.run_failure_sensor(
    default_status=RUNNING, monitor_all_code_locations=True, minimum_interval_seconds=min(SENSOR_SECONDS, 30)
)
def run_failure_alert(context: dg.RunFailureSensorContext):
    """Record every failed run (command-line runs too) in ``<data root>/alerts/run_failures.jsonl`` and post
    it to ``$SEESTOCKS_ALERT_WEBHOOK`` when set."""
    run = context.dagster_run
    failure = {
        "run_id": run.run_id,
        "job": run.job_name,
        "failed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "message": context.failure_event.message,
        "steps": {
            e.step_key: first_line(error_chain(e.event_specific_data.error)[-1].message)
            for e in context.get_step_failure_events()
        },
        "partition_range": [
            run.tags.get("dagster/asset_partition_range_start"),
            run.tags.get("dagster/asset_partition_range_end"),
        ],  # fmt: skip
    }
    record_failure(DataRoot.at(None).alerts, failure)
    try:
        post_webhook(failure)
    except OSError as exc:  # the record is kept; a dead webhook must not stop the sensor
        context.log.warning(f"webhook: {exc}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def release_abandoned_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark as failed the command-line runs of this host whose process is gone (SIGKILL, power loss): such a
    run stays STARTED forever otherwise, and the run queue would wait for it."""
    host, released = socket.gethostname(), []
    started = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    for run in started:
        if run.tags.get(LAUNCHED_BY_TAG) != "cli" or run.tags.get(HOST_TAG) != host:
            continue
        pid = int(run.tags.get(PID_TAG, "0"))
        if pid and not _pid_alive(pid):
            instance.report_run_failed(run, message=f"abandoned: the process that ran it (pid {pid}) is gone")
            released.append(run.run_id)
    return released


@dg.sensor(minimum_interval_seconds=SENSOR_SECONDS, default_status=RUNNING)
def abandoned_runs_sensor(context: dg.SensorEvaluationContext):
    """Release the runs of killed ``seestocks-rank run`` processes (see :func:`release_abandoned_runs`)."""
    released = release_abandoned_runs(context.instance)
    return dg.SkipReason(f"released abandoned run(s) {released}" if released else "no abandoned run")
