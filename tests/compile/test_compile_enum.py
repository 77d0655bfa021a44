"""Copying a named Enum column into its version column, compiled for all five dialects.

Version columns of ``sa.Enum(..., name="article_kind")`` are typed ``history_article_kind``
(SQLAlchemy-History's name). PostgreSQL accepts no assignment or cast between two enum
types, so ``INSERT ... SELECT`` from the parent reads the column through text there; every
other backend takes the column as is.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, configure_mappers
from test_compile import DIALECTS, RecordingConnection, assert_neutral, compile_one, dialect

from sqlalchemy_history import make_versioned, remove_versioning, versioning_manager, writer
from sqlalchemy_history.maintenance import backfill_statement, resolve


@pytest.fixture
def info():
    make_versioned(user_cls=None)

    class Base(DeclarativeBase):
        pass

    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True)
        kind = sa.Column(sa.Enum("news", "blog", name="article_kind"))
        mood = sa.Column(sa.Enum("happy", "sad", name="mood", native_enum=False))

    configure_mappers()
    try:
        yield versioning_manager.version_tables[Article.__table__]
    finally:
        remove_versioning()
        Base.registry.dispose()


EXPECTED = {
    "postgresql": "CAST(CAST(article.kind AS TEXT) AS history_article_kind)",
    "sqlite": "SELECT article.id, article.kind AS anon_1,",
    "mysql": "SELECT article.id, article.kind AS anon_1,",
    "mssql": "SELECT article.id, article.kind AS anon_1,",
    "oracle": "SELECT article.id, article.kind AS anon_1,",
}


@pytest.mark.parametrize("dialect_name", list(DIALECTS))
def test_copy_reads_named_enums_through_text_on_postgresql(info, dialect_name):
    d = dialect(dialect_name)
    conn = RecordingConnection(d)
    writer.copy_versions(conn, info, [(1,), (2,)], 7, 1)
    statements = [str(compile_one(s, p, d)) for s, p in conn.executed]
    assert len(statements) == 1
    sql = statements[0]
    assert_neutral(sql, dialect_name)
    assert EXPECTED[dialect_name] in sql
    # A non-native enum is a string column everywhere: nothing to convert.
    assert "article.mood," in sql
    assert info.table.c.kind.type.name == "history_article_kind"


@pytest.mark.parametrize("dialect_name", list(DIALECTS))
def test_backfill_reads_named_enums_the_same_way(info, dialect_name):
    d = dialect(dialect_name)
    (history,) = resolve(RecordingConnection(d), info.parent)
    sql = str(backfill_statement(history, 7).compile(dialect=d))
    assert EXPECTED[dialect_name] in sql


def test_enum_copies_of_other_columns_or_types_never_share_cached_sql():
    from sqlalchemy_history.dialects.postgresql import EnumCopy

    table = sa.table("t", sa.column("a"), sa.column("b"))

    def key(column, name):
        return sa.select(EnumCopy(column, sa.Enum("x", name=name)))._generate_cache_key()

    assert key(table.c.a, "history_a") == key(table.c.a, "history_a")
    assert key(table.c.a, "history_a") != key(table.c.b, "history_a")
    assert key(table.c.a, "history_a") != key(table.c.a, "history_b")
