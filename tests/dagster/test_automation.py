"""The schedule and the sensors, evaluated as the daemon evaluates them (in process, on a test instance)."""

import json
import os
import socket
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import dagster as dg
import pytest

from assets.automation import (
    HOST_TAG,
    PID_TAG,
    category_pages_sensor,
    nightly_schedule,
    release_abandoned_runs,
    run_failure_alert,
)
from assets.definitions import defs
from assets.partitions import CATEGORY_PAGES, RANGE_END, RANGE_START, pages_in_flight
from resources import DataRootResource, InputsResource
from resources.data_root import LAUNCHED_BY_TAG
from seestocks_rank.store.alerts import FAILURES_FILE, WEBHOOK_ENV
from seestocks_rank.store.layout import DATA_DIR_ENV

TAXONOMY = """# Google_Product_Taxonomy_Version: test
1 - Hardware
2 - Hardware > Tool Storage
3 - Hardware > Tool Storage > Tool Bags
4 - Hardware > Tool Storage > Tool Boxes
5 - Food
6 - Food > Peppers
"""


@pytest.fixture
def demo_inputs(tmp_path: Path) -> tuple[InputsResource, Path]:
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "taxonomy.txt").write_text(TAXONOMY)
    pages = tmp_path / "demo" / "category_pages.csv"
    pages.write_text("category_id\n3\n4\n6\n")
    return InputsResource(data_root=DataRootResource(path=str(tmp_path))), pages


def _tick(instance: dg.DagsterInstance, inputs: InputsResource):
    with dg.build_sensor_context(instance=instance, resources={"inputs": inputs}) as context:
        result = category_pages_sensor(context)
    if isinstance(result, dg.SensorResult):  # the daemon applies the partition requests before the runs
        for request in result.dynamic_partitions_requests:
            if isinstance(request, dg.AddDynamicPartitionsRequest):
                instance.add_dynamic_partitions(CATEGORY_PAGES, list(request.partition_keys))
            else:
                for key in request.partition_keys:
                    instance.delete_dynamic_partition(CATEGORY_PAGES, key)
    return result


def test_nightly_schedule_requests_one_run_over_all_pages():
    with dg.instance_for_test() as instance:
        when = datetime(2026, 11, 2, tzinfo=UTC)
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=when) as context:
            assert isinstance(nightly_schedule(context), dg.SkipReason)
            instance.add_dynamic_partitions(CATEGORY_PAGES, ["10-a", "20-b", "30-c"])
            request = nightly_schedule(context)
    assert isinstance(request, dg.RunRequest)
    assert request.tags[RANGE_START] == "10-a" and request.tags[RANGE_END] == "30-c"


def test_pages_sensor_registers_new_pages_by_name_and_requests_one_run_for_them(demo_inputs):
    inputs, pages = demo_inputs
    with dg.instance_for_test() as instance:
        first = _tick(instance, inputs)
        assert instance.get_dynamic_partitions(CATEGORY_PAGES) == ["3-tool-bags", "4-tool-boxes", "6-peppers"]
        [run] = first.run_requests
        assert (run.tags[RANGE_START], run.tags[RANGE_END]) == ("3-tool-bags", "6-peppers")
        assert isinstance(_tick(instance, inputs), dg.SkipReason)  # in step: nothing to do
        pages.write_text("category_id\n3\n4\n6\n2\n")  # a page added during the day
        added = _tick(instance, inputs)
        assert [(r.tags[RANGE_START], r.tags[RANGE_END]) for r in added.run_requests] == [("2-tool-storage",) * 2]


def test_retiring_a_page_waits_for_the_runs_in_flight(demo_inputs):
    inputs, pages = demo_inputs
    with dg.instance_for_test() as instance:
        _tick(instance, inputs)
        nightly = defs.resolve_job_def("nightly_rankings")
        planned = instance.create_run_for_job(  # a nightly run planned over every page, not started yet
            nightly, status=dg.DagsterRunStatus.NOT_STARTED, tags={RANGE_START: "3-tool-bags", RANGE_END: "6-peppers"}
        )
        assert pages_in_flight(instance) == {3, 4, 6}
        pages.write_text("category_id\n4\n")  # retire the first and the last page of the queued run's range
        skipped = _tick(instance, inputs)
        assert isinstance(skipped, dg.SkipReason) and "wait for the runs in flight" in skipped.skip_message
        assert instance.get_dynamic_partitions(CATEGORY_PAGES) == ["3-tool-bags", "4-tool-boxes", "6-peppers"]
        instance.report_run_failed(planned)  # the run is over
        _tick(instance, inputs)
        assert instance.get_dynamic_partitions(CATEGORY_PAGES) == ["4-tool-boxes"]


def test_a_renamed_page_keeps_its_partition_key(tmp_path: Path, demo_inputs):
    inputs, _ = demo_inputs
    with dg.instance_for_test() as instance:
        _tick(instance, inputs)
        renamed = TAXONOMY.replace("Tool Bags", "Tool Bags & Belts")
        (tmp_path / "demo" / "taxonomy.txt").write_text(renamed)
        assert isinstance(_tick(instance, inputs), dg.SkipReason)
        assert instance.get_dynamic_partitions(CATEGORY_PAGES)[0] == "3-tool-bags"


def test_runs_of_killed_command_line_processes_are_released():
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)  # a pid that no longer runs
    with dg.instance_for_test() as instance:
        nightly = defs.resolve_job_def("nightly_rankings")
        tags = {LAUNCHED_BY_TAG: "cli", HOST_TAG: socket.gethostname()}
        gone = instance.create_run_for_job(
            nightly, status=dg.DagsterRunStatus.STARTED, tags={**tags, PID_TAG: str(dead)}
        )
        alive = instance.create_run_for_job(
            nightly, status=dg.DagsterRunStatus.STARTED, tags={**tags, PID_TAG: str(os.getpid())}
        )
        daemon = instance.create_run_for_job(nightly, status=dg.DagsterRunStatus.STARTED)
        assert release_abandoned_runs(instance) == [gone.run_id]
        statuses = {r.run_id: instance.get_run_by_id(r.run_id).status for r in (gone, alive, daemon)}
    assert statuses == {
        gone.run_id: dg.DagsterRunStatus.FAILURE,
        alive.run_id: dg.DagsterRunStatus.STARTED,
        daemon.run_id: dg.DagsterRunStatus.STARTED,  # the daemon's own run monitoring watches those
    }


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        _Hook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@dg.op
def explode() -> None:
    raise RuntimeError("the feed server answered 503")


@dg.job
def failing_job() -> None:
    explode()


def test_a_failed_run_is_recorded_and_posted_to_the_webhook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv(WEBHOOK_ENV, f"http://127.0.0.1:{server.server_port}/alerts")
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    try:
        with dg.instance_for_test() as instance:
            result = failing_job.execute_in_process(instance=instance, raise_on_error=False)
            failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
            context = dg.build_run_status_sensor_context(
                sensor_name="run_failure_alert",
                dagster_event=failure,
                dagster_instance=instance,
                dagster_run=result.dagster_run,
            ).for_run_failure()
            run_failure_alert(context)
    finally:
        server.shutdown()
    [recorded] = [json.loads(line) for line in (tmp_path / "alerts" / FAILURES_FILE).read_text().splitlines()]
    assert recorded["run_id"] == result.run_id and "503" in recorded["steps"]["explode"]
    assert _Hook.received == [recorded]


def _blocking_checks_passed(instance: dg.DagsterInstance) -> None:
    """What a ranking run records besides its tables: every blocking check upstream of the publication passed."""
    graph = defs.resolve_asset_graph()
    upstream = graph.get(dg.AssetKey("analyst_database")).parent_keys
    for check in graph.asset_check_keys:
        if check.asset_key in upstream and graph.get(check).blocking:
            evaluation = dg.AssetCheckEvaluation(asset_key=check.asset_key, check_name=check.name, passed=True)
            instance.report_runless_asset_event(evaluation)


def test_publication_waits_for_a_ranking_run_and_follows_a_backfill():
    """On a fresh deployment nothing is published before the first ranking run (it publishes itself); once a
    backfill updates a page, the analysts' file and then the page reports are re-published in one run."""
    publication = dg.AssetSelection.assets("analyst_database", "page_reports")

    def tick(instance: dg.DagsterInstance, previous=None):  # noqa: ANN001, ANN202
        cursor = previous.cursor if previous else None
        return dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=publication, cursor=cursor
        )

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(CATEGORY_PAGES, ["10-a", "20-b"])
        fresh = tick(instance)
        assert fresh.total_requested == 0  # nothing ranked yet: no publication run of an empty file
        _blocking_checks_passed(instance)
        for asset in ("analyst_database", "page_reports"):  # the first ranking run published
            instance.report_runless_asset_event(dg.AssetMaterialization(asset))
        quiet = tick(instance, fresh)
        assert quiet.total_requested == 0
        for asset in ("fused_scores", "filtered_rankings"):  # a backfill of one page
            instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition="20-b"))
        _blocking_checks_passed(instance)
        after = tick(instance, quiet)
        requested = {key for key in (dg.AssetKey("analyst_database"), dg.AssetKey("page_reports"))
                     if after.get_requested_partitions(key) == {None}}  # fmt: skip
        assert len(requested) == after.total_requested == 2  # one run: the file, then the reports from it
