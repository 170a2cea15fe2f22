"""When the served image model is retrained: the cadence of the vision fine-tuning.

A night's catalog rarely differs much from the one the served model was trained on, and a new model means
re-embedding every product image. So the model the pipeline serves is **kept** until one of:

- a retrain is asked for (``retrain`` on ``VisionModelResource``, for one run);
- the training setup changed: architecture, start checkpoint (its content) or training settings;
- the catalog drifted: the share of today's (image, title) pairs the served model never saw is above the
  threshold (:data:`DEFAULT_DRIFT_THRESHOLD`, a quarter of the pairs). A pair is its image path, title and
  the image file's size and modification time (:func:`~seestocks_rank.models.images.image_stamp`), so an
  image replaced in place counts as new.

Each trained model folder holds the keys of the pairs it was trained on (:data:`PAIRS_FILE`), and the data
root's ``models/vlm/`` holds a pointer to the served model (:data:`SERVED_FILE`), written last and
atomically, so it never names a half-written model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from seestocks_rank.store.tables import write_parquet_atomic

DEFAULT_DRIFT_THRESHOLD = 0.25  # keep the served model while at most a quarter of today's pairs are new to it


SERVED_FILE = "served.json"  # under models/vlm/: the version folder the pipeline serves


PAIRS_FILE = "pairs.parquet"  # in a version folder: the keys of the (image, title) pairs it was trained on


def pair_keys(paths: Sequence[str], titles: Sequence[str], stamps: Sequence[str] | None = None) -> list[str]:
    """One key per distinct (image path, title, image stamp), sorted: what :func:`drift` compares."""
    if len(paths) != len(titles) or (stamps is not None and len(stamps) != len(paths)):
        raise ValueError("paths, titles and stamps must be row-aligned")
    stamps = stamps if stamps is not None else [""] * len(paths)
    rows = zip(paths, titles, stamps, strict=True)
    return sorted({hashlib.sha1(f"{p}\t{t}\t{s}".encode()).hexdigest()[:16] for p, t, s in rows})


def setup_key(architecture: str, start_model: str, config: object) -> str:
    """A hash of what a training run depends on besides its pairs: the architecture, the start model
    (``<architecture>@<checkpoint content hash>`` or ``@random-seed<N>``) and the training settings."""
    settings = asdict(config) if hasattr(config, "__dataclass_fields__") else config
    blob = json.dumps({"arch": architecture, "start": start_model, "config": settings}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Drift:
    """How today's pairs differ from the ones the served model was trained on."""

    current: int
    trained: int
    new: int  # today's pairs the served model never saw
    removed: int  # pairs it was trained on that left the catalog

    @property
    def new_share(self) -> float:
        return self.new / self.current if self.current else 0.0

    @property
    def removed_share(self) -> float:
        return self.removed / self.trained if self.trained else 0.0


def drift(current: Iterable[str], trained: Iterable[str]) -> Drift:
    now, seen = set(current), set(trained)
    return Drift(current=len(now), trained=len(seen), new=len(now - seen), removed=len(seen - now))


@dataclass(frozen=True)
class CadenceDecision:
    keep: bool  # serve the current model; False: train (or reuse an identical earlier training)
    reason: str
    drift: Drift | None = None
    threshold: float = DEFAULT_DRIFT_THRESHOLD


def check_threshold(threshold: float) -> float:
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(
            f"drift_threshold {threshold!r}: use a share of the catalog's (image, title) pairs between 0 and 1"
        )
    return threshold


def decide(
    current: Collection[str],
    setup: str,
    *,
    served_setup: str | None,
    served_pairs: Collection[str] | None,
    retrain: bool = False,
    threshold: float = DEFAULT_DRIFT_THRESHOLD,
) -> CadenceDecision:
    """Keep the served model (set up as ``served_setup``, trained on ``served_pairs``) for today's pairs
    ``current`` and training setup ``setup``, or train? Keep when no retrain is asked for, the setups match
    and at most ``threshold`` of today's pairs are new to the served model."""
    check_threshold(threshold)
    if served_setup is None or served_pairs is None:
        return CadenceDecision(False, "no served model", threshold=threshold)
    change = drift(current, served_pairs)
    if retrain:
        return CadenceDecision(False, "retrain requested", change, threshold)
    if served_setup != setup:
        return CadenceDecision(False, "training setup changed (architecture, start checkpoint or settings)",
                               change, threshold)  # fmt: skip
    if change.new_share > threshold:
        return CadenceDecision(False, f"drift {change.new_share:.3f} > threshold {threshold:g}", change, threshold)
    return CadenceDecision(True, f"drift {change.new_share:.3f} <= threshold {threshold:g}", change, threshold)


# ---------------------------------------------------------------------------------------------- on disk
@dataclass(frozen=True)
class ServedModel:
    """The model the pipeline serves: a version folder under the vision models root."""

    version: str
    folder: Path
    setup: str
    trained_at: str | None = None


def read_pairs(folder: Path) -> list[str] | None:
    path = Path(folder) / PAIRS_FILE
    if not path.exists():
        return None
    return pl.read_parquet(path).get_column("pair").to_list()


def write_pairs(folder: Path, keys: Sequence[str]) -> Path:
    table = pl.DataFrame({"pair": list(keys)}, schema={"pair": pl.String})
    return write_parquet_atomic(table, Path(folder) / PAIRS_FILE)


def staging_folder(root: Path, version: str) -> Path:
    """A fresh hidden folder beside the version folders to train into (see :func:`install`); the staging
    folders a killed run left behind are removed first."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for stale in [*root.glob(".*.staging-*"), *root.glob(".*.replaced-*")]:
        shutil.rmtree(stale, ignore_errors=True)
    return root / f".{version}.staging-{uuid.uuid4().hex[:8]}"


def install(staging: Path, folder: Path) -> Path:
    """Move a whole trained model from ``staging`` to its version ``folder`` (renames: a reader sees the old
    folder, no folder, or the new one, never a half-written one); a folder already there is replaced."""
    if folder.exists():
        old = folder.with_name(f".{folder.name}.replaced-{uuid.uuid4().hex[:8]}")
        folder.rename(old)
        staging.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(folder)
    return folder


def read_served(root: Path, required: Sequence[str] = ()) -> ServedModel | None:
    """The served model under ``root``, or None: no pointer yet, an unreadable one, or a folder missing
    its pairs file or one of ``required`` (a model that is not whole is never served)."""
    path = Path(root) / SERVED_FILE
    try:
        data = json.loads(path.read_text())
        served = ServedModel(data["version"], Path(root) / data["version"], data["setup"], data.get("trained_at"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not all((served.folder / name).exists() for name in (PAIRS_FILE, *required)):
        return None
    return served


def write_served(root: Path, version: str, setup: str, trained_at: datetime | None = None) -> Path:
    """Point the pipeline at ``root/version`` (temp file + atomic rename: a crash leaves the old pointer)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = (trained_at or datetime.now(UTC)).isoformat()
    fd, tmp = tempfile.mkstemp(prefix=f".{SERVED_FILE}.", suffix=".tmp", dir=root)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"version": version, "setup": setup, "trained_at": stamp}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, root / SERVED_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return root / SERVED_FILE
