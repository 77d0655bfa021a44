"""Differences between any two versions of one object: columns, and relationship members.

``diff(v1, v7, relations=["tags"])`` compares the versioned columns of the two versions
(no query: both are loaded) and, for each named relationship, its members as of each
version's transaction (the temporal relationships: two loads per relationship, none if
they are already loaded).
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Optional

import sqlalchemy as sa
from sqlalchemy.orm import object_session

from .changeset import Change, as_dict
from .changeset import diff as compare
from .exc import VersioningError

if TYPE_CHECKING:
    from .version import VersionMixin


@dataclasses.dataclass(frozen=True)
class RelationChange:
    """Members a relationship gained and lost between two versions."""

    key: str
    #: Members at the newer version that the older one did not have.
    added: tuple[Any, ...]
    #: Members at the older version that the newer one no longer has.
    removed: tuple[Any, ...]

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)


@dataclasses.dataclass(frozen=True)
class VersionDiff:
    """What changed from ``older`` to ``newer``, two versions of one object."""

    older: Any
    newer: Any
    #: Column changes, ``Change(key, old, new)``, in attribute order.
    changes: tuple[Change, ...]
    #: ``RelationChange`` by relationship name, for the relationships asked for.
    relations: Mapping[str, RelationChange] = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({}), hash=False
    )

    @property
    def changeset(self) -> dict[str, list[Any]]:
        """``{attribute: [old, new]}`` of the column changes."""
        return as_dict(self.changes)

    def __bool__(self) -> bool:
        return bool(self.changes) or any(self.relations.values())


def _check(older: Any, newer: Any) -> None:
    for version in (older, newer):
        if not hasattr(type(version), "_version_info"):
            raise VersioningError(
                f"diff() compares versions (e.g. article.versions[0]), got {version!r}."
            )
    if older._version_info() is not newer._version_info() or older._pk() != newer._pk():
        raise VersioningError(
            f"diff() compares two versions of one object; got {type(older).__name__} "
            f"{older._pk()} and {type(newer).__name__} {newer._pk()}."
        )


def _identity(member: Any) -> Any:
    if hasattr(type(member), "_version_info"):
        return (
            type(member).__versioning_manager__.parent_class_map.get(type(member)),
            *member._pk(),
        )
    state = sa.inspect(member)
    return (state.mapper.base_mapper, *(state.identity or (id(member),)))


def _members(version: Any, key: str) -> list[Any]:
    value = getattr(version, key)
    if value is None:
        return []
    if isinstance(value, (list, tuple, set)):
        return list(value)
    if hasattr(value, "select") and not hasattr(value, "all"):  # write_only
        session = object_session(version)
        assert session is not None
        return list(session.scalars(value.select()))
    if hasattr(value, "all"):  # dynamic
        return list(value.all())
    return [value]


def _relation(older: Any, newer: Any, key: str) -> RelationChange:
    mapper = sa.inspect(type(older))
    if key not in mapper.relationships:
        parent = type(older).__versioning_manager__.parent_class_map[type(older)]
        raise VersioningError(
            f"{type(older).__name__} has no relationship {key!r} (in relations=...); "
            f"relationships of {parent.__name__} reflected on it: "
            f"{', '.join(sorted(mapper.relationships.keys())) or 'none'}."
        )
    before = {_identity(m): m for m in _members(older, key)}
    after = {_identity(m): m for m in _members(newer, key)}
    return RelationChange(
        key=key,
        added=tuple(m for k, m in after.items() if k not in before),
        removed=tuple(m for k, m in before.items() if k not in after),
    )


def diff(older: Any, newer: Any, relations: Optional[Iterable[str]] = None) -> VersionDiff:
    """Compare two versions of one object (any two, not only neighbours).

    Columns: every versioned attribute whose value differs. A DELETE version holds the
    last values (NULLs with ``NullDeletePlugin``), so compare it knowingly.

    :param relations: relationship names to compare as of each version's transaction; a
        member is identified by its primary key, so a tag renamed between the versions is
        neither added nor removed.
    :raises VersioningError: the versions belong to different objects, or a relationship
        name is unknown.
    """
    _check(older, newer)
    version: VersionMixin = older
    # The changeset's own comparison: with a previous version the operation plays no part.
    changes = compare(version._attribute_keys(), older, newer)
    found = {key: _relation(older, newer, key) for key in dict.fromkeys(relations or [])}
    return VersionDiff(older, newer, changes, types.MappingProxyType(found))


async def adiff(older: Any, newer: Any, relations: Optional[Iterable[str]] = None) -> VersionDiff:
    """``await adiff(older, newer, relations=[...])``: ``diff`` for ``AsyncSession`` users.

    Relationship members are loaded in the session's greenlet.
    """
    from sqlalchemy.ext.asyncio import async_object_session

    session = async_object_session(older)
    if session is None:
        raise sa.orm.exc.DetachedInstanceError(
            f"{type(older).__name__} is not attached to an AsyncSession."
        )
    chosen = list(relations or [])
    return await session.run_sync(lambda _: diff(older, newer, chosen))
