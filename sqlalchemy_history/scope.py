"""Which version tables hold one model's history: its hierarchy's tables and its links.

A model's own versions may span several tables (joined-table inheritance: one row per table
for each version), and its many-to-many links live in association version tables, keyed by
columns that copy its primary key. The audit log, retention and maintenance helpers ask
this module instead of walking mappers themselves.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Optional

import sqlalchemy as sa
from sqlalchemy.orm import Mapper

if TYPE_CHECKING:
    from .manager import VersioningManager
    from .tables import VersionTable


def hierarchy_tables(manager: VersioningManager, mapper: Mapper[Any]) -> list[VersionTable]:
    """Version tables of every class sharing ``mapper``'s rows (non-concrete inheritance).

    Base tables come first. A joined-inheritance object has one row per table for each
    version, so whatever removes or compares versions must consider them together.
    """
    top = mapper
    while top.inherits is not None and not top.concrete:
        top = top.inherits
    found: list[VersionTable] = []
    for candidate in top.self_and_descendants:
        chain = candidate
        concrete = False
        while chain is not top:
            concrete = concrete or chain.concrete
            assert chain.inherits is not None
            chain = chain.inherits
        if concrete:
            continue
        for table in candidate.tables:
            info = manager.version_tables.get(table)  # type: ignore[call-overload]
            if info is not None and info not in found:
                found.append(info)
    return found


@dataclasses.dataclass(frozen=True, eq=False)
class Link:
    """An association version table whose rows reference one model's rows."""

    info: VersionTable
    #: One tuple per side of the link that references the model (two for a
    #: self-referential many-to-many): the association version columns copying the
    #: model's primary key, in primary key order.
    sides: tuple[tuple[sa.Column[Any], ...], ...]


def links(manager: VersioningManager, mapper: Mapper[Any]) -> list[Link]:
    """Return the association version tables linking ``mapper``'s rows to others.

    Found from every versioned class's many-to-many relationships, declared on either side
    (a relationship declared only on ``Article`` still links ``Tag`` rows).
    """
    own_tables = {info.parent for info in hierarchy_tables(manager, mapper)}
    sides: dict[VersionTable, list[tuple[sa.Column[Any], ...]]] = {}
    for cls in list(manager.version_class_map):
        other: Mapper[Any] = sa.inspect(cls)
        for prop in other.relationships:
            if prop.secondary is None or prop.viewonly:
                continue
            info = manager.association_tables.get(prop.secondary)  # type: ignore[call-overload]
            if info is None:
                continue
            for pairs in (prop.synchronize_pairs, prop.secondary_synchronize_pairs or []):
                side = _side(info, pairs, own_tables)
                known = sides.setdefault(info, [])
                if side is not None and not any(_same(side, k) for k in known):
                    known.append(side)
    return [Link(info, tuple(found)) for info, found in sides.items() if found]


def _same(a: tuple[sa.Column[Any], ...], b: tuple[sa.Column[Any], ...]) -> bool:
    # Columns overload ==; compare identities.
    return len(a) == len(b) and all(x is y for x, y in zip(a, b))


def _side(
    info: VersionTable, pairs: Any, own_tables: set[sa.Table]
) -> Optional[tuple[sa.Column[Any], ...]]:
    """The association version columns copying one of ``own_tables``' primary key."""
    by_referenced = {referenced: copied for referenced, copied in pairs}
    for table in own_tables:
        key = list(table.primary_key.columns)
        if key and all(c in by_referenced for c in key):
            return tuple(info.columns[by_referenced[c]] for c in key)
    return None
