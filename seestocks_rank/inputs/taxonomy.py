"""Google product taxonomy (``taxonomy-with-ids`` format) with vectorised tree queries.

The taxonomy is held as a ``nodes`` table (one row per category, file order) plus numpy arrays
built from it: an id lookup, parent indices, depths and an ancestor matrix ``anc`` where
``anc[i, d]`` is the node index of the ancestor of node ``i`` at depth ``d + 1`` (``i`` itself at
its own depth, ``-1`` deeper). Pairwise queries (distance, containment, LCA depth) are then plain
numpy gathers and comparisons, fast enough for millions of pairs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from seestocks_rank.inputs.errors import InputError

__all__ = ["NODE_SCHEMA", "PATH_SEPARATOR", "Taxonomy", "TaxonomyError"]


PATH_SEPARATOR = " > "


_ID_SEPARATOR = " - "


NODE_SCHEMA: dict[str, pl.DataType] = {
    "category_id": pl.Int64(),
    "name": pl.String(),
    "path": pl.String(),
    "parent_id": pl.Int64(),
    "depth": pl.Int32(),
}


_MAX_DENSE_ID = 1 << 22


IntLike = int | np.integer | npt.ArrayLike


class TaxonomyError(InputError):
    """Invalid taxonomy input; the message names the (1-based) line or row and the problem."""


def _split_path(path: str) -> list[str]:
    """Split ``"A > B > C"`` into stripped elements (tolerates missing spaces around ``>``)."""
    return [part.strip() for part in path.split(">")]


def _build_nodes(entries: Iterable[tuple[int, int, str]], where: str = "line") -> pl.DataFrame:
    """Validate ``(line_no, category_id, path)`` entries and return the canonical nodes table.

    Parents are resolved in a second pass, so they may appear after their children.
    """
    ids: list[int] = []
    paths: list[str] = []
    names: list[str] = []
    depths: list[int] = []
    lines: list[int] = []
    id_line: dict[int, int] = {}
    path_index: dict[str, int] = {}
    for line_no, category_id, raw_path in entries:
        parts = _split_path(raw_path)
        if any(not part for part in parts):
            raise TaxonomyError(f"{where} {line_no}: empty category name in path {raw_path!r}")
        if category_id in id_line:
            raise TaxonomyError(
                f"{where} {line_no}: duplicate category id {category_id} (first defined on {where} "
                f"{id_line[category_id]})"
            )
        path = PATH_SEPARATOR.join(parts)
        if path in path_index:
            raise TaxonomyError(
                f"{where} {line_no}: duplicate path {path!r} (first defined on {where} {lines[path_index[path]]})"
            )
        id_line[category_id] = line_no
        path_index[path] = len(ids)
        ids.append(category_id)
        paths.append(path)
        names.append(parts[-1])
        depths.append(len(parts))
        lines.append(line_no)

    if not ids:
        raise TaxonomyError("taxonomy defines no categories")
    parent_ids: list[int | None] = []
    for i, path in enumerate(paths):
        if depths[i] == 1:
            parent_ids.append(None)
            continue
        parent_path = path.rsplit(PATH_SEPARATOR, 1)[0]
        parent = path_index.get(parent_path)
        if parent is None:
            raise TaxonomyError(f"{where} {lines[i]}: parent category {parent_path!r} of {path!r} is not defined")
        parent_ids.append(ids[parent])

    return pl.DataFrame(
        {"category_id": ids, "name": names, "path": paths, "parent_id": parent_ids, "depth": depths},
        schema=NODE_SCHEMA,
    )


def _parse_text(text: str) -> pl.DataFrame:
    """Parse ``taxonomy-with-ids`` text into the canonical nodes table."""
    entries: list[tuple[int, int, str]] = []
    for line_no, raw in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        id_part, sep, path = line.partition(_ID_SEPARATOR)
        if not sep:
            raise TaxonomyError(f"line {line_no}: expected 'ID - Path', got {line!r}")
        try:
            category_id = int(id_part.strip())
        except ValueError:
            msg = f"line {line_no}: category id {id_part.strip()!r} is not an integer"
            raise TaxonomyError(msg) from None
        entries.append((line_no, category_id, path))
    return _build_nodes(entries)


@dataclass(frozen=True, eq=False)
class Taxonomy:
    """A category tree; build it with :meth:`from_text`, :meth:`load` or :meth:`from_nodes`.

    ``nodes`` columns: ``category_id`` Int64, ``name`` Utf8 (last path element), ``path`` Utf8
    (``"A > B > C"``), ``parent_id`` Int64 (null for roots), ``depth`` Int32 (1 = root), file order.
    The constructor trusts ``nodes`` to be canonical; use :meth:`from_nodes` for untrusted tables.
    """

    nodes: pl.DataFrame
    ids: np.ndarray = field(init=False, repr=False, compare=False)
    _sorted_ids: np.ndarray = field(init=False, repr=False, compare=False)
    _sorted_pos: np.ndarray = field(init=False, repr=False, compare=False)
    _lut: np.ndarray | None = field(init=False, repr=False, compare=False)
    _parent: np.ndarray = field(init=False, repr=False, compare=False)
    _depth: np.ndarray = field(init=False, repr=False, compare=False)
    _anc: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ids = self.nodes["category_id"].to_numpy().astype(np.int64, copy=True)
        ids.setflags(write=False)
        order = np.argsort(ids, kind="stable")
        set_ = object.__setattr__
        set_(self, "ids", ids)
        set_(self, "_sorted_ids", ids[order])
        set_(self, "_sorted_pos", order.astype(np.int64))
        lut = None
        if len(ids) and ids.min() >= 0 and ids.max() < _MAX_DENSE_ID:  # dense id -> index table
            lut = np.full(int(ids.max()) + 1, -1, dtype=np.int64)
            lut[ids] = np.arange(len(ids))
        set_(self, "_lut", lut)

        depth = self.nodes["depth"].to_numpy().astype(np.int64)
        parent_ids = self.nodes["parent_id"].fill_null(-1).to_numpy().astype(np.int64)
        parent = np.where(depth > 1, self.index_of(parent_ids), -1)
        max_depth = int(depth.max()) if len(depth) else 0
        anc = np.full((len(ids), max_depth), -1, dtype=np.int32)
        for d in range(1, max_depth + 1):  # parents are one level shallower, so fill level by level
            rows = np.flatnonzero(depth == d)
            if d > 1:
                anc[rows] = anc[parent[rows]]
            anc[rows, d - 1] = rows
        set_(self, "_parent", parent)
        set_(self, "_depth", depth)
        set_(self, "_anc", anc)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_text(cls, text: str) -> Taxonomy:
        """Parse ``taxonomy-with-ids`` text (``#`` comments and blank lines are skipped)."""
        return cls(_parse_text(text))

    @classmethod
    def load(cls, path: str | Path) -> Taxonomy:
        """Read and parse a UTF-8 ``taxonomy-with-ids`` file; errors name the file."""
        path = Path(path)
        if not path.is_file():
            raise TaxonomyError(f"{path}: no such file")
        try:
            return cls.from_text(path.read_text(encoding="utf-8-sig"))
        except UnicodeDecodeError as exc:
            raise TaxonomyError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
        except TaxonomyError as exc:
            raise TaxonomyError(f"{path}: {exc}") from exc

    @classmethod
    def from_nodes(cls, nodes: pl.DataFrame) -> Taxonomy:
        """Rebuild from a ``nodes`` table (e.g. read back from Parquet), validating it."""
        missing = [c for c in ("category_id", "path") if c not in nodes.columns]
        if missing:
            raise TaxonomyError(f"nodes table is missing column(s): {', '.join(missing)}")
        ids = nodes["category_id"].cast(pl.Int64).to_list()
        paths = nodes["path"].cast(pl.String).to_list()
        for row, (cid, path) in enumerate(zip(ids, paths, strict=True), start=1):
            if cid is None or path is None:
                raise TaxonomyError(f"row {row}: null category_id or path")
        canonical = _build_nodes(zip(range(1, len(ids) + 1), ids, paths, strict=True), where="row")
        for column in ("parent_id", "depth", "name"):
            if column not in nodes.columns:
                continue
            given = nodes[column].cast(NODE_SCHEMA[column])
            mismatch = ~given.eq_missing(canonical[column])
            if mismatch.any():
                row = int(mismatch.arg_true()[0]) + 1
                raise TaxonomyError(
                    f"row {row}: {column} {given[row - 1]!r} disagrees with path "
                    f"{canonical['path'][row - 1]!r} (expected {canonical[column][row - 1]!r})"
                )
        return cls(canonical)

    def to_text(self) -> str:
        """Serialise to ``taxonomy-with-ids`` text (round-trips through :meth:`from_text`)."""
        pairs = zip(self.ids.tolist(), self.nodes["path"].to_list(), strict=True)
        lines = [f"{cid}{_ID_SEPARATOR}{path}" for cid, path in pairs]
        return "\n".join(lines) + "\n" if lines else ""

    # ------------------------------------------------------------------ lookups
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Taxonomy) and self.nodes.equals(other.nodes)

    __hash__ = None  # type: ignore[assignment]

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, category_id: object) -> bool:
        if isinstance(category_id, bool) or not isinstance(category_id, int | np.integer):
            return False
        return bool(self.index_of(int(category_id)) >= 0)

    def index_of(self, category_ids: IntLike) -> np.ndarray:
        """Positions of ``category_ids`` in ``nodes`` (same shape as the input); ``-1`` if unknown."""
        query = np.asarray(category_ids, dtype=np.int64)
        if self._lut is not None:
            in_range = (query >= 0) & (query < len(self._lut))
            return np.where(in_range, self._lut[np.where(in_range, query, 0)], -1)
        if not len(self.ids):
            return np.full(query.shape, -1, dtype=np.int64)
        pos = np.searchsorted(self._sorted_ids, query)
        pos = np.minimum(pos, len(self._sorted_ids) - 1)
        return np.where(self._sorted_ids[pos] == query, self._sorted_pos[pos], -1)

    def _idx(self, category_id: int) -> int:
        """Index of one known id; ``KeyError`` if unknown."""
        i = int(self.index_of(category_id))
        if i < 0:
            raise KeyError(f"unknown category id {category_id}")
        return i

    def path(self, category_id: int) -> str:
        """Full path ``"A > B > C"`` of a category."""
        return str(self.nodes["path"][self._idx(category_id)])

    def depth(self, category_id: int) -> int:
        """Depth of a category (1 = root)."""
        return int(self._depth[self._idx(category_id)])

    def parent(self, category_id: int) -> int | None:
        """Parent id, or ``None`` for a root."""
        p = self._parent[self._idx(category_id)]
        return None if p < 0 else int(self.ids[p])

    def children(self, category_id: int) -> list[int]:
        """Direct children, in file order."""
        return self.ids[self._parent == self._idx(category_id)].tolist()

    def siblings(self, category_id: int) -> list[int]:
        """Categories with the same parent (roots: the other roots), excluding the category itself."""
        i = self._idx(category_id)
        mask = self._parent == self._parent[i]
        mask[i] = False
        return self.ids[mask].tolist()

    def ancestors(self, category_id: int) -> list[int]:
        """Ancestors root first, excluding the category itself."""
        i = self._idx(category_id)
        return self.ids[self._anc[i, : self._depth[i] - 1]].tolist()

    def descendants(self, category_id: int, include_self: bool = True) -> np.ndarray:
        """Ids of all descendants (int64, file order), optionally including the category itself."""
        i = self._idx(category_id)
        mask = self._anc[:, self._depth[i] - 1] == i
        if not include_self:
            mask[i] = False
        return self.ids[mask]

    # ------------------------------------------------------------------ vectorised pair queries
    def _pair_indices(self, a: IntLike, b: IntLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcast ``a``/``b`` to node indices; returns ``(ia, ib, valid)`` with invalid indices at 0."""
        ia, ib = np.broadcast_arrays(self.index_of(a), self.index_of(b))
        valid = (ia >= 0) & (ib >= 0)
        return np.where(valid, ia, 0), np.where(valid, ib, 0), valid

    def _lca_depth_idx(self, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
        """LCA depth for index arrays (a shared ancestor at depth d implies shared ancestors above it)."""
        if not self._anc.shape[1]:
            return np.zeros(ia.shape, dtype=np.int64)
        rows_a = self._anc[ia]
        return ((rows_a == self._anc[ib]) & (rows_a >= 0)).sum(axis=-1, dtype=np.int64)

    def lca_depth(self, a: IntLike, b: IntLike) -> np.ndarray:
        """Depth of the lowest common ancestor (0 for different roots; -1 if either id is unknown)."""
        ia, ib, valid = self._pair_indices(a, b)
        return np.where(valid, self._lca_depth_idx(ia, ib), -1)

    def distance(self, a: IntLike, b: IntLike) -> np.ndarray:
        """Number of tree edges between ``a`` and ``b`` (roots joined by a virtual root); -1 if unknown."""
        ia, ib, valid = self._pair_indices(a, b)
        dist = self._depth[ia] + self._depth[ib] - 2 * self._lca_depth_idx(ia, ib)
        return np.where(valid, dist, -1)

    def is_within(self, a: IntLike, b: IntLike) -> np.ndarray:
        """True where ``a == b`` or ``a`` is a descendant of ``b``; False for unknown ids."""
        ia, ib, valid = self._pair_indices(a, b)
        if not self._anc.shape[1]:
            return valid
        return valid & (self._anc[ia, self._depth[ib] - 1] == ib)
