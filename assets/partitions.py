"""Category pages are the partitions: one dynamic partition per active page, keyed by category id."""

import dagster as dg

CATEGORY_PAGES = "category_pages"
category_pages_partitions = dg.DynamicPartitionsDefinition(name=CATEGORY_PAGES)

# Per-category assets run a backfill of N pages as one run that processes them in batch.
single_run = dg.BackfillPolicy.single_run()
