"""Restore a parent object, and chosen relationship paths, as they were at a version.

``version.revert(relations=["tags", "tags.category"])`` restores the object's columns
and then, for each named path, the related objects *as they were at the root version's
transaction*: related objects that existed then are restored (recreated if deleted since),
one-to-many children that did not exist then are deleted, many-to-many links that did not
exist then are removed. Every object is restored at most once per call, so paths through
cycles (``tags.articles.tags``) terminate. Nothing is committed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import sqlalchemy as sa
from sqlalchemy.orm import Mapper, Session, object_session, with_parent
from sqlalchemy.orm.interfaces import MANYTOONE, ONETOMANY

from . import strategies
from .dialects import rules_for
from .exc import ReverterException
from .operations import Operation
from .relationships import base_info

if TYPE_CHECKING:
    from .manager import VersioningManager
    from .version import VersionMixin


def _paths(relations: list[str]) -> dict[str, list[str]]:
    """``["tags", "tags.category", "author"]`` -> ``{"tags": ["category"], "author": []}``."""
    tree: dict[str, list[str]] = {}
    for path in relations:
        head, _, rest = path.partition(".")
        if not head:
            raise ReverterException(f"empty relationship name in relations={relations!r}")
        tree.setdefault(head, [])
        if rest:
            tree[head].append(rest)
    return tree


class _Reverter:
    def __init__(self, session: Session, manager: VersioningManager, at: Any) -> None:
        self.session = session
        self.manager = manager
        #: The root version's transaction: every relationship is read as of it.
        self.at = at
        self.restored: dict[tuple[type, tuple[Any, ...]], Any] = {}

    def revert(self, version: VersionMixin, relations: list[str]) -> Any:
        parent_cls = self.manager.parent_class_map[type(version)]
        parent_mapper: Mapper[Any] = sa.inspect(parent_cls)
        tree = _paths(relations)
        for head in tree:
            if head not in parent_mapper.relationships:
                raise ReverterException(
                    f"{parent_cls.__name__} has no relationship {head!r} (in relations="
                    f"{relations!r}); its relationships are: "
                    f"{', '.join(sorted(parent_mapper.relationships.keys())) or 'none'}."
                )
        key = (parent_mapper.base_mapper.class_, tuple(version._pk()))
        if key in self.restored:
            obj = self.restored[key]
        else:
            obj = self._restore_columns(version, parent_cls, parent_mapper)
            self.restored[key] = obj
        if obj is None:
            return None
        # Many-to-one targets first: a recreated object's foreign keys must find their
        # targets back before anything is flushed.
        heads = sorted(
            tree, key=lambda h: parent_mapper.relationships[h].direction is not MANYTOONE
        )
        for head in heads:
            self._revert_relationship(version, obj, parent_mapper, head, tree[head])
        return obj

    def _restore_columns(
        self, version: VersionMixin, parent_cls: type, parent_mapper: Mapper[Any]
    ) -> Any:
        pk = tuple(version._pk())
        obj = self.session.get(parent_cls, pk if len(pk) > 1 else pk[0])
        if version.operation is Operation.DELETE:
            if obj is not None:
                self.session.delete(obj)
            return None
        if obj is None:
            obj = parent_mapper.class_manager.new_instance()
            self.session.add(obj)
        for key in version._attribute_keys():
            if key in parent_mapper.column_attrs:
                setattr(obj, key, getattr(version, key))
        return obj

    def _related_versions(self, version: VersionMixin, key: str) -> list[Any]:
        """Return what ``version``'s relationship ``key`` held at the root transaction."""
        version_cls = type(version)
        prop = sa.inspect(version_cls).relationships.get(key)
        if prop is None:
            raise ReverterException(
                f"{version_cls.__name__} has no temporal relationship {key!r}; it could not "
                f"be reflected from {self.manager.parent_class_map[version_cls].__name__}."
            )
        # A stand-in carrying the version's column values, with the root transaction id:
        # the relationship's own join then answers "as of the root transaction".
        proxy = sa.inspect(version_cls).class_manager.new_instance()
        for attr in sa.inspect(version_cls).column_attrs:
            setattr(proxy, attr.key, getattr(version, attr.key))
        setattr(proxy, version._version_info().options.transaction_column_name, self.at)
        statement = sa.select(prop.mapper).where(with_parent(proxy, prop.class_attribute))
        return list(self.session.scalars(statement.execution_options(populate_existing=True)))

    def _revert_relationship(
        self,
        version: VersionMixin,
        obj: Any,
        parent_mapper: Mapper[Any],
        key: str,
        rest: list[str],
    ) -> None:
        prop = parent_mapper.relationships[key]
        related = self._related_versions(version, key)
        target_versioned = prop.mapper.class_ in self.manager.version_class_map
        with self.session.no_autoflush:
            value = getattr(obj, key)
            if not prop.uselist:
                current = [] if value is None else [value]
            else:
                current = list(value.all() if hasattr(value, "all") else value)
        # Children leaving the relationship go first (deleted when they did not exist then,
        # and flushed), so restoring the others cannot collide with them on a unique key.
        if target_versioned:
            coming_back = {tuple(v._pk()) for v in related}
            gone = [c for c in current if tuple(sa.inspect(c).identity or ()) not in coming_back]
        else:
            gone = [c for c in current if not any(c is r for r in related)]
        if self._drop(prop, gone):
            self.session.flush()
        if target_versioned:
            wanted = [w for w in (self.revert(v, rest) for v in related) if w is not None]
        else:
            wanted = related
        if not prop.uselist:
            setattr(obj, key, wanted[0] if wanted else None)
        elif hasattr(value, "append") and not isinstance(value, list):
            # dynamic / write_only collections cannot be assigned: apply the difference
            for item in gone:
                value.remove(item)
            for item in wanted:
                if not any(item is c for c in current):
                    value.append(item)
        else:
            setattr(obj, key, wanted)

    def _drop(self, prop: Any, items: list[Any]) -> bool:
        """Delete one-to-many children that did not exist at the root transaction.

        Returns whether anything was deleted.
        """
        if prop.direction is not ONETOMANY or not items:
            return False
        info = base_info(self.manager, prop.mapper)
        if prop.mapper.class_ not in self.manager.version_class_map or info is None:
            return False
        keys = [tuple(sa.inspect(i).identity or ()) for i in items]
        columns = info.version_primary_key
        existing: set[tuple[Any, ...]] = set()
        known = [k for k in keys if k]
        if known:
            rules = rules_for(self.session.connection().dialect)
            for predicate in rules.key_chunks(columns, known):
                statement = sa.select(*columns).where(predicate, strategies.valid_at(info, self.at))
                existing.update(tuple(r) for r in self.session.execute(statement))
        dropped = False
        for item, item_key in zip(items, keys):
            if item_key not in existing:
                self.session.delete(item)
                dropped = True
        return dropped


def revert(version: VersionMixin, relations: Optional[list[str]] = None) -> Any:
    """Restore ``version``'s parent object (and ``relations``) and return it.

    The parent is fetched by primary key (``Session.get``: the identity map first). A
    deleted parent is recreated without calling its ``__init__``; a DELETE version
    deletes the parent and returns ``None``. Nothing is committed.
    """
    session = object_session(version)
    if session is None:
        raise ReverterException(f"{type(version).__name__} is not attached to a session.")
    manager = type(version).__versioning_manager__
    # No autoflush while reading history: a half-restored graph (a recreated object whose
    # many-to-one target is not back yet) must not be flushed; the one flush we need (after
    # dropping children that would collide on a unique key) is explicit.
    with session.no_autoflush:
        return _Reverter(session, manager, version._tx()).revert(version, list(relations or []))
