"""Dagster layer: assets, checks, jobs, schedules and sensors wiring the seestocks_rank library."""

import warnings

import dagster as dg

# BackfillPolicy is marked beta in Dagster 1.13; we rely on single-run backfills deliberately.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
