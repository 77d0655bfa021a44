"""Restore a parent object (and, later, chosen relationship paths) from a version."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapper, object_session

from .exc import ReverterException
from .operations import Operation

if TYPE_CHECKING:
    from .version import VersionMixin


def _parent_class(version: VersionMixin) -> type:
    return type(version).__versioning_manager__.parent_class_map[type(version)]


def revert(version: VersionMixin, relations: list[str]) -> Any:
    """Restore ``version``'s parent object to the values of ``version``.

    The parent is fetched by primary key (``Session.get``: the identity map first). A
    deleted parent is recreated without calling its ``__init__``; a DELETE version
    deletes the parent. Nothing is committed.
    """
    parent_cls = _parent_class(version)
    parent_mapper: Mapper[Any] = sa.inspect(parent_cls)
    for name in relations:
        head = name.split(".", 1)[0]
        if head not in parent_mapper.relationships:
            raise ReverterException(
                f"{parent_cls.__name__} has no relationship {head!r} (in relations="
                f"{relations!r}); relationships: {', '.join(parent_mapper.relationships.keys())}."
            )
    if relations:
        raise ReverterException(
            "reverting relationships is not implemented yet; call revert() without "
            "'relations' to restore the object's own columns."
        )
    session = object_session(version)
    if session is None:
        raise ReverterException(f"{type(version).__name__} is not attached to a session.")
    pk = tuple(version._pk())
    obj = session.get(parent_cls, pk if len(pk) > 1 else pk[0])
    if version.operation is Operation.DELETE:
        if obj is not None:
            session.delete(obj)
        return None
    if obj is None:
        obj = parent_mapper.class_manager.new_instance()
        session.add(obj)
    for key in version._attribute_keys():
        if key in parent_mapper.column_attrs:
            setattr(obj, key, getattr(version, key))
    return obj
