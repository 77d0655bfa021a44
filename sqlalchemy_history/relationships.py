"""Temporal relationship reflection: each parent relationship, as of a version's transaction.

For every relationship of a versioned class, its version class gets a ``viewonly``
relationship of the same name whose join is the parent's own join condition rewritten
onto version tables, plus "valid at this version's transaction" (``strategies.valid_at``)
for the related side. They are real relationships, so ``selectinload`` loads a page of
versions with their relations in one extra query.

"This version's transaction" is ``strategies.relationship_at``: an ``as_of`` query binds
one transaction for every relationship it loads instead.

- many-to-one / one-to-many / one-to-one (custom ``primaryjoin`` included): the join
  condition translated onto the version tables, AND the related version valid at
  ``self.transaction_id``;
- many-to-many to a versioned class: ``EXISTS`` (an association version row valid at
  ``self.transaction_id`` links the two) AND the related version valid then;
- a non-versioned target: the live objects (many-to-many still through the association
  table's history).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Callable, Optional

import sqlalchemy as sa
from sqlalchemy.orm import Mapper, RelationshipProperty, foreign, relationship, remote
from sqlalchemy.sql import visitors

from . import strategies
from .tables import VersionTable

if TYPE_CHECKING:
    from .manager import VersioningManager


class RelationshipWarning(UserWarning):
    """A relationship of a versioned class could not be reflected on its version class."""


class _Untranslatable(Exception):
    pass


def base_info(manager: VersioningManager, mapper: Mapper[Any]) -> Optional[VersionTable]:
    """Return the version table holding ``mapper``'s primary key and transaction columns."""
    table = mapper.local_table if mapper.concrete else mapper.base_mapper.local_table
    return manager.version_tables.get(table) if isinstance(table, sa.Table) else None


def _foreign_columns(prop: RelationshipProperty[Any]) -> set[Any]:
    pairs = [*prop.synchronize_pairs, *(prop.secondary_synchronize_pairs or ())]
    found = {dest for _, dest in pairs}
    if not found:
        # viewonly relationships may have no synchronize pairs; SQLAlchemy still computed
        # which columns are foreign while setting up the join.
        found = set(getattr(prop, "_calculated_foreign_keys", ()))
    return found


def _translator(
    manager: VersioningManager,
    prop: RelationshipProperty[Any],
    annotate: bool,
) -> Callable[[Any], Any]:
    """Return a ``replacement_traverse`` callback mapping parent columns to version columns.

    Columns of versioned tables become their version table copies. With ``annotate``,
    columns of ``prop.remote_side`` are wrapped in ``remote()`` and foreign key columns in
    ``foreign()``.
    """
    remote_side = prop.remote_side
    foreign_columns = _foreign_columns(prop)

    def replace(element: Any) -> Any:
        if not isinstance(element, sa.Column) or not isinstance(element.table, sa.Table):
            return None
        info = manager.version_tables.get(element.table)
        if info is None:
            replacement: Any = element
        else:
            copied = info.columns.get(element)
            if copied is None:
                raise _Untranslatable(
                    f"column {element.table.name}.{element.name} is not versioned (excluded)"
                )
            replacement = copied
        if annotate:
            if element in remote_side:
                replacement = remote(replacement)
            if element in foreign_columns:
                replacement = foreign(replacement)
        return replacement

    return replace


def _translate(expression: Any, replace: Callable[[Any], Any]) -> Any:
    return visitors.replacement_traverse(expression, {}, replace)  # type: ignore[call-overload]


def _lazy(prop: RelationshipProperty[Any]) -> str:
    # Mirror only the loader styles that change the attribute's type; eager parent
    # loaders are a choice about live objects, not about history.
    return prop.lazy if prop.lazy in ("dynamic", "write_only") else "select"  # type: ignore[return-value]


def temporal_relationship(
    manager: VersioningManager,
    prop: RelationshipProperty[Any],
    local: VersionTable,
) -> Optional[RelationshipProperty[Any]]:
    """Return the version-class counterpart of ``prop``, or ``None`` (with a warning)."""
    target_mapper = prop.mapper
    target_cls = target_mapper.class_
    target_version = manager.version_class_map.get(target_cls)
    target_info = base_info(manager, target_mapper) if target_version is not None else None
    at = strategies.relationship_at(local.transaction_column)
    where = f"{prop.parent.class_.__name__}.{prop.key}"
    try:
        order_by: Any = False
        if prop.order_by:
            plain = _translator(manager, prop, annotate=False)
            order_by = [_translate(o, plain) for o in prop.order_by]
        common: dict[str, Any] = {
            "viewonly": True,
            "uselist": prop.uselist,
            "lazy": _lazy(prop),
            "order_by": order_by,
        }
        if prop.secondary is None:
            join = _translate(prop.primaryjoin, _translator(manager, prop, True))
            if target_info is not None:
                join = sa.and_(join, strategies.valid_at(target_info, at, remote))
            target = target_version if target_version is not None else target_cls
            return relationship(target, primaryjoin=join, **common)

        association = manager.association_tables.get(prop.secondary)  # type: ignore[call-overload]
        if association is None:
            raise _Untranslatable(f"its secondary table {prop.secondary} is not versioned")
        assert prop.secondaryjoin is not None
        link_valid = strategies.valid_at(association, at)
        if target_info is None:
            replace = _translator(manager, prop, annotate=False)
            secondary_columns = set(association.table.c)
            return relationship(
                target_cls,
                secondary=association.table,
                primaryjoin=sa.and_(_translate(prop.primaryjoin, replace), link_valid),
                secondaryjoin=_translate(prop.secondaryjoin, replace),
                foreign_keys=[c for c in secondary_columns if c.key in _fk_keys(prop, association)],
                **common,
            )
        # The target's validity needs the local transaction id, which a secondaryjoin
        # cannot reference; an EXISTS over the association versions expresses the link.
        target_tables = set(target_mapper.tables)
        replace = _translator(manager, prop, annotate=False)

        def remote_target(element: Any) -> Any:
            replaced = replace(element)
            in_target = isinstance(element, sa.Column) and element.table in target_tables
            return remote(replaced) if replaced is not None and in_target else replaced

        # The primaryjoin holds the local side, the secondaryjoin the target side: only the
        # latter is remote. A self-referential relationship has one table on both sides,
        # so which join a column comes from is what tells them apart.
        # Correlated to both version tables wherever the EXISTS sits: in a lazy load the
        # local side is bound, but in ``ArticleVersion.tags.any(...)`` it is two levels up.
        link = (
            sa.exists()
            .where(
                _translate(prop.primaryjoin, replace),
                _translate(prop.secondaryjoin, remote_target),
                link_valid,
            )
            .correlate_except(association.table)
        )
        assert target_info is not None
        join = sa.and_(
            link,
            strategies.valid_at(target_info, at, lambda c: remote(c)),
            foreign(remote(target_info.transaction_column)) <= at,
        )
        return relationship(target_version, primaryjoin=join, **common)
    except _Untranslatable as error:
        warnings.warn(
            f"{where} is not reflected on its version class: {error}.",
            RelationshipWarning,
            stacklevel=2,
        )
        return None


def _fk_keys(prop: RelationshipProperty[Any], association: VersionTable) -> set[str]:
    pairs = [*prop.synchronize_pairs, *(prop.secondary_synchronize_pairs or ())]
    columns: dict[Any, sa.Column[Any]] = association.columns
    return {columns[dest].key for _, dest in pairs if dest in columns}


def add_temporal_relationships(
    manager: VersioningManager, mapper: Mapper[Any], version_cls: type
) -> None:
    """Add to ``version_cls`` the temporal counterpart of each relationship ``mapper`` owns."""
    local = base_info(manager, mapper)
    if local is None:
        return
    version_mapper: Mapper[Any] = sa.inspect(version_cls)
    options = manager.resolve_options(mapper.class_)
    excluded = set(options.exclude) - set(options.include)
    for prop in mapper.relationships:
        if prop.key in excluded:
            continue  # excluded from history by name
        if prop.parent is not mapper and not mapper.concrete:
            continue  # inherited: the parent class's version class has it
        if prop.mapper.class_ in manager.parent_class_map:
            continue  # a relationship to versions (``versions`` itself)
        if prop.key in version_mapper.attrs:
            continue
        counterpart = temporal_relationship(manager, prop, local)
        if counterpart is not None:
            version_mapper.add_property(prop.key, counterpart)
