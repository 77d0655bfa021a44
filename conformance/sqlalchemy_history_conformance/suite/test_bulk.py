"""Writes that bypass the unit of work: bulk statements, and rows the database changes itself.

- ORM bulk statements executed through a ``Session`` (``update()`` / ``delete()`` /
  ``insert()``, ``Query.update()`` / ``.delete()``), the legacy ``bulk_*`` methods and
  upserts (requirement ``records_bulk_statements``);
- rows that ``ON DELETE CASCADE`` / ``SET NULL`` rules delete or change, many-to-many links
  with ``passive_deletes`` included (``records_database_cascades``; the database must
  enforce foreign keys: ``foreign_keys``).

Each must leave exactly the history a flush of the same change leaves. Most tests run the
change twice on the same tables, on two disjoint sets of rows ("worlds", keys offset by
``WORLD``): once through the unit of work, once as the statement. Then they compare the two
histories read from the database: the same version rows with the same values, operation
types and validity chain, transactions compared by their rank within each world.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any, Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, relationship

from ._helpers import DELETE, INSERT, UPDATE, StatementCounter, given_pk, pk, tx_ids

__all__ = ["TestBulkStatements", "TestDatabaseCascades"]

#: Keys of world ``w`` are ``w * WORLD + 1`` and up.
WORLD = 1000
FLUSH, STATEMENT = 0, WORLD
TX, END, OP = "transaction_id", "end_transaction_id", "operation_type"

Change = Callable[[Session, int], None]


@dataclasses.dataclass(frozen=True)
class Shape:
    """How to compare one version table's rows across worlds."""

    #: Columns identifying a row (the first tells its world).
    identity: tuple[str, ...]
    #: Columns holding keys, compared relative to the world's first key.
    offsets: tuple[str, ...]
    #: Columns the database generates differently in each world, left out.
    skip: tuple[str, ...] = ()


def world_history(
    m: Any, shapes: dict[str, Shape], base: int, transactions: list[int]
) -> dict[str, list[tuple[Any, ...]]]:
    """The version rows of one world, keys made relative and transaction ids ranked.

    Also checks each row's validity chain: every version ends where the next one starts and
    the last one is open (where the table has an end column).
    """
    rank = {tx: i for i, tx in enumerate(transactions, 1)}

    def normal(column: str, value: Any) -> Any:
        if value is None:
            return None
        if column in (TX, END):
            return rank.get(value, f"transaction {value} of no world")
        return value

    found: dict[str, list[tuple[Any, ...]]] = {}
    for name, shape in shapes.items():
        chains: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
        for row in m.rows(name, [*shape.identity, TX]):
            if not base < row[shape.identity[0]] <= base + WORLD:
                continue
            values = {
                k: (v - base if k in shape.offsets and v is not None else normal(k, v))
                for k, v in row.items()
                if k not in shape.skip
            }
            chains[tuple(values[k] for k in shape.identity)].append(values)
        for chain in chains.values():
            if END in chain[0]:
                for earlier, later in zip(chain, chain[1:]):
                    assert earlier[END] == later[TX], (name, chain)
                assert chain[-1][END] is None, (name, chain)
        rows = [tuple(sorted(v.items())) for chain in chains.values() for v in chain]
        found[name] = sorted(rows, key=repr)
    return found


def run_world(m: Any, base: int, setup: Change, change: Change) -> list[int]:
    """``setup`` then ``change``, each in its own transaction; the transaction ids written."""
    before = set(tx_ids(m))
    with m.session() as session:
        setup(session, base)
        session.commit()
    with m.session() as session:
        change(session, base)
        session.commit()
    return sorted(set(tx_ids(m)) - before)


def same_history(
    m: Any, shapes: dict[str, Shape], setup: Change, by_flush: Change, by_statement: Change
) -> dict[str, list[tuple[Any, ...]]]:
    """Assert that ``by_statement`` leaves the history ``by_flush`` leaves; return it."""
    found = []
    for base, change in ((FLUSH, by_flush), (STATEMENT, by_statement)):
        transactions = run_world(m, base, setup, change)
        found.append((len(transactions), world_history(m, shapes, base, transactions)))
    assert found[1] == found[0]
    return found[1][1]


async def asame_history(
    m: Any, shapes: dict[str, Shape], setup: Change, by_flush: Change, by_statement: Any
) -> dict[str, list[tuple[Any, ...]]]:
    """``same_history`` through ``AsyncSession``: ``by_flush`` runs in ``run_sync``,
    ``by_statement`` is ``async def (session, base)``."""
    from sqlalchemy.util import greenlet_spawn

    async def flush(session: Any, base: int) -> None:
        await session.run_sync(by_flush, base)

    found = []
    for base, change in ((FLUSH, flush), (STATEMENT, by_statement)):
        before = set(await greenlet_spawn(tx_ids, m))
        async with m.async_session() as session:
            await session.run_sync(setup, base)
            await session.commit()
        async with m.async_session() as session:
            await change(session, base)
            await session.commit()
        transactions = sorted(set(await greenlet_spawn(tx_ids, m)) - before)
        history = await greenlet_spawn(world_history, m, shapes, base, transactions)
        found.append((len(transactions), history))
    assert found[1] == found[0]
    return found[1][1]


def ops(rows: list[tuple[Any, ...]], *identity: str) -> list[tuple[Any, Any, Any]]:
    """``(identity, transaction rank, operation)`` of each version row (identity: the
    value of the one column named, default ``id``, or a tuple of several)."""
    found = []
    for row in rows:
        values = dict(row)
        key = tuple(values[k] for k in identity or ("id",))
        found.append((key[0] if len(key) == 1 else key, values[TX], values[OP]))
    return sorted(found)


# -- bulk statements ----------------------------------------------------------------------


def bulk_articles(Base: Any) -> dict[str, Any]:
    """``Article``: a generated key, a unique ``n`` (what rows are compared by), ``views``
    excluded from versioning."""

    class Article(Base):
        __versioned__ = {"exclude": ["views"]}
        __tablename__ = "article"
        id = pk()
        n = sa.Column(sa.Integer, nullable=False, unique=True)
        name = sa.Column(sa.Unicode(100))
        content = sa.Column(sa.Unicode(100))
        views = sa.Column(sa.Integer, default=0)

    return locals()


ARTICLES = {"article_version": Shape(("n",), ("n",), ("id",))}


def four(m: Any) -> Change:
    """Articles 1-4; article 2 already holds the name the updates assign."""

    def setup(session: Session, base: int) -> None:
        names = ["a1", "b", "a3", "a4"]
        session.add_all(
            m.Article(n=base + i, name=name, content="c", views=1)
            for i, name in enumerate(names, 1)
        )

    return setup


def from_(m: Any, base: int, first: int) -> sa.ColumnElement[bool]:
    """Articles ``first`` and up of the world."""
    return m.Article.n.between(base + first, base + WORLD)


def keys_by_n(session: Session, m: Any, base: int) -> dict[int, int]:
    """Generated key of each article of the world, by its ``n`` (relative)."""
    found = session.execute(sa.select(m.Article.n, m.Article.id).where(from_(m, base, 1)))
    return {n - base: key for n, key in found}


def upsert(m: Any, rows: list[dict[str, Any]], update_name: bool) -> Any:
    """INSERT ... ON CONFLICT (n) DO UPDATE/NOTHING, or ON DUPLICATE KEY UPDATE/IGNORE."""
    dialect = m.engine.dialect.name
    Article = m.Article
    if dialect == "mysql":
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        mysql = mysql_insert(Article).values(rows)
        if update_name:
            return mysql.on_duplicate_key_update(name=mysql.inserted.name)
        return mysql.prefix_with("IGNORE")
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(Article).values(rows)
    if update_name:
        return statement.on_conflict_do_update(
            index_elements=[Article.n], set_={"name": statement.excluded.name}
        )
    return statement.on_conflict_do_nothing(index_elements=[Article.n])


UPDATE_FORMS = ["update() auto", "update() fetch", "update() no synchronize", "Query.update()"]
DELETE_FORMS = ["delete() auto", "delete() fetch", "delete() no synchronize", "Query.delete()"]
SYNCHRONIZE = {"auto": "auto", "fetch": "fetch", "no synchronize": False}


def _synchronize(form: str) -> dict[str, Any]:
    return {"synchronize_session": SYNCHRONIZE[form.split(" ", 1)[1]]}


@pytest.mark.requires("records_bulk_statements")
class TestBulkStatements:
    @pytest.mark.parametrize("form", UPDATE_FORMS)
    def test_update_where(self, conformance_models, form):
        m = conformance_models(bulk_articles)

        def by_flush(session, base):
            for article in session.scalars(sa.select(m.Article).where(from_(m, base, 2))):
                article.name, article.views = "b", 9

        def by_statement(session, base):
            if form == "Query.update()":
                session.query(m.Article).filter(from_(m, base, 2)).update({"name": "b", "views": 9})
                return
            statement = sa.update(m.Article).where(from_(m, base, 2)).values(name="b", views=9)
            session.execute(statement, execution_options=_synchronize(form))

        found = same_history(m, ARTICLES, four(m), by_flush, by_statement)
        # none for article 2 (already "b"), none for the excluded column
        assert ops(found["article_version"], "n") == [
            (1, 1, INSERT),
            (2, 1, INSERT),
            (3, 1, INSERT),
            (3, 2, UPDATE),
            (4, 1, INSERT),
            (4, 2, UPDATE),
        ]

    @pytest.mark.parametrize("form", DELETE_FORMS)
    def test_delete_where(self, conformance_models, form):
        m = conformance_models(bulk_articles)

        def by_flush(session, base):
            for article in session.scalars(sa.select(m.Article).where(from_(m, base, 3))):
                session.delete(article)

        def by_statement(session, base):
            if form == "Query.delete()":
                session.query(m.Article).filter(from_(m, base, 3)).delete()
                return
            statement = sa.delete(m.Article).where(from_(m, base, 3))
            session.execute(statement, execution_options=_synchronize(form))

        found = same_history(m, ARTICLES, four(m), by_flush, by_statement)
        deleted = [dict(r) for r in found["article_version"] if dict(r)[OP] == DELETE]
        # DELETE versions hold the rows' last values
        assert [(r["n"], r[TX], r["name"], r["content"]) for r in deleted] == [
            (3, 2, "a3", "c"),
            (4, 2, "a4", "c"),
        ]

    @pytest.mark.parametrize(
        "form",
        [
            "parameter list",
            "values()",
            "multi-row values()",
            "bulk_insert_mappings",
            "bulk_save_objects",
        ],
    )
    def test_insert(self, conformance_models, form):
        m = conformance_models(bulk_articles)

        def rows(base):
            return [{"n": base + i, "name": f"new{i}", "content": "c"} for i in (5, 6, 7)]

        def by_flush(session, base):
            session.add_all(m.Article(**row) for row in rows(base))

        def by_statement(session, base):
            if form == "parameter list":
                session.execute(sa.insert(m.Article), rows(base))
            elif form == "values()":
                for row in rows(base):
                    session.execute(sa.insert(m.Article).values(**row))
            elif form == "multi-row values()":
                # the keys are generated; the unique n of every row finds them
                session.execute(sa.insert(m.Article).values(rows(base)))
            elif form == "bulk_insert_mappings":
                session.bulk_insert_mappings(m.Article, rows(base))
            else:
                session.bulk_save_objects([m.Article(**row) for row in rows(base)])

        found = same_history(m, ARTICLES, four(m), by_flush, by_statement)
        assert ops(found["article_version"], "n") == [
            (n, 1 if n <= 4 else 2, INSERT) for n in range(1, 8)
        ]

    @pytest.mark.parametrize(
        "form", ["update() with parameter sets", "bulk_update_mappings", "bulk_save_objects"]
    )
    def test_update_by_primary_key(self, conformance_models, form):
        m = conformance_models(bulk_articles)
        # article 1: both columns; article 2: only content ("b" already); article 3: nothing
        wanted = {1: ("b", "d"), 2: ("b", "d"), 3: ("a3", "c")}

        def by_flush(session, base):
            for n, key in keys_by_n(session, m, base).items():
                if n in wanted:
                    article = session.get(m.Article, key)
                    article.name, article.content = wanted[n]

        def by_statement(session, base):
            keys = keys_by_n(session, m, base)
            changes = [
                {"id": keys[n], "name": name, "content": content}
                for n, (name, content) in wanted.items()
            ]
            if form == "update() with parameter sets":
                session.execute(sa.update(m.Article), changes)
            elif form == "bulk_update_mappings":
                session.bulk_update_mappings(m.Article, changes)
            else:
                # detached objects: the session's own flush cannot write them
                with m.session() as other:
                    chosen = m.Article.id.in_([c["id"] for c in changes])
                    found = other.scalars(sa.select(m.Article).where(chosen)).all()
                for article in found:
                    article.name, article.content = wanted[article.n - base]
                session.bulk_save_objects(found)

        found = same_history(m, ARTICLES, four(m), by_flush, by_statement)
        assert [r for r in ops(found["article_version"], "n") if r[2] == UPDATE] == [
            (1, 2, UPDATE),
            (2, 2, UPDATE),
        ]

    @pytest.mark.requires("upserts")
    @pytest.mark.parametrize("conflict", ["update", "nothing"])
    def test_upsert(self, conformance_models, conflict):
        m = conformance_models(bulk_articles)
        renamed = "renamed" if conflict == "update" else "a1"

        def by_flush(session, base):
            first = session.scalars(sa.select(m.Article).where(m.Article.n == base + 1)).one()
            first.name = renamed
            session.add(m.Article(n=base + 9, name="new"))

        def by_statement(session, base):
            rows = [
                {"n": base + 1, "name": "renamed"},
                {"n": base + 2, "name": "b"},  # the name it has: no change
                {"n": base + 9, "name": "new"},
            ]
            session.execute(upsert(m, rows, update_name=conflict == "update"))

        found = same_history(m, ARTICLES, four(m), by_flush, by_statement)
        changed = [(1, 2, UPDATE)] if conflict == "update" else []
        assert [r for r in ops(found["article_version"], "n") if r[1] == 2] == [
            *changed,
            (9, 2, INSERT),
        ]

    def test_statement_changing_nothing_versioned_writes_nothing(self, conformance_models):
        m = conformance_models(bulk_articles)
        run_world(m, FLUSH, four(m), lambda session, base: None)
        before = (m.rows("article_version"), tx_ids(m))
        with m.session() as session:
            session.execute(sa.update(m.Article).values(views=7))  # excluded column
            session.execute(
                sa.update(m.Article).where(m.Article.n == 1).values(name="a1")  # same value
            )
            session.execute(sa.delete(m.Article).where(m.Article.n > WORLD))  # no row
            session.commit()
        assert (m.rows("article_version"), tx_ids(m)) == before
        assert {r["views"] for r in m.rows("article")} == {7}

    def test_statements_and_flushes_of_one_transaction_merge(self, conformance_models):
        m = conformance_models(bulk_articles)

        def by_flush(session, base):
            for article in session.scalars(sa.select(m.Article).where(from_(m, base, 1))):
                article.name = "bulk"
                article.content = {1: "flushed", 2: "flushed after"}.get(article.n - base, "c")
            session.add(m.Article(n=base + 5, name="new", content="bulk"))

        def by_statement(session, base):
            first = session.scalars(sa.select(m.Article).where(m.Article.n == base + 1)).one()
            first.content = "flushed"
            session.flush()  # a version of article 1 is written here ...
            session.execute(sa.update(m.Article).where(from_(m, base, 1)).values(name="bulk"))
            second = session.scalars(sa.select(m.Article).where(m.Article.n == base + 2)).one()
            second.content = "flushed after"  # ... and article 2's after the statement's
            session.add(m.Article(n=base + 5, name="new", content="c"))
            session.flush()
            session.execute(
                sa.update(m.Article).where(m.Article.n == base + 5).values(content="bulk")
            )

        found = same_history(m, ARTICLES, four(m), by_flush, by_statement)
        assert [r for r in ops(found["article_version"], "n") if r[1] == 2] == [
            (1, 2, UPDATE),
            (2, 2, UPDATE),
            (3, 2, UPDATE),
            (4, 2, UPDATE),
            (5, 2, INSERT),
        ]

    @pytest.mark.requires("savepoints")
    def test_rolled_back_savepoint_forgets_the_statement(self, conformance_models):
        m = conformance_models(bulk_articles)

        def by_flush(session, base):
            session.scalars(sa.select(m.Article).where(m.Article.n == base + 3)).one().name = "kept"

        def by_statement(session, base):
            savepoint = session.begin_nested()
            session.execute(sa.update(m.Article).where(from_(m, base, 1)).values(name="gone"))
            session.execute(sa.delete(m.Article).where(m.Article.n == base + 4))
            savepoint.rollback()
            session.execute(sa.update(m.Article).where(m.Article.n == base + 3).values(name="kept"))

        found = same_history(m, ARTICLES, four(m), by_flush, by_statement)
        assert [r for r in ops(found["article_version"], "n") if r[1] == 2] == [(3, 2, UPDATE)]

    def test_stale_object_assigned_the_new_value_writes_no_second_version(self, conformance_models):
        """``synchronize_session=False`` leaves loaded objects holding the old values:
        assigning what the row now holds changes nothing, so no version is written."""
        m = conformance_models(bulk_articles)
        transactions = run_world(m, FLUSH, four(m), lambda session, base: None)
        with m.session(expire_on_commit=False) as session:
            article = session.scalars(sa.select(m.Article).where(m.Article.n == 1)).one()
            assert article.name == "a1"
            session.execute(
                sa.update(m.Article).where(m.Article.n == 1).values(name="z"),
                execution_options={"synchronize_session": False},
            )
            session.commit()
            recorded = (tx_ids(m), m.rows("article_version"))
            article.name = "z"
            session.commit()
        assert (tx_ids(m), m.rows("article_version")) == recorded
        written = sorted(set(recorded[0]) - set(transactions))
        history = world_history(m, ARTICLES, FLUSH, [*transactions, *written])
        assert [r for r in ops(history["article_version"], "n") if r[1] == 2] == [(1, 2, UPDATE)]

    @pytest.mark.requires("asyncio")
    async def test_statements_through_an_async_session(self, conformance_models):
        m = await conformance_models.abuild(bulk_articles)

        def by_flush(session, base):
            for article in session.scalars(sa.select(m.Article).where(from_(m, base, 1))):
                if article.n - base == 3:
                    session.delete(article)
                else:
                    article.name = "b"
            session.add_all(m.Article(n=base + n, name="new") for n in (5, 6))

        async def by_statement(session, base):
            # not the last row: SQLite would give its key to the next row inserted
            await session.execute(sa.delete(m.Article).where(m.Article.n == base + 3))
            await session.execute(
                sa.update(m.Article).where(from_(m, base, 1)).values(name="b"),
                execution_options={"synchronize_session": "fetch"},
            )
            rows = [{"n": base + n, "name": "new"} for n in (5, 6)]
            await session.execute(sa.insert(m.Article), rows)

        found = await asame_history(m, ARTICLES, four(m), by_flush, by_statement)
        assert [r for r in ops(found["article_version"], "n") if r[1] == 2] == [
            (1, 2, UPDATE),
            (3, 2, DELETE),
            (4, 2, UPDATE),
            (5, 2, INSERT),
            (6, 2, INSERT),
        ]

    def test_statements_do_not_grow_with_rows(self, conformance_models):
        m = conformance_models(bulk_articles)
        Article = m.Article
        versions = m.table("article_version")
        counts = {}
        for size in (1, 100, 1000):
            base = size * 10
            chosen = Article.n.between(base + 1, base + size)
            statements = {
                "insert": (
                    sa.insert(Article),
                    [{"n": base + i, "name": "a"} for i in range(1, size + 1)],
                ),
                "update": (sa.update(Article).where(chosen).values(name="b"), None),
                "delete": (sa.delete(Article).where(chosen), None),
            }
            counted = {}
            for kind, (statement, parameters) in statements.items():
                with m.session() as session, StatementCounter(m.engine) as counter:
                    session.execute(statement, parameters)
                    session.commit()
                counted[kind] = len(counter.statements)
            counts[size] = counted
            with m.engine.connect() as connection:
                found = connection.execute(
                    sa.select(versions.c[OP], sa.func.count())
                    .where(versions.c.n.between(base + 1, base + size))
                    .group_by(versions.c[OP])
                ).all()
            assert sorted(tuple(r) for r in found) == [
                (INSERT, size),
                (UPDATE, size),
                (DELETE, size),
            ]
        # One row may cost a statement less (its generated key returned directly).
        assert counts[100] == counts[1000], counts
        assert all(counts[1][kind] <= counts[100][kind] for kind in counts[1]), counts

    def test_subquery_strategy(self, conformance_models):
        m = conformance_models(bulk_articles, options={"strategy": "subquery"})

        def by_flush(session, base):
            for article in session.scalars(sa.select(m.Article).where(from_(m, base, 1))):
                if article.n - base == 1:
                    article.name = "x"
                elif article.n - base == 2:
                    session.delete(article)
            session.add(m.Article(n=base + 5, name="new"))

        def by_statement(session, base):
            session.execute(sa.update(m.Article).where(m.Article.n == base + 1).values(name="x"))
            session.execute(sa.delete(m.Article).where(m.Article.n == base + 2))
            session.execute(sa.insert(m.Article), [{"n": base + 5, "name": "new"}])

        found = same_history(m, ARTICLES, four(m), by_flush, by_statement)
        assert [r for r in ops(found["article_version"], "n") if r[1] == 2] == [
            (1, 2, UPDATE),
            (2, 2, DELETE),
            (5, 2, INSERT),
        ]


# -- database cascades --------------------------------------------------------------------


def cascading(Base: Any) -> dict[str, Any]:
    """Versioned tables reached by ``ON DELETE`` rules from ``article`` and ``node``.

    ``comment`` (CASCADE) -> ``reply`` (CASCADE), ``attachment`` (SET NULL), the
    ``article_tag`` links (CASCADE); relationships with ``passive_deletes``, so the ORM
    leaves those rows to the database. ``node``: a self-referential tree (CASCADE).
    """
    article_tag = sa.Table(
        "article_tag",
        Base.metadata,
        sa.Column(
            "article_id",
            sa.Integer,
            sa.ForeignKey("article.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "tag_id", sa.Integer, sa.ForeignKey("tag.id", ondelete="CASCADE"), primary_key=True
        ),
    )

    class Tag(Base):
        __versioned__ = {}
        __tablename__ = "tag"
        id = given_pk()
        name = sa.Column(sa.Unicode(50))

    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = given_pk()
        name = sa.Column(sa.Unicode(100))
        comments = relationship("Comment", passive_deletes=True)
        attachments = relationship("Attachment", passive_deletes=True)
        tags = relationship(Tag, secondary=article_tag, passive_deletes=True)

    class Comment(Base):
        __versioned__ = {}
        __tablename__ = "comment"
        id = given_pk()
        article_id = sa.Column(
            sa.Integer, sa.ForeignKey("article.id", ondelete="CASCADE"), nullable=False
        )
        text = sa.Column(sa.Unicode(100))
        replies = relationship("Reply", passive_deletes=True)

    class Reply(Base):
        __versioned__ = {}
        __tablename__ = "reply"
        id = given_pk()
        comment_id = sa.Column(
            sa.Integer, sa.ForeignKey("comment.id", ondelete="CASCADE"), nullable=False
        )
        text = sa.Column(sa.Unicode(100))

    class Attachment(Base):
        __versioned__ = {}
        __tablename__ = "attachment"
        id = given_pk()
        article_id = sa.Column(sa.Integer, sa.ForeignKey("article.id", ondelete="SET NULL"))
        path = sa.Column(sa.Unicode(100))

    class Node(Base):
        __versioned__ = {}
        __tablename__ = "node"
        id = given_pk()
        parent_id = sa.Column(sa.Integer, sa.ForeignKey("node.id", ondelete="CASCADE"))
        label = sa.Column(sa.Unicode(20))

    return locals()


CASCADES = {
    "article_version": Shape(("id",), ("id",)),
    "tag_version": Shape(("id",), ("id",)),
    "comment_version": Shape(("id",), ("id", "article_id")),
    "reply_version": Shape(("id",), ("id", "comment_id")),
    "attachment_version": Shape(("id",), ("id", "article_id")),
    "article_tag_version": Shape(("article_id", "tag_id"), ("article_id", "tag_id")),
    "node_version": Shape(("id",), ("id", "parent_id")),
}


def two_articles(m: Any) -> Change:
    """Articles 1 and 2, both linked to tags 1 and 2, each with two comments (one reply
    each) and two attachments."""

    def setup(session: Session, base: int) -> None:
        tags = [m.Tag(id=base + i, name=f"t{i}") for i in (1, 2)]
        for a in (1, 2):
            session.add(m.Article(id=base + a, name=f"a{a}", tags=tags))
            for c in (1, 2):
                number = 10 * a + c
                session.add(m.Comment(id=base + number, article_id=base + a, text=f"c{number}"))
                session.add(m.Reply(id=base + number, comment_id=base + number, text="r"))
                session.add(m.Attachment(id=base + number, article_id=base + a, path="p"))

    return setup


def delete_by_hand(m: Any, article: int) -> Change:
    """What the rules do to article ``article``'s rows, done by the ORM in one flush."""

    def change(session: Session, base: int) -> None:
        parent = session.get(m.Article, base + article)
        for comment in parent.comments:
            for reply in comment.replies:
                session.delete(reply)
            session.delete(comment)
        for attachment in parent.attachments:
            attachment.article_id = None
        parent.tags = []
        session.flush()
        session.delete(parent)

    return change


def tree(m: Any) -> Change:
    """Node 1, its children 2 and 3, 4 under 2, 5 under 4."""

    def setup(session: Session, base: int) -> None:
        for node, parent in ((1, None), (2, 1), (3, 1), (4, 2), (5, 4)):
            parent_id = None if parent is None else base + parent
            session.add(m.Node(id=base + node, parent_id=parent_id, label=f"n{node}"))
            session.flush()

    return setup


BULK = pytest.mark.requires("records_bulk_statements")


@pytest.mark.requires("foreign_keys")
@pytest.mark.requires("records_database_cascades")
class TestDatabaseCascades:
    @pytest.mark.parametrize(
        "form",
        [
            "flush",
            pytest.param("delete()", marks=BULK),
            pytest.param("Query.delete()", marks=BULK),
        ],
    )
    def test_cascaded_rows_get_the_versions_a_flush_writes(self, conformance_models, form):
        m = conformance_models(cascading)

        def by_database(session, base):
            if form == "flush":  # passive_deletes: the ORM deletes the article only
                session.delete(session.get(m.Article, base + 1))
            elif form == "delete()":
                session.execute(sa.delete(m.Article).where(m.Article.id == base + 1))
            else:
                session.query(m.Article).filter(m.Article.name == "a1").filter(
                    m.Article.id.between(base + 1, base + WORLD)
                ).delete()

        found = same_history(m, CASCADES, two_articles(m), delete_by_hand(m, 1), by_database)
        second = {
            name: [r for r in ops(rows, *CASCADES[name].identity) if r[1] == 2]
            for name, rows in found.items()
        }
        assert second["article_version"] == [(1, 2, DELETE)]
        assert second["comment_version"] == [(11, 2, DELETE), (12, 2, DELETE)]
        assert second["reply_version"] == [(11, 2, DELETE), (12, 2, DELETE)]
        assert second["attachment_version"] == [(11, 2, UPDATE), (12, 2, UPDATE)]
        nulled = [dict(r) for r in found["attachment_version"] if dict(r)[TX] == 2]
        assert {r["article_id"] for r in nulled} == {None}
        assert second["article_tag_version"] == [((1, 1), 2, DELETE), ((1, 2), 2, DELETE)]
        assert second["tag_version"] == []  # the tags themselves stay

    @pytest.mark.parametrize("form", ["flush", pytest.param("delete()", marks=BULK)])
    def test_a_self_referential_tree_is_followed_to_its_leaves(self, conformance_models, form):
        m = conformance_models(cascading)

        def by_hand(session, base):
            for node in (5, 4, 3, 2, 1):
                session.delete(session.get(m.Node, base + node))
                session.flush()

        def by_database(session, base):
            if form == "flush":
                session.delete(session.get(m.Node, base + 1))
            else:
                session.execute(sa.delete(m.Node).where(m.Node.id == base + 1))

        found = same_history(m, CASCADES, tree(m), by_hand, by_database)
        assert [r for r in ops(found["node_version"]) if r[1] == 2] == [
            (n, 2, DELETE) for n in range(1, 6)
        ]

    @pytest.mark.requires("foreign_key_switch")
    def test_nothing_is_recorded_where_foreign_keys_are_not_enforced(self, conformance_models):
        m = conformance_models(cascading)
        transactions = run_world(m, FLUSH, two_articles(m), lambda session, base: None)
        with m.foreign_keys_off() as connection, Session(connection) as session:
            session.delete(session.get(m.Article, 1))
            session.commit()
        written = sorted(set(tx_ids(m)) - set(transactions))
        found = world_history(m, CASCADES, FLUSH, [*transactions, *written])
        later = {
            name: [r for r in ops(rows, *CASCADES[name].identity) if r[1] != 1]
            for name, rows in found.items()
        }
        # the database deleted the article only: its children are still there, unchanged
        assert later == {**{name: [] for name in CASCADES}, "article_version": [(1, 2, DELETE)]}
        assert len(m.rows("comment")) == 4

    def test_statements_do_not_grow_with_children(self, conformance_models):
        m = conformance_models(cascading)
        counts = {}
        for size in (1, 100, 1000):
            base = size * 10
            with m.session() as session:
                session.add(m.Article(id=base, name="parent"))
                session.flush()
                session.add_all(
                    m.Comment(id=base + i, article_id=base, text="c") for i in range(1, size + 1)
                )
                session.commit()
            with m.session() as session, StatementCounter(m.engine) as counter:
                session.delete(session.get(m.Article, base))
                session.commit()
            counts[size] = len(counter.statements)
            deleted = [
                r
                for r in m.rows("comment_version")
                if base < r["id"] <= base + size and r[OP] == DELETE
            ]
            assert len(deleted) == size
        assert counts[1] == counts[100] == counts[1000], counts

    @pytest.mark.requires("asyncio")
    @BULK
    async def test_cascades_of_a_statement_through_an_async_session(self, conformance_models):
        m = await conformance_models.abuild(cascading)

        async def by_statement(session, base):
            await session.execute(sa.delete(m.Article).where(m.Article.id == base + 2))

        found = await asame_history(
            m, CASCADES, two_articles(m), delete_by_hand(m, 2), by_statement
        )
        assert [r for r in ops(found["reply_version"]) if r[1] == 2] == [
            (21, 2, DELETE),
            (22, 2, DELETE),
        ]
        links = ops(found["article_tag_version"], "article_id", "tag_id")
        assert [r for r in links if r[1] == 2] == [((2, 1), 2, DELETE), ((2, 2), 2, DELETE)]
