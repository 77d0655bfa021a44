"""PostgreSQL: reading an enum into a version column, and Continuum's missing trigger helpers.

Version columns of a named ``Enum`` have their own type, ``history_<name>`` (the name
SQLAlchemy-History gives it, so its databases and migrations keep applying). PostgreSQL
refuses to assign one enum type to another, even with the same labels, and has no cast
between them; ``INSERT INTO article_version ... SELECT article.kind ...`` therefore reads
the parent column through text::

    CAST(CAST(article.kind AS TEXT) AS history_article_kind)

Every other database stores these enums as strings or inline ``ENUM(...)`` columns and
takes the plain column. ``EnumCopy`` is that expression, compiled per dialect.

SQLAlchemy-Continuum's ``native_versioning`` writes history with PostgreSQL triggers, set
up with ``sqlalchemy_continuum.dialects.postgresql.sync_trigger`` and friends.
sqlalchemy_history records history from the ORM (``Session`` flushes) on every database
and installs no trigger, so importing any of those names from here fails with an
``ImportError`` that says so instead of a bare "no module named" error.
"""

from __future__ import annotations

from typing import Any, NoReturn

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal


class EnumCopy(ColumnElement[Any]):
    """``column`` read as a value of enum type ``type_`` (see the module docstring)."""

    # The column and the type name go into the statement cache key: two copies never share
    # SQL. SQLAlchemy types the list as an instance variable, hence no ClassVar (RUF012).
    _traverse_internals = [  # noqa: RUF012
        ("column", InternalTraversal.dp_clauseelement),
        ("type", InternalTraversal.dp_type),
        ("type_name", InternalTraversal.dp_string),  # a type's own cache key omits its name
    ]
    inherit_cache = True

    def __init__(self, column: ColumnElement[Any], type_: sa.Enum) -> None:
        self.column = column
        self.type = type_
        self.type_name = type_.name


@compiles(EnumCopy)
def _plain(element: EnumCopy, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.column, **kw)


@compiles(EnumCopy, "postgresql")
def _through_text(element: EnumCopy, compiler: SQLCompiler, **kw: Any) -> str:
    # No cast exists between two enum types; text converts to and from any of them.
    return compiler.process(sa.cast(sa.cast(element.column, sa.Text), element.type), **kw)


def __getattr__(name: str) -> NoReturn:
    if name.startswith("__"):
        raise AttributeError(name)
    raise ImportError(
        f"cannot import {name!r} from sqlalchemy_history.dialects.postgresql: "
        f"SQLAlchemy-Continuum's PostgreSQL triggers (native_versioning, sync_trigger) are not "
        f"part of sqlalchemy_history, which records history from ORM flushes on every database "
        f"and installs no trigger. Remove the trigger setup (and native_versioning=True); "
        f"docs/migrating.md lists what replaces it.",
        name=name,
    )
