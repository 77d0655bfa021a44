"""SPEC §3, "What is recorded": statements that bypass the ORM flush leave the history a
flush of the same change leaves.

Most tests run one change twice on fresh tables, once through the ORM unit of work and
once as a bulk statement (ORM ``update()``/``delete()``/``insert()``, legacy ``Query``
methods, ``bulk_*`` methods, upserts, Core statements run through the Session), and compare
the version tables read back from the database: the same rows, values, operation types and
validity chain, with transactions compared by their order.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from conftest import count_statements, history, ops, same_history
from sqlalchemy_history import Operation, VersioningError, versioning_manager
from sqlalchemy_history.dialects import rules_for
from sqlalchemy_history.plugins import PropertyModTrackerPlugin, TransactionChangesPlugin

INSERT, UPDATE, DELETE = int(Operation.INSERT), int(Operation.UPDATE), int(Operation.DELETE)


def models(Base):
    class Article(Base):
        __versioned__ = {"exclude": ["views"]}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(255))
        content = sa.Column(sa.UnicodeText)
        slug = sa.Column(sa.String(50), unique=True)
        views = sa.Column(sa.Integer, default=0)

    class Person(Base):
        __versioned__ = {}
        __tablename__ = "person"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        kind = sa.Column(sa.String(20))
        name = sa.Column(sa.Unicode(255))
        __mapper_args__ = {"polymorphic_on": kind, "polymorphic_identity": "person"}

    class Engineer(Person):
        __tablename__ = "engineer"
        id = sa.Column(sa.Integer, sa.ForeignKey("person.id"), primary_key=True)
        skill = sa.Column(sa.Unicode(255))
        __mapper_args__ = {"polymorphic_identity": "engineer"}

    class Line(Base):
        __versioned__ = {}
        __tablename__ = "order_line"
        order_id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
        line_no = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
        quantity = sa.Column(sa.Integer)

    class Note(Base):
        __versioned__ = {"strategy": "subquery"}
        __tablename__ = "note"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        text = sa.Column(sa.Unicode(100))

    class Plain(Base):
        """Not versioned."""

        __tablename__ = "plain"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(100))

    return locals()


def articles(session: Session, v, names: list[str]) -> None:
    session.add_all(
        [v.Article(name=n, content="c", slug=f"s{i}", views=1) for i, n in enumerate(names)]
    )


@pytest.fixture
def v(versioned):
    return versioned(models)


# -- UPDATE with WHERE ----------------------------------------------------------------------


def _setup_four(v):
    # the second article already holds the value the update assigns
    return lambda s: articles(s, v, ["a0", "b", "a2", "a3"])


def _orm_rename(v):
    def change(s: Session) -> None:
        for article in s.scalars(sa.select(v.Article).where(v.Article.id >= 2)):
            article.name = "b"
            article.views = 9

    return change


@pytest.mark.parametrize("synchronize", ["auto", "fetch", False])
def test_update_where_matches_a_flush(v, synchronize):
    def bulk(s: Session) -> None:
        statement = sa.update(v.Article).where(v.Article.id >= 2).values(name="b", views=9)
        s.execute(statement, execution_options={"synchronize_session": synchronize})

    found = same_history(v, _setup_four(v), _orm_rename(v), bulk)
    # an UPDATE version for the two rows whose name changed; none for the one that
    # already had it, none for the excluded column
    assert ops(found, "article_version") == sorted(
        [(i, 1, INSERT) for i in (1, 2, 3, 4)] + [(3, 2, UPDATE), (4, 2, UPDATE)], key=repr
    )


def test_legacy_query_update_matches_a_flush(v):
    def bulk(s: Session) -> None:
        s.query(v.Article).filter(v.Article.id >= 2).update({"name": "b", "views": 9})

    same_history(v, _setup_four(v), _orm_rename(v), bulk)


def test_core_update_through_the_session_matches_a_flush(v):
    table = v.Article.__table__

    def bulk(s: Session) -> None:
        s.execute(sa.update(table).where(table.c.id >= 2).values(name="b", views=9))

    same_history(v, _setup_four(v), _orm_rename(v), bulk)


def test_update_with_an_expression_and_other_tables_in_where(v):
    def setup(s: Session) -> None:
        articles(s, v, ["a0", "a1", "a2"])
        s.add_all([v.Plain(name="a1"), v.Plain(name="a2")])

    def orm(s: Session) -> None:
        for article in s.scalars(sa.select(v.Article).where(v.Article.id >= 2)):
            article.content = article.content + "!"

    def bulk(s: Session) -> None:
        s.execute(
            sa.update(v.Article)
            .where(v.Article.name == v.Plain.name)
            .values(content=v.Article.content + "!"),
            execution_options={"synchronize_session": False},
        )

    found = same_history(v, setup, orm, bulk)
    assert [r for r in ops(found, "article_version") if r[2] == UPDATE] == [
        (2, 2, UPDATE),
        (3, 2, UPDATE),
    ]


def test_update_of_excluded_columns_or_same_values_writes_nothing(v):
    with v.session() as s:
        articles(s, v, ["a0", "a1"])
        s.commit()
    before = history(v)
    with v.session() as s:
        s.execute(sa.update(v.Article).values(views=7))
        s.execute(sa.update(v.Article).where(v.Article.id == 1).values(name="a0"))
        s.commit()
    assert history(v) == before
    assert len(v.rows("transaction")) == 1
    with v.session() as s:
        assert s.scalars(sa.select(v.Article.views)).all() == [7, 7]


# -- DELETE -----------------------------------------------------------------------------------


def _orm_delete(v):
    def change(s: Session) -> None:
        for article in s.scalars(sa.select(v.Article).where(v.Article.id >= 3)):
            s.delete(article)

    return change


@pytest.mark.parametrize("synchronize", ["auto", "fetch", False])
def test_delete_where_matches_a_flush(v, synchronize):
    def bulk(s: Session) -> None:
        statement = sa.delete(v.Article).where(v.Article.id >= 3)
        s.execute(statement, execution_options={"synchronize_session": synchronize})

    found = same_history(v, _setup_four(v), _orm_delete(v), bulk)
    deleted = [dict(r) for r in found["article_version"] if dict(r)["operation_type"] == DELETE]
    assert sorted((r["id"], r["name"], r["content"]) for r in deleted) == [
        (3, "a2", "c"),
        (4, "a3", "c"),
    ]


def test_legacy_query_delete_matches_a_flush(v):
    def bulk(s: Session) -> None:
        s.query(v.Article).filter(v.Article.id >= 3).delete()

    same_history(v, _setup_four(v), _orm_delete(v), bulk)


def test_delete_matching_nothing_writes_nothing(v):
    with v.session() as s:
        articles(s, v, ["a0"])
        s.commit()
    with v.session() as s:
        s.execute(sa.delete(v.Article).where(v.Article.id > 10))
        s.commit()
    assert len(v.rows("transaction")) == 1


# -- INSERT -----------------------------------------------------------------------------------


def _orm_insert(v, count: int = 3):
    def change(s: Session) -> None:
        s.add_all([v.Article(name=f"n{i}", content="c", slug=f"t{i}") for i in range(count)])

    return change


def _existing(v):
    return lambda s: articles(s, v, ["a0"])


@pytest.mark.parametrize(
    "form", ["parameters", "one parameter set", "values", "multi-values", "given keys"]
)
def test_insert_matches_a_flush(v, form):
    rows = [{"name": f"n{i}", "content": "c", "slug": f"t{i}"} for i in range(3)]

    def bulk(s: Session) -> None:
        if form == "parameters":
            s.execute(sa.insert(v.Article), rows)
        elif form == "one parameter set":
            for row in rows:
                s.execute(sa.insert(v.Article), row)
        elif form == "values":
            for row in rows:
                s.execute(sa.insert(v.Article).values(**row))
        elif form == "multi-values":
            # the keys are generated; the unique slug finds the new rows
            s.execute(sa.insert(v.Article).values(rows))
        else:
            s.execute(sa.insert(v.Article), [{**r, "id": i} for i, r in enumerate(rows, 2)])

    found = same_history(v, _existing(v), _orm_insert(v), bulk)
    assert ops(found, "article_version") == [
        (1, 1, INSERT),
        (2, 2, INSERT),
        (3, 2, INSERT),
        (4, 2, INSERT),
    ]


def _orm_notes(v):
    return lambda s: s.add_all([v.Note(text=f"n{i}") for i in range(3)])


def _bulk_notes(v):
    return lambda s: s.execute(sa.insert(v.Note), [{"text": f"n{i}"} for i in range(3)])


def test_generated_keys_are_learned_without_returning(v, engine, monkeypatch):
    """Where the backend cannot return the keys of a multi-row INSERT (MySQL, SQLite),
    ``dialects.learn_generated_keys`` asks it: SQLite's last_insert_rowid(); MySQL's
    LAST_INSERT_ID() and ROW_COUNT() (MariaDB has RETURNING: switched off here)."""
    rules = rules_for(engine.dialect)
    if engine.dialect.name == "postgresql":
        pytest.skip("PostgreSQL always returns generated keys (RETURNING)")
    monkeypatch.setattr(type(rules), "returns_generated_keys", lambda self, d, rows: rows <= 1)
    with count_statements(v.engine) as counter:
        found = same_history(v, lambda s: None, _orm_notes(v), _bulk_notes(v))
    asked = "last_insert_rowid" if engine.dialect.name == "sqlite" else "last_insert_id"
    assert len(counter.matching(asked)) == 1
    assert [row[0] for row in ops(found, "note_version")] == [1, 2, 3]


def test_rows_giving_some_keys_use_returning_where_there_is_one(v, engine):
    if not engine.dialect.insert_executemany_returning:
        pytest.skip(f"{engine.dialect.name} has no multi-row RETURNING")

    def orm(s: Session) -> None:
        s.add_all([v.Note(text="n0"), v.Note(id=10, text="n1"), v.Note(text="n2")])

    def bulk(s: Session) -> None:
        s.execute(sa.insert(v.Note), [{"text": "n0"}, {"id": 10, "text": "n1"}, {"text": "n2"}])

    same_history(v, lambda s: None, orm, bulk)


def test_a_multi_row_insert_whose_keys_cannot_be_learned_is_refused(v, engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("the other backends learn generated keys without RETURNING")
    with v.session() as s:
        statement = sa.insert(v.Note).values([{"text": "a"}, {"text": "b"}])
        with pytest.raises(VersioningError, match="cannot learn the keys postgresql generates"):
            s.execute(statement)
        assert s.scalars(sa.select(v.Note)).all() == []


def test_bulk_insert_mappings_and_bulk_save_objects_match_a_flush(v):
    def mappings(s: Session) -> None:
        s.bulk_insert_mappings(
            v.Article, [{"name": f"n{i}", "content": "c", "slug": f"t{i}"} for i in range(3)]
        )

    def objects(s: Session) -> None:
        s.bulk_save_objects([v.Article(name=f"n{i}", content="c", slug=f"t{i}") for i in range(3)])

    first = same_history(v, _existing(v), _orm_insert(v), mappings)
    assert same_history(v, _existing(v), _orm_insert(v), objects) == first


def test_insert_from_select_is_refused_with_a_clear_error(v):
    table = v.Article.__table__
    with v.session() as s:
        statement = sa.insert(v.Article).from_select(
            ["name"], sa.select(table.c.name).where(table.c.id < 0)
        )
        with pytest.raises(VersioningError, match=r"INSERT \.\.\. SELECT into versioned table"):
            s.execute(statement)


def test_insert_into_a_plain_table_costs_nothing(v):
    with v.session() as s, count_statements(v.engine) as counter:
        s.execute(sa.insert(v.Plain), [{"name": "x"}, {"name": "y"}])
        s.execute(sa.update(v.Plain).values(name="z"))
        s.execute(sa.delete(v.Plain))
        s.commit()
    assert counter.count == 3  # the three statements; nothing read, nothing written
    assert v.rows("transaction") == []


# -- UPDATE by primary key (ORM bulk UPDATE, legacy bulk methods) ------------------------------


KEYED_CHANGES = [
    {"id": 1, "name": "b", "content": "d"},
    {"id": 2, "name": "b", "content": "d"},  # only content changes
    {"id": 3, "name": "a2", "content": "c"},  # nothing changes
]


def _orm_update_by_key(v):
    def change(s: Session) -> None:
        for values in KEYED_CHANGES:
            article = s.get(v.Article, values["id"])
            article.name, article.content = values["name"], values["content"]

    return change


def test_bulk_update_by_primary_key_matches_a_flush(v):
    changes = KEYED_CHANGES

    def bulk(s: Session) -> None:
        s.execute(sa.update(v.Article), changes)

    def mappings(s: Session) -> None:
        s.bulk_update_mappings(v.Article, changes)

    def objects(s: Session) -> None:
        found = s.scalars(sa.select(v.Article).order_by(v.Article.id)).all()
        for article, change in zip(found, changes):
            article.name, article.content = change["name"], change["content"]
        s.bulk_save_objects(found)

    first = same_history(v, _setup_four(v), _orm_update_by_key(v), bulk)
    assert [r for r in ops(first, "article_version") if r[2] == UPDATE] == [
        (1, 2, UPDATE),
        (2, 2, UPDATE),
    ]
    assert same_history(v, _setup_four(v), _orm_update_by_key(v), mappings) == first
    assert same_history(v, _setup_four(v), _orm_update_by_key(v), objects) == first


def test_composite_keys(v):
    def setup(s: Session) -> None:
        s.add_all([v.Line(order_id=o, line_no=n, quantity=1) for o in (1, 2) for n in (1, 2)])

    def orm(s: Session) -> None:
        for line in s.scalars(sa.select(v.Line).where(v.Line.order_id == 1)):
            line.quantity = 5
        s.delete(s.get(v.Line, (2, 2)))
        s.add(v.Line(order_id=3, line_no=1, quantity=1))

    def bulk(s: Session) -> None:
        s.execute(sa.update(v.Line).where(v.Line.order_id == 1).values(quantity=5))
        s.execute(sa.delete(v.Line).where(v.Line.order_id == 2, v.Line.line_no == 2))
        s.execute(sa.insert(v.Line), [{"order_id": 3, "line_no": 1, "quantity": 1}])

    found = same_history(v, setup, orm, bulk)
    assert len(found["order_line_version"]) == 4 + 2 + 1 + 1


def test_subquery_strategy(v):
    def setup(s: Session) -> None:
        s.add_all([v.Note(text=f"t{i}") for i in range(3)])

    def orm(s: Session) -> None:
        s.get(v.Note, 1).text = "x"
        s.delete(s.get(v.Note, 2))
        s.add(v.Note(text="new"))

    def bulk(s: Session) -> None:
        s.execute(sa.update(v.Note).where(v.Note.id == 1).values(text="x"))
        s.execute(sa.delete(v.Note).where(v.Note.id == 2))
        s.execute(sa.insert(v.Note), [{"text": "new"}])

    found = same_history(v, setup, orm, bulk)
    assert len(found["note_version"]) == 6


# -- joined inheritance -----------------------------------------------------------------------


def test_joined_inheritance_insert_and_update_by_key(v):
    def setup(s: Session) -> None:
        s.add(v.Engineer(name="e0", skill="s0"))

    def orm(s: Session) -> None:
        s.get(v.Engineer, 1).skill = "s1"
        s.get(v.Engineer, 1).name = "e1"
        s.add_all([v.Engineer(name=f"n{i}", skill="x") for i in range(2)])

    def bulk(s: Session) -> None:
        s.execute(sa.update(v.Engineer), [{"id": 1, "name": "e1", "skill": "s1"}])
        s.execute(sa.insert(v.Engineer), [{"name": f"n{i}", "skill": "x"} for i in range(2)])

    found = same_history(v, setup, orm, bulk)
    assert len(found["person_version"]) == len(found["engineer_version"]) == 4


@pytest.mark.filterwarnings("ignore:The `objects` parameter of `Session.flush`")
def test_a_legacy_bulk_method_after_a_flush_with_nothing_to_do_is_recorded(v):
    with v.session() as s:
        articles(s, v, ["a0", "a1"])
        s.commit()
    with v.session() as s:
        first, second = s.get(v.Article, 1), s.get(v.Article, 2)
        second.name = "pending"
        s.flush([first])  # before_flush runs, then the flush finds nothing to write
        s.bulk_update_mappings(v.Article, [{"id": 1, "content": "bulk"}])
        s.commit()
    rows = [dict(r) for r in history(v)["article_version"] if dict(r)["transaction_id"] == 2]
    assert sorted((r["id"], r["name"], r["content"]) for r in rows) == [
        (1, "a0", "bulk"),
        (2, "pending", "c"),
    ]


def test_joined_inheritance_legacy_bulk_methods(v):
    def setup(s: Session) -> None:
        s.add(v.Engineer(name="e0", skill="s0"))

    def orm(s: Session) -> None:
        s.get(v.Engineer, 1).skill = "s1"
        s.add_all([v.Engineer(name=f"n{i}", skill="x") for i in range(2)])

    def bulk(s: Session) -> None:
        s.bulk_update_mappings(v.Engineer, [{"id": 1, "skill": "s1"}])
        s.bulk_insert_mappings(v.Engineer, [{"name": f"n{i}", "skill": "x"} for i in range(2)])

    found = same_history(v, setup, orm, bulk)
    assert len(found["person_version"]) == len(found["engineer_version"]) == 4


def test_joined_inheritance_update_where_on_the_subclass_table(v):
    def setup(s: Session) -> None:
        s.add_all([v.Engineer(name=f"e{i}", skill="old" if i else "new") for i in range(3)])

    def orm(s: Session) -> None:
        for engineer in s.scalars(sa.select(v.Engineer).where(v.Engineer.skill == "old")):
            engineer.skill = "new"

    def bulk(s: Session) -> None:
        s.execute(sa.update(v.Engineer).where(v.Engineer.skill == "old").values(skill="new"))

    found = same_history(v, setup, orm, bulk)
    # a version of an engineer is a row in both tables, as a flush writes it
    assert len(found["engineer_version"]) == len(found["person_version"]) == 5


def test_joined_inheritance_delete_records_what_the_database_deleted(v):
    """SQLAlchemy's ORM DELETE for a joined subclass deletes from the subclass table only
    (``DELETE FROM engineer ...``; on SQLite, which has no multi-table DELETE, a WHERE on
    the subclass's columns only): its history is a DELETE version of the engineer rows."""
    with v.session() as s:
        s.add_all([v.Engineer(name=f"e{i}", skill=f"s{i}") for i in range(3)])
        s.commit()
    with v.session() as s:
        s.execute(sa.delete(v.Engineer).where(v.Engineer.skill == "s1"))
        s.commit()
    found = history(v)
    assert [r for r in ops(found, "engineer_version") if r[2] == DELETE] == [(2, 2, DELETE)]
    assert [r for r in ops(found, "person_version") if r[2] != INSERT] == []
    with v.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(v.Person.__table__)) == 3


# -- upserts ----------------------------------------------------------------------------------


def upsert(v, rows: list[dict[str, Any]]) -> Any:
    """INSERT ... ON CONFLICT (slug) DO UPDATE / ON DUPLICATE KEY UPDATE, per backend."""
    name = v.engine.dialect.name
    if name in ("mysql", "mariadb"):
        from sqlalchemy.dialects.mysql import insert

        statement = insert(v.Article).values(rows)
        return statement.on_duplicate_key_update(name=statement.inserted.name)
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(v.Article).values(rows)
    return statement.on_conflict_do_update(
        index_elements=[v.Article.slug], set_={"name": statement.excluded.name}
    )


def test_upsert_matches_a_flush(v):
    # The new row's key is given: PostgreSQL draws a sequence value for every row an
    # upsert proposes, conflicting or not, so a generated key would differ from a flush's.
    def orm(s: Session) -> None:
        s.get(v.Article, 1).name = "renamed"
        s.add(v.Article(id=3, name="new", slug="s9"))

    def bulk(s: Session) -> None:
        rows = [
            {"id": 1, "name": "renamed", "slug": "s0"},
            {"id": 2, "name": "b", "slug": "s1"},  # same name: no change
            {"id": 3, "name": "new", "slug": "s9"},
        ]
        s.execute(upsert(v, rows))

    def setup(s: Session) -> None:
        articles(s, v, ["a0", "b"])

    found = same_history(v, setup, orm, bulk)
    assert ops(found, "article_version") == [
        (1, 1, INSERT),
        (1, 2, UPDATE),
        (2, 1, INSERT),
        (3, 2, INSERT),
    ]


def test_rows_an_upsert_leaves_alone_get_no_version(v, engine):
    """ON CONFLICT DO NOTHING / INSERT IGNORE: the existing row is not written."""
    with v.session() as s:
        articles(s, v, ["a0"])
        s.commit()
    rows = [{"id": 1, "name": "ignored", "slug": "s0"}, {"id": 2, "name": "new", "slug": "n"}]
    with v.session() as s:
        if engine.dialect.name in ("mysql", "mariadb"):
            statement = sa.insert(v.Article).prefix_with("IGNORE").values(rows)
        elif engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert

            statement = insert(v.Article).values(rows).on_conflict_do_nothing()
        else:
            from sqlalchemy.dialects.sqlite import insert

            statement = insert(v.Article).values(rows).on_conflict_do_nothing()
        s.execute(statement)
        s.commit()
    assert ops(history(v), "article_version") == [(1, 1, INSERT), (2, 2, INSERT)]


def test_upsert_with_generated_keys(v):
    with v.session() as s:
        articles(s, v, ["a0"])
        s.commit()
    with v.session() as s:
        rows = [{"name": "renamed", "slug": "s0"}, {"name": "new", "slug": "s9"}]
        s.execute(upsert(v, rows))
        new_id = s.scalar(sa.select(v.Article.id).where(v.Article.slug == "s9"))
        s.commit()
    assert ops(history(v), "article_version") == [
        (1, 1, INSERT),
        (1, 2, UPDATE),
        (new_id, 2, INSERT),
    ]


# -- merging with flushes, savepoints, identity map --------------------------------------------


def test_bulk_and_flushes_of_one_transaction_merge_into_one_version(v):
    with v.session() as s:
        articles(s, v, ["a0", "a1"])
        s.commit()
    with v.session() as s:
        first = s.get(v.Article, 1)
        first.content = "flushed"
        s.flush()  # a version of row 1 is written here
        s.execute(sa.update(v.Article).values(name="bulk"))  # rewrites it, adds row 2
        s.get(v.Article, 2).content = "flushed after"
        s.add(v.Article(name="new", slug="n"))
        s.flush()
        s.execute(sa.update(v.Article).where(v.Article.slug == "n").values(content="bulk"))
        s.commit()
    rows = [dict(r) for r in history(v)["article_version"]]
    second = sorted(
        (r["id"], r["name"], r["content"], r["operation_type"])
        for r in rows
        if r["transaction_id"] == 2
    )
    assert second == [
        (1, "bulk", "flushed", UPDATE),
        (2, "bulk", "flushed after", UPDATE),
        (3, "new", "bulk", INSERT),
    ]
    assert len(v.rows("transaction")) == 2


def test_delete_then_insert_of_a_key_in_one_transaction_is_an_update(v):
    with v.session() as s:
        articles(s, v, ["a0"])
        s.commit()
    with v.session() as s:
        s.execute(sa.delete(v.Article).where(v.Article.id == 1))
        s.execute(sa.insert(v.Article), [{"id": 1, "name": "again", "slug": "s0"}])
        s.commit()
    assert ops(history(v), "article_version") == [(1, 1, INSERT), (1, 2, UPDATE)]


def test_rolled_back_savepoint_forgets_the_bulk_statement(v):
    with v.session() as s:
        articles(s, v, ["a0", "a1"])
        s.commit()
    with v.session() as s:
        with s.begin_nested() as savepoint:
            s.execute(sa.update(v.Article).values(name="gone"))
            savepoint.rollback()
        s.execute(sa.update(v.Article).where(v.Article.id == 2).values(name="kept"))
        s.commit()
    rows = [dict(r) for r in history(v)["article_version"]]
    assert sorted((r["id"], r["name"]) for r in rows if r["transaction_id"] == 2) == [(2, "kept")]


def test_stale_objects_write_no_second_version(v):
    """``synchronize_session=False`` leaves objects holding old values: the statement's
    changed attributes are expired, so assigning what the row now holds is no change."""
    with v.session() as s:
        articles(s, v, ["a0"])
        s.commit()
    with v.session(expire_on_commit=False) as s:
        article = s.get(v.Article, 1)
        assert article.name == "a0"
        s.execute(
            sa.update(v.Article).values(name="b"),
            execution_options={"synchronize_session": False},
        )
        s.commit()
        article.name = "b"  # what the database holds: no change
        s.commit()
        assert article.name == "b"
    assert ops(history(v), "article_version") == [(1, 1, INSERT), (1, 2, UPDATE)]
    assert len(v.rows("transaction")) == 2


def test_deleting_an_object_a_bulk_delete_removed_writes_no_second_version(v):
    with v.session() as s:
        articles(s, v, ["a0"])
        s.commit()
    with v.session() as s:
        article = s.get(v.Article, 1)
        s.execute(sa.delete(v.Article), execution_options={"synchronize_session": False})
        s.delete(article)
        with pytest.warns(sa.exc.SAWarning, match="expected to delete 1 row"):
            s.commit()
    assert ops(history(v), "article_version") == [(1, 1, INSERT), (1, 2, DELETE)]


def test_returning_rows_reach_the_application_and_history_is_written(v, engine):
    if not engine.dialect.update_returning:
        pytest.skip(f"{engine.dialect.name} has no UPDATE ... RETURNING")
    with v.session() as s:
        articles(s, v, ["a0", "a1"])
        s.commit()
    with v.session() as s:
        updated = s.execute(
            sa.update(v.Article).where(v.Article.id == 2).values(name="x").returning(v.Article.id)
        ).all()
        inserted = s.scalars(sa.insert(v.Article).returning(v.Article), [{"name": "n"}]).all()
        s.commit()
        assert [tuple(r) for r in updated] == [(2,)]
        assert [a.name for a in inserted] == ["n"]
    assert ops(history(v), "article_version") == [
        (1, 1, INSERT),
        (2, 1, INSERT),
        (2, 2, UPDATE),
        (3, 2, INSERT),
    ]


def test_dml_inside_from_statement_is_refused(v):
    statement = sa.select(v.Article).from_statement(
        sa.update(v.Article).values(name="x").returning(v.Article)
    )
    with v.session() as s, pytest.raises(VersioningError, match="inside select"):
        s.execute(statement)


def test_mysql_multi_table_update_of_a_joined_subclass(v, engine):
    """MySQL/MariaDB run an ORM UPDATE setting columns of both tables of a joined subclass
    as one multi-table UPDATE (other backends refuse it): both tables get versions."""
    if engine.dialect.name not in ("mysql", "mariadb"):
        pytest.skip("only MySQL/MariaDB have multi-table UPDATE")

    def setup(s: Session) -> None:
        s.add_all([v.Engineer(name=f"e{i}", skill="old" if i else "new") for i in range(3)])

    def orm(s: Session) -> None:
        for engineer in s.scalars(sa.select(v.Engineer).where(v.Engineer.skill == "old")):
            engineer.skill, engineer.name = "new", "renamed"

    def bulk(s: Session) -> None:
        s.execute(
            sa.update(v.Engineer)
            .where(v.Engineer.id == v.Person.id, v.Engineer.skill == "old")
            .values(skill="new", name="renamed"),
            execution_options={"synchronize_session": False},
        )

    found = same_history(v, setup, orm, bulk)
    assert len(found["engineer_version"]) == len(found["person_version"]) == 5


def test_primary_key_change_is_refused_with_a_clear_error(v):
    with v.session() as s:
        articles(s, v, ["a0"])
        s.commit()
        with pytest.raises(VersioningError, match="Article: a bulk UPDATE that sets primary key"):
            s.execute(sa.update(v.Article).values(id=5))


# -- plugins ------------------------------------------------------------------------------------


def test_plugins_see_what_the_statement_changed(versioned):
    v = versioned(models, plugins=[PropertyModTrackerPlugin(), TransactionChangesPlugin()])
    with v.session() as s:
        articles(s, v, ["a0", "a1"])
        s.commit()
    with v.session() as s:
        s.execute(sa.update(v.Article).where(v.Article.id == 1).values(name="x", content="c"))
        s.commit()
    rows = v.rows("article_version", ["transaction_id", "id"])
    update = [r for r in rows if r["operation_type"] == UPDATE]
    assert len(update) == 1
    assert (update[0]["name_mod"], update[0]["content_mod"], update[0]["slug_mod"]) == (
        True,
        False,
        False,
    )
    changes = v.rows("transaction_changes", ["transaction_id", "entity_name"])
    assert [(r["entity_name"]) for r in changes] == ["Article", "Article"]


# -- version order is commit order --------------------------------------------------------------


def test_bulk_statement_after_the_transaction_id_keeps_commit_order(v, engine):
    """Session A takes its transaction id with a first flush, B changes row X and commits,
    then A changes X with a bulk UPDATE: A's version of X must come after B's."""
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite allows one writing transaction at a time")
    with v.session() as s:
        articles(s, v, ["x", "y"])
        s.commit()
    with v.session() as a:
        a.add(v.Article(name="other", slug="o"))
        a.flush()
        a_first = versioning_manager.unit_of_work(a).transaction_id
        done = threading.Event()

        def b_writes() -> None:
            with v.session() as b:
                b.get(v.Article, 1).content = "by B"
                b.commit()
            done.set()

        thread = threading.Thread(target=b_writes)
        thread.start()
        thread.join(30)
        assert done.is_set()
        a.execute(sa.update(v.Article).where(v.Article.id == 1).values(name="by A"))
        a.commit()
    rows = v.rows("article_version", ["transaction_id", "id"])
    x = [(r["transaction_id"], r["name"], r["content"]) for r in rows if r["id"] == 1]
    assert [name for _, name, _ in x] == ["x", "x", "by A"]
    assert x[2][2] == "by B"  # copied from the row: B's change is in A's version
    assert x[2][0] > x[1][0] > a_first  # A moved to an id after B's
    history(v)  # validity chain in that order


# -- statement counts ------------------------------------------------------------------------


def test_a_bulk_statement_inside_a_transaction_adds_no_transaction_row(v):
    with v.session() as s:
        articles(s, v, ["a0", "a1"])
        s.flush()
        with count_statements(v.engine) as counter:
            s.execute(sa.update(v.Article).values(name="x"))
        s.commit()
    assert not counter.matching("INSERT INTO", "transaction ")
    assert len(v.rows("transaction")) == 1
