"""The nightly schedule and the category-pages sensor."""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from assets.automation import RANGE_END, RANGE_START, category_pages_sensor, nightly_schedule
from assets.partitions import CATEGORY_PAGES
from resources import DataRootResource, InputsResource


def test_nightly_schedule_requests_one_run_over_all_pages():
    with dg.instance_for_test() as instance:
        when = datetime(2026, 11, 2, tzinfo=UTC)
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when)
        assert isinstance(nightly_schedule(context), dg.SkipReason)
        instance.add_dynamic_partitions(CATEGORY_PAGES, ["10", "20", "30"])
        request = nightly_schedule(context)
    assert isinstance(request, dg.RunRequest)
    assert request.tags[RANGE_START] == "10" and request.tags[RANGE_END] == "30"


def test_pages_sensor_fires_only_when_the_file_changes(tmp_path: Path):
    pages = tmp_path / "demo" / "category_pages.csv"
    inputs = InputsResource(data_root=DataRootResource(path=str(tmp_path)))
    with dg.build_sensor_context(resources={"inputs": inputs}) as context:
        assert isinstance(category_pages_sensor(context), dg.SkipReason)  # no file yet
        pages.parent.mkdir(parents=True)
        pages.write_text("category_id\n1\n")
        first = category_pages_sensor(context)
        assert isinstance(first, dg.RunRequest)
    with dg.build_sensor_context(cursor=context.cursor, resources={"inputs": inputs}) as again:
        assert isinstance(category_pages_sensor(again), dg.SkipReason)
