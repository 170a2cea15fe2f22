"""Running the pipeline in process, as the nightly schedule would (``seestocks-rank run``, ``make demo``)."""

import os
import shutil
from pathlib import Path

import dagster as dg

from assets.automation import all_pages_run_request
from assets.definitions import defs
from seestocks_rank.store.layout import DataRoot


def materialize_all_pages(
    instance: dg.DagsterInstance,
    resources: dict[str, object],
    *,
    raise_on_error: bool = True,
    log_level: str = "INFO",
) -> dg.ExecuteInProcessResult:
    """Run in process what the nightly schedule launches: sync the category pages (dynamic partitions),
    then one run of every asset over the whole page range."""
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    sync = defs.resolve_job_def("sync_category_pages").execute_in_process(
        instance=instance, resources=resources, raise_on_error=raise_on_error, run_config=run_config
    )
    if not sync.success:
        return sync
    request = all_pages_run_request(instance)
    if isinstance(request, dg.SkipReason):
        raise RuntimeError(request.skip_message)
    return defs.resolve_job_def("nightly_rankings").execute_in_process(
        instance=instance,
        resources=resources,
        tags=request.tags,
        raise_on_error=raise_on_error,
        run_config=run_config,
    )


def _ensure_dagster_home(root: DataRoot) -> Path:
    """``$DAGSTER_HOME`` or ``<data root>/dagster_home`` seeded with the project's dagster.yaml."""
    home = Path(os.environ.get("DAGSTER_HOME") or root.dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    project_yaml = Path(__file__).resolve().parents[1] / "dagster.yaml"
    if project_yaml.exists() and not (home / "dagster.yaml").exists():
        shutil.copy(project_yaml, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def run_pipeline(root: DataRoot, cross_encoder_minutes: float | None = None) -> None:
    """Materialize every asset for every category page, in process, on the persistent instance
    (so ``dagster dev`` shows the runs and the partitions)."""
    from assets.definitions import build_resources
    from resources import RankingSettings

    _ensure_dagster_home(root)
    settings = (
        RankingSettings()
        if cross_encoder_minutes is None
        else RankingSettings(cross_encoder_minutes=cross_encoder_minutes)
    )
    with dg.DagsterInstance.get() as instance:
        result = materialize_all_pages(instance, build_resources(str(root.path), settings), raise_on_error=False)
    if not result.success:
        raise SystemExit("the pipeline run failed; see the log above")
