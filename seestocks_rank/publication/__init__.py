"""The analysts' DuckDB file: its tables (:mod:`.tables`), its history of runs, rankings and page health
(:mod:`.history`) and its documented schema (:mod:`.schema`)."""
