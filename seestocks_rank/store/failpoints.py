"""Named points where a process can be killed on purpose, to prove that a crash at that moment loses
nothing (the crash tests set ``SEESTOCKS_FAILPOINT=<name>`` on a real run). Unset, a failpoint costs one
dictionary lookup.

Points: ``table.written`` (a table's new file is on disk, not yet in place), ``partitions.written`` (a
batch of pages is on disk, its index not yet switched), ``embeddings.chunk_written`` (new vectors are on
disk, the manifest not yet committed), ``publication.built`` (the new DuckDB file is complete, not yet
swapped in). The table points take the table's name as qualifier: ``partitions.written:fused_scores``.
"""

import os
import signal

FAILPOINT_ENV = "SEESTOCKS_FAILPOINT"


def failpoint(name: str, qualifier: str | None = None) -> None:
    """SIGKILL this process when ``$SEESTOCKS_FAILPOINT`` names this point (``name`` or ``name:qualifier``)."""
    wanted = os.environ.get(FAILPOINT_ENV)
    if wanted is not None and wanted in (name, f"{name}:{qualifier}"):
        os.kill(os.getpid(), signal.SIGKILL)
