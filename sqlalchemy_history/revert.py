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
from sqlalchemy.orm.interfaces import ONETOMANY

from . import strategies
from .exc import ReverterException
from .operations import Operation

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
        for head, rest in tree.items():
            self._revert_relationship(version, obj, parent_mapper, head, rest)
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
        if target_versioned:
            wanted = [self.revert(v, rest) for v in related]
            wanted = [w for w in wanted if w is not None]
        else:
            wanted = related
        if not prop.uselist:
            current = getattr(obj, key)
            new = wanted[0] if wanted else None
            if current is not None and current is not new:
                self._drop(prop, [current])
            setattr(obj, key, new)
            return
        collection = getattr(obj, key)
        current = list(collection.all() if hasattr(collection, "all") else collection)
        gone = [c for c in current if not any(c is w for w in wanted)]
        self._drop(prop, gone)
        if hasattr(collection, "append") and not isinstance(collection, list):
            for item in gone:
                collection.remove(item)
            for item in wanted:
                if not any(item is c for c in current):
                    collection.append(item)
        else:
            setattr(obj, key, wanted)

    def _drop(self, prop: Any, items: list[Any]) -> None:
        """Delete one-to-many children that did not exist at the root transaction."""
        if prop.direction is not ONETOMANY or not items:
            return
        target_cls = prop.mapper.class_
        if target_cls not in self.manager.version_class_map:
            return
        from .relationships import base_info

        info = base_info(self.manager, prop.mapper)
        if info is None:
            return
        existing: set[tuple[Any, ...]] = set()
        keys = [tuple(sa.inspect(i).identity or ()) for i in items]
        columns = info.version_primary_key
        rules_keys = [k for k in keys if k]
        if rules_keys:
            from .dialects import rules_for

            rules = rules_for(self.session.connection().dialect)
            for predicate in rules.key_chunks(columns, rules_keys):
                statement = sa.select(*columns).where(predicate, strategies.valid_at(info, self.at))
                existing.update(tuple(r) for r in self.session.execute(statement))
        for item, item_key in zip(items, keys):
            if item_key not in existing:
                self.session.delete(item)


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
    return _Reverter(session, manager, version._tx()).revert(version, list(relations or []))
