"""Questions about classes, objects and sessions: is it versioned, what is its version class."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapper, Session, object_session
from sqlalchemy.orm.util import AliasedClass, AliasedInsp

from .exc import ClassNotVersioned, TableNotVersioned
from .manager import VersioningManager


def _class(obj_or_class: Any) -> type:
    """Return the class behind a class, an ``aliased()`` class, a mapper or an instance."""
    if isinstance(obj_or_class, type):
        return obj_or_class
    if isinstance(obj_or_class, (AliasedClass, AliasedInsp)):
        return sa.inspect(obj_or_class).mapper.class_  # type: ignore[no-any-return]
    if isinstance(obj_or_class, Mapper):
        return obj_or_class.class_
    return type(obj_or_class)


def _managers() -> list[VersioningManager]:
    from .events import active_managers

    return active_managers()


def _table_manager(table: sa.Table) -> VersioningManager:
    for manager in _managers():
        if (
            table in manager.version_tables
            or table in manager.association_tables
            or manager.version_info(table) is not None
        ):
            return manager
    raise TableNotVersioned(
        f"table {table.name!r} is neither versioned nor a version table; version the model "
        f"mapped to it (__versioned__ = {{}}) or the many-to-many relationship using it."
    )


def get_versioning_manager(obj_or_class: Any) -> VersioningManager:
    """Return the manager that versions ``obj_or_class``.

    Accepts a versioned model or its version class, an ``aliased()`` form of either, an
    instance, or a ``Table`` (parent, version or association table).

    :raises ClassNotVersioned: for a class no manager versions.
    :raises TableNotVersioned: for a table no manager versions.
    """
    if isinstance(obj_or_class, sa.Table):
        return _table_manager(obj_or_class)
    cls = _class(obj_or_class)
    manager = getattr(cls, "__versioning_manager__", None)
    if isinstance(manager, VersioningManager):
        return manager
    for candidate in _managers():
        if cls in candidate.version_class_map or cls in candidate.class_options:
            return candidate
    raise ClassNotVersioned(
        f"{cls.__name__} is not versioned; add __versioned__ = {{}} to it and call "
        f"make_versioned() before the models are defined."
    )


def is_versioned(obj_or_class: Any) -> bool:
    """Return whether ``obj_or_class`` is a versioned model (class or instance)."""
    cls = _class(obj_or_class)
    for manager in _managers():
        if cls in manager.version_class_map:
            return True
        if cls in manager.class_options:
            return bool(manager.class_options[cls].versioning)
    return False


def version_class(model: Any) -> type:
    """Return the version class of ``model`` (a class or an instance)."""
    cls = _class(model)
    return get_versioning_manager(cls).version_class(cls)


def parent_class(version_cls: Any) -> type:
    """Return the model whose history ``version_cls`` (a class, aliased class or version
    object) records."""
    cls = _class(version_cls)
    try:
        return get_versioning_manager(cls).parent_class_map[cls]
    except KeyError:
        raise ClassNotVersioned(
            f"{cls.__name__} is not a version class; pass e.g. version_class({cls.__name__})."
        ) from None


def transaction_class(model: Any) -> type:
    """Return the mapped ``Transaction`` class used for ``model``."""
    manager = get_versioning_manager(model)
    return manager.transaction_cls  # type: ignore[no-any-return]


def version_table(table: sa.Table) -> sa.Table:
    """Return the version table of ``table`` (a versioned model's or an association table)."""
    for manager in _managers():
        if table in manager.version_table_map:
            return manager.version_table_map[table]
        if manager.version_info(table) is not None:
            raise TableNotVersioned(
                f"table {table.name!r} is a version table; parent_table() returns its parent."
            )
    raise TableNotVersioned(f"table {table.name!r} has no version table")


def parent_table(table: sa.Table) -> sa.Table:
    """Return the parent table of version table ``table``."""
    for manager in _managers():
        info = manager.version_info(table)
        if info is not None:
            return info.parent
    raise TableNotVersioned(f"table {table.name!r} is not a version table")


def option(obj: Any, name: str) -> Any:
    """Return versioning option ``name`` for ``obj`` (class, object or version class)."""
    return get_versioning_manager(obj).option(_class(obj), name)


def tx_column_name(obj: Any) -> str:
    """Return the transaction column name of ``obj``'s version table."""
    return str(option(obj, "transaction_column_name"))


def end_tx_column_name(obj: Any) -> str:
    """Return the end-transaction column name of ``obj``'s version table."""
    return str(option(obj, "end_transaction_column_name"))


def end_tx_attr(obj: Any) -> Any:
    """Return the end-transaction attribute of a version class (given a version object or
    class, or a versioned model, whose version class is then used)."""
    cls = _class(obj)
    manager = get_versioning_manager(cls)
    version_cls = cls if cls in manager.parent_class_map else manager.version_class(cls)
    return getattr(version_cls, end_tx_column_name(obj))


def count_versions(obj: Any) -> int:
    """Return how many versions ``obj`` has (one ``COUNT`` query, no reflection)."""
    session = object_session(obj)
    if session is None:
        return 0
    cls = _class(obj)
    manager = get_versioning_manager(cls)
    mapper: Mapper[Any] = sa.inspect(cls)
    table = mapper.local_table
    info = manager.version_tables.get(table) if isinstance(table, sa.Table) else None
    if info is None or not sa.inspect(obj).has_identity:
        return 0
    state = sa.inspect(obj)
    pk = state.identity
    keys = info.version_primary_key
    statement = (
        sa.select(sa.func.count())
        .select_from(info.table)
        .where(*(c == v for c, v in zip(keys, pk)))
    )
    return int(session.scalar(statement) or 0)


def _versioned_attrs(obj: Any) -> frozenset[str]:
    manager = get_versioning_manager(obj)
    return manager.plan_for(sa.inspect(_class(obj))).attribute_keys


def changeset(obj: Any) -> dict[str, list[Any]]:
    """Return the pending (unflushed) changes of ``obj`` in SQLAlchemy-History's format.

    ``{attribute: [new, old]}`` for pending inserts and updates (note the order, kept for
    compatibility: unlike ``version.changeset``, the new value comes first); an object
    marked for deletion gives ``[None, value]`` for each non-null, non-key value.
    """
    state = sa.inspect(obj)
    session = object_session(obj)
    mapper = state.mapper
    data: dict[str, list[Any]] = {}
    if session is not None and obj in session.deleted:
        for prop in mapper.column_attrs:
            if any(c.primary_key for c in prop.columns):
                continue
            value = getattr(obj, prop.key)
            if value is not None:
                data[prop.key] = [None, value]
        return data
    for key in _versioned_attrs(obj):
        history = state.attrs[key].history
        if history.has_changes():
            new = history.added[0] if history.added else None
            old = history.deleted[0] if history.deleted else None
            data[key] = [new, old]
    return data


def is_modified(obj: Any) -> bool:
    """Return whether a versioned column of ``obj`` has a pending change."""
    if not is_versioned(obj):
        return False
    state = sa.inspect(obj)
    keys = _versioned_attrs(obj)
    modified = keys - state.unmodified_intersection(keys)
    return any(state.attrs[k].history.has_changes() for k in modified)


def is_modified_or_deleted(obj: Any) -> bool:
    """Return whether ``obj`` has a pending versioned change or is marked for deletion."""
    session = object_session(obj)
    return is_modified(obj) or (session is not None and obj in session.deleted)


def versioned_objects(session: Session) -> Iterator[Any]:
    """Yield the versioned objects that ``session`` will insert, update or delete."""
    for obj in (*session.new, *session.dirty, *session.deleted):
        if is_versioned(obj):
            yield obj


def is_session_modified(session: Session) -> bool:
    """Return whether flushing ``session`` would write history."""
    for obj in versioned_objects(session):
        if obj in session.new or obj in session.deleted or is_modified(obj):
            return True
    return any(any(m.plugins.is_session_modified(session)) for m in _managers())


def get_association_proxies(cls: Any) -> dict[str, Any]:
    """Return ``{name: proxy}`` for each association proxy of ``cls`` (inherited ones too)."""
    from sqlalchemy.ext.associationproxy import AssociationProxyExtensionType

    mapper: Mapper[Any] = sa.inspect(_class(cls))
    return {
        key: descriptor
        for key, descriptor in mapper.all_orm_descriptors.items()
        if descriptor.extension_type is AssociationProxyExtensionType.ASSOCIATION_PROXY
    }


def is_table_column(column: Any) -> bool:
    """Return whether ``column`` is a table ``Column`` (not an expression)."""
    return isinstance(column, sa.Column)


def is_internal_column(model: Any, column_name: str) -> bool:
    """Return whether ``column_name`` is one of the columns versioning adds
    (``transaction_id``, ``end_transaction_id``, ``operation_type`` or their option names)."""
    return column_name in (
        option(model, "transaction_column_name"),
        option(model, "end_transaction_column_name"),
        option(model, "operation_type_column_name"),
    )


def versioned_column_properties(obj_or_class: Any) -> Iterator[Any]:
    """Yield the column properties of a versioned model (class or object) that are versioned."""
    keys = _versioned_attrs(obj_or_class)
    mapper: Mapper[Any] = sa.inspect(_class(obj_or_class))
    for prop in mapper.column_attrs:
        if prop.key in keys:
            yield prop


def versioned_relationships(obj: Any, versioned_column_keys: Iterable[str]) -> Iterator[Any]:
    """Yield the writable relationships of ``obj`` whose local columns include a versioned
    column (``versions`` and other view-only relationships are left out)."""
    keys = set(versioned_column_keys)
    mapper: Mapper[Any] = sa.inspect(_class(obj))
    for prop in mapper.relationships:
        if not prop.viewonly and any(c.key in keys for c in prop.local_columns):
            yield prop


def version_obj(session: Session, parent_obj: Any) -> Any:
    """Return the version of ``parent_obj`` written by ``session``'s current transaction.

    ``None`` before the transaction's versioned flush wrote one (one ``SELECT`` by key).
    """
    manager = get_versioning_manager(parent_obj)
    uow = manager.units_of_work.get(session.get_transaction())  # type: ignore[arg-type]
    if uow is None or uow.transaction_id is None:
        return None
    version_cls = manager.version_class(parent_obj)
    identity = sa.inspect(parent_obj).identity
    if identity is None:
        return None
    return session.get(version_cls, (*identity, uow.transaction_id))
