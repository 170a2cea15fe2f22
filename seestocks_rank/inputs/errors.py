"""The error an unusable input raises: one line naming the file and the column or row at fault, which the
command line prints as it is (exit code 2) instead of a traceback."""


class InputError(ValueError):
    """An input file the pipeline cannot use (missing, unreadable, a missing or mistyped column, a bad
    row of a small table). Row-level problems of the catalog are not errors: they go to quarantine."""
