"""Running the pipeline in process, as the nightly schedule would (``seestocks-rank run``, ``make demo``).

A command-line run is one writer among others (the schedule, the sensors' runs, backfills from the UI): it
takes the data root's writer lock, releases the runs of killed command-line processes, refuses to start
while another run is executing (naming it), and records itself on the instance with its process id so a
kill is noticed. It stops itself after ``max_runtime_minutes``, before the instance's run monitoring would
mark it failed while it still writes.
"""

import os
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from dagster._core.utils import make_new_run_id

from assets.automation import (
    HOST_TAG,
    PID_TAG,
    all_pages_run_request,
    error_chain,
    first_line,
    release_abandoned_runs,
)
from assets.definitions import build_resources, defs
from assets.partitions import CATEGORY_PAGES, plan_partition_sync, range_tags, runs_in_flight
from resources import InputsResource, RankingSettings
from resources.data_root import DEADLINE_TAG, LAUNCHED_BY_TAG, MAX_RUNTIME_TAG
from seestocks_rank.inputs.catalog import check_catalog_file
from seestocks_rank.inputs.errors import InputError
from seestocks_rank.inputs.judgments import load_judgments
from seestocks_rank.inputs.pages import load_category_pages, page_id, page_slug
from seestocks_rank.inputs.taxonomy import Taxonomy
from seestocks_rank.store.layout import DataRoot
from seestocks_rank.store.writer_lock import DataRootLock, Holder, WriterBusy

EXECUTING = (dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING)
PROJECT_DAGSTER_YAML = Path(__file__).resolve().parents[1] / "dagster.yaml"


RUN_TIMEOUT_REPEAT_S = 2.0


class RunTimedOut(RuntimeError):
    """The run went past its maximum run time."""


def check_inputs(inputs: InputsResource) -> None:
    """Read what a run will need before starting one, so an unusable input file stops the command with one
    line naming the file and the column or row (``InputError``) instead of a failed step."""
    taxonomy = Taxonomy.load(inputs.taxonomy_path)
    load_category_pages(inputs.category_pages_path, taxonomy)
    load_judgments(inputs.judgments_path)
    check_catalog_file(inputs.catalog_path)


def sync_page_partitions(instance: dg.DagsterInstance, inputs: InputsResource) -> None:
    """Bring the page partitions in step with the pages file, as the ``category_pages_sensor`` does (the
    caller holds the writer lock and no other run is executing, so retired pages go at once)."""
    pages = load_category_pages(inputs.category_pages_path, Taxonomy.load(inputs.taxonomy_path))
    plan_partition_sync(instance, pages).apply(instance)


def materialize_all_pages(
    instance: dg.DagsterInstance,
    resources: dict[str, object],
    *,
    raise_on_error: bool = True,
    log_level: str = "INFO",
    run_id: str | None = None,
    tags: dict[str, str] | None = None,
) -> dg.ExecuteInProcessResult:
    """Run in process what the nightly schedule launches: sync the page partitions with the pages file,
    then one run of every asset over the whole page range."""
    sync_page_partitions(instance, resources["inputs"])
    request = all_pages_run_request(instance)
    if isinstance(request, dg.SkipReason):
        raise RuntimeError(request.skip_message)
    return defs.resolve_job_def("nightly_rankings").execute_in_process(
        instance=instance,
        resources=resources,
        run_id=run_id,
        tags={**request.tags, **(tags or {})},
        raise_on_error=raise_on_error,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    )


def ensure_dagster_home(root: DataRoot) -> Path:
    """``$DAGSTER_HOME`` or ``<data root>/dagster_home``, seeded with the project's dagster.yaml."""
    home = Path(os.environ.get("DAGSTER_HOME") or root.dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    if PROJECT_DAGSTER_YAML.exists() and not (home / "dagster.yaml").exists():
        shutil.copy(PROJECT_DAGSTER_YAML, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


@contextmanager
def time_limit(minutes: float) -> Iterator[None]:
    """Raise :class:`RunTimedOut` in this (main) thread after ``minutes`` (0: no limit), and again every
    few seconds: an exception raised where a library swallows it (a logging handler) does not stop the run,
    the next one does. The publication refuses to run past the deadline besides (``past_deadline``)."""
    if minutes <= 0:
        yield
        return

    def expire(_signum: int, _frame: object) -> None:
        raise RunTimedOut(f"the run went past its maximum run time of {minutes:g} minutes")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, minutes * 60, RUN_TIMEOUT_REPEAT_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_pipeline(
    root: DataRoot,
    settings: RankingSettings | None = None,
    *,
    pages: list[str] | None = None,
    max_runtime_minutes: float = 0.0,
    log_level: str = "INFO",
) -> dg.ExecuteInProcessResult:
    """One command-line run over every page (or, with ``pages``, a backfill of those pages and the
    publication), on the persistent instance (so the UI shows it), as one of the data root's writers (see
    the module docstring). Raises :class:`WriterBusy` when another run writes the data root."""
    ensure_dagster_home(root)
    run_id = make_new_run_id()
    lock = DataRootLock(root.path)
    with dg.DagsterInstance.get() as instance, lock.held(Holder(run_id=run_id, launched_by="cli")):
        resources = build_resources(str(root.path), settings)
        check_inputs(resources["inputs"])
        release_abandoned_runs(instance)
        executing = [r for r in runs_in_flight(instance) if r.status in EXECUTING]
        if executing:
            run = executing[0]
            launched_by = run.tags.get(LAUNCHED_BY_TAG, "daemon")
            raise WriterBusy(
                f"run {run.run_id} ({run.job_name}, {run.status.value}, launched by {launched_by}) is writing "
                f"the data root {root.path}; wait for it to finish"
            )
        tags = {LAUNCHED_BY_TAG: "cli", PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
        if max_runtime_minutes > 0:
            tags |= {DEADLINE_TAG: f"{time.time() + max_runtime_minutes * 60:.3f}",
                     MAX_RUNTIME_TAG: f"{max_runtime_minutes:g}"}  # fmt: skip
        with time_limit(max_runtime_minutes):
            if pages:
                return rank_selected_pages(instance, resources, pages, log_level=log_level, tags=tags)
            return materialize_all_pages(
                instance,
                resources,
                raise_on_error=False,
                log_level=log_level,
                run_id=run_id,
                tags=tags,
            )


INPUT_ERRORS = ("InputError", "CatalogSchemaError", "TaxonomyError")


def failure_summary(result: dg.ExecuteInProcessResult) -> tuple[str, bool]:
    """One line saying why a run failed (the first failed step and its error, without the traceback), and
    whether the cause is an input file (:class:`~seestocks_rank.inputs.errors.InputError`)."""
    for event in result.all_events:
        if event.event_type != dg.DagsterEventType.STEP_FAILURE:
            continue
        chain = error_chain(event.step_failure_data.error)
        for error in chain:
            if error.cls_name in INPUT_ERRORS:  # "module.Class: message" -> message
                return first_line(error.message).split(f"{error.cls_name}: ", 1)[-1], True
        return f"step {event.step_key} failed: {first_line(chain[-1].message) if chain else 'no message'}", False
    return f"run {result.run_id} failed", False


PAGE_ASSETS = [
    dg.AssetKey(a) for a in ("candidate_sets", "cross_encoder_features", "fused_scores", "filtered_rankings")
]


def page_keys_for(instance: dg.DagsterInstance, wanted: list[str]) -> list[str]:
    """The partition keys of the pages named in ``wanted``: a key (``4283-tool-bags``), a category id
    (``4283``) or a page name (``Tool Bags``, any case). Raises :class:`InputError` naming an unknown one."""
    keys = instance.get_dynamic_partitions(CATEGORY_PAGES)
    by_id = {str(page_id(k)): k for k in keys}
    by_slug = {k.split("-", 1)[1]: k for k in keys if "-" in k}
    found = []
    for name in wanted:
        key = name if name in keys else by_id.get(name.strip()) or by_slug.get(page_slug(name))
        if key is None:
            raise InputError(f"no active page {name!r}: give a page key, a category id or a page name")
        found.append(key)
    return [k for k in keys if k in set(found)]  # in partition order


def contiguous_ranges(keys: list[str], order: list[str]) -> list[list[str]]:
    """``keys`` cut into runs of neighbours in the partition ``order`` (one single-run backfill each)."""
    position = {k: i for i, k in enumerate(order)}
    ranges: list[list[str]] = []
    for key in sorted(keys, key=position.__getitem__):
        if ranges and position[key] == position[ranges[-1][-1]] + 1:
            ranges[-1].append(key)
        else:
            ranges.append([key])
    return ranges


def rank_selected_pages(
    instance: dg.DagsterInstance,
    resources: dict[str, object],
    pages: list[str],
    *,
    log_level: str = "INFO",
    tags: dict[str, str] | None = None,
) -> dg.ExecuteInProcessResult:
    """What a UI backfill of the per-page assets for ``pages`` does, then the publication: one run per
    contiguous stretch of pages, then one run of ``analyst_database`` and ``page_reports``. Returns the first
    failed run's result, else the publication's."""
    job = defs.resolve_implicit_global_asset_job_def()
    config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    order = instance.get_dynamic_partitions(CATEGORY_PAGES)
    for stretch in contiguous_ranges(page_keys_for(instance, pages), order):
        result = job.get_subset(asset_selection=set(PAGE_ASSETS)).execute_in_process(
            instance=instance, resources=resources, tags={**range_tags(stretch), **(tags or {})},
            raise_on_error=False, run_config=config,
        )  # fmt: skip
        if not result.success:
            return result
    publication = job.get_subset(asset_selection={dg.AssetKey("analyst_database"), dg.AssetKey("page_reports")})
    return publication.execute_in_process(
        instance=instance, resources=resources, tags=tags, raise_on_error=False, run_config=config
    )
