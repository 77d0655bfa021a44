"""SPEC §3, recording: which version and transaction rows each kind of write leaves behind.

Every test reads the raw tables (``v.rows``) after the session committed or rolled back, so
it checks what the database holds, not what the library keeps in memory.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import deferred

from sqlalchemy_history import Operation

INSERT, UPDATE, DELETE = int(Operation.INSERT), int(Operation.UPDATE), int(Operation.DELETE)


def models(Base):
    class Article(Base):
        __versioned__ = {"exclude": ["views"]}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(255))
        content = sa.Column(sa.UnicodeText)
        views = sa.Column(sa.Integer, default=0)

    class Note(Base):
        """Not versioned."""

        __tablename__ = "note"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        text = sa.Column(sa.Unicode(255))

    return locals()


def versions(v, table: str = "article_version", tx: str = "transaction_id") -> list[dict[str, Any]]:
    return v.rows(table, [tx, "id"])


def tx_ids(v) -> list[int]:
    return [r["id"] for r in v.rows("transaction", ["id"])]


def pick(rows: list[dict[str, Any]], *keys: str) -> list[tuple[Any, ...]]:
    return [tuple(r[k] for k in keys) for r in rows]


def committed_article(v, **values: Any) -> int:
    with v.session() as session:
        article = v.Article(**values)
        session.add(article)
        session.commit()
        return article.id


# -- single operations -----------------------------------------------------------------


def test_insert_writes_one_insert_version(versioned):
    v = versioned(models)
    with v.session() as session:
        article = v.Article(name="a", content="c", views=3)
        session.add(article)
        session.commit()
        article_id = article.id
    rows = versions(v)
    assert len(rows) == 1
    row = rows[0]
    assert row["id"] == article_id
    assert (row["name"], row["content"]) == ("a", "c")
    assert row["operation_type"] == INSERT
    assert row["end_transaction_id"] is None
    assert "views" not in row
    assert tx_ids(v) == [row["transaction_id"]]


def test_update_writes_update_version_and_closes_previous(versioned):
    v = versioned(models)
    with v.session() as session:
        article = v.Article(name="a", content="c")
        session.add(article)
        session.commit()
        article.name = "b"
        session.commit()
    rows = versions(v)
    assert pick(rows, "name", "content", "operation_type") == [
        ("a", "c", INSERT),
        ("b", "c", UPDATE),
    ]
    txs = tx_ids(v)
    assert len(txs) == 2
    assert [r["transaction_id"] for r in rows] == txs
    assert rows[0]["end_transaction_id"] == rows[1]["transaction_id"]
    assert rows[1]["end_transaction_id"] is None


def test_delete_writes_delete_version_with_last_values(versioned):
    v = versioned(models)
    with v.session() as session:
        article = v.Article(name="a", content="c")
        session.add(article)
        session.commit()
        article.name = "b"
        session.commit()
        session.delete(article)
        session.commit()
    rows = versions(v)
    assert pick(rows, "name", "content", "operation_type") == [
        ("a", "c", INSERT),
        ("b", "c", UPDATE),
        ("b", "c", DELETE),
    ]
    assert [r["end_transaction_id"] for r in rows] == [
        rows[1]["transaction_id"],
        rows[2]["transaction_id"],
        None,
    ]
    assert len(tx_ids(v)) == 3


def test_closing_a_version_leaves_other_objects_open(versioned):
    v = versioned(models)
    with v.session() as session:
        first, second = v.Article(name="1"), v.Article(name="2")
        session.add_all([first, second])
        session.commit()
        first.name = "1b"
        session.commit()
        first_id, second_id = first.id, second.id
    rows = versions(v)
    by_object = {i: [r for r in rows if r["id"] == i] for i in (first_id, second_id)}
    assert pick(by_object[first_id], "name", "operation_type") == [("1", INSERT), ("1b", UPDATE)]
    assert by_object[first_id][0]["end_transaction_id"] == by_object[first_id][1]["transaction_id"]
    assert by_object[first_id][1]["end_transaction_id"] is None
    assert pick(by_object[second_id], "name", "operation_type", "end_transaction_id") == [
        ("2", INSERT, None)
    ]
    # Both inserts share the first transaction.
    assert by_object[first_id][0]["transaction_id"] == by_object[second_id][0]["transaction_id"]


def test_one_flush_with_many_objects_writes_one_transaction(versioned):
    v = versioned(models)
    ids = [committed_article(v, name=f"old{i}") for i in range(3)]
    with v.session() as session:
        a0, a1, a2 = (session.get(v.Article, i) for i in ids)
        a0.name = "new0"
        session.delete(a1)
        session.add(v.Article(name="fresh"))
        # a2 untouched
        assert a2 is not None
        session.commit()
    txs = tx_ids(v)
    assert len(txs) == 4
    last = [r for r in versions(v) if r["transaction_id"] == txs[-1]]
    assert sorted(pick(last, "name", "operation_type")) == [
        ("fresh", INSERT),
        ("new0", UPDATE),
        ("old1", DELETE),
    ]


# -- no-op skip --------------------------------------------------------------------------


def test_assigning_the_same_value_writes_nothing(versioned):
    v = versioned(models)
    article_id = committed_article(v, name="a", content="c")
    with v.session() as session:
        article = session.get(v.Article, article_id)
        article.name = "a"
        article.content = "c"
        session.commit()
    with v.session() as session:
        article = session.get(v.Article, article_id)
        article.name = "changed"
        article.name = "a"  # back to the stored value before any flush
        session.commit()
    assert len(versions(v)) == 1
    assert len(tx_ids(v)) == 1


def test_changing_only_an_excluded_column_writes_nothing(versioned):
    v = versioned(models)
    article_id = committed_article(v, name="a", views=1)
    with v.session() as session:
        article = session.get(v.Article, article_id)
        article.views = 2
        session.commit()
    with v.engine.connect() as conn:
        assert conn.execute(sa.select(v.Article.__table__.c.views)).scalar_one() == 2
    assert len(versions(v)) == 1
    assert len(tx_ids(v)) == 1


def test_excluded_and_versioned_change_together_writes_one_version(versioned):
    v = versioned(models)
    article_id = committed_article(v, name="a", views=1)
    with v.session() as session:
        article = session.get(v.Article, article_id)
        article.views = 2
        article.name = "b"
        session.commit()
    rows = versions(v)
    assert pick(rows, "name", "operation_type") == [("a", INSERT), ("b", UPDATE)]
    assert len(tx_ids(v)) == 2


def test_only_non_versioned_models_write_no_transaction(versioned):
    v = versioned(models)
    with v.session() as session:
        note = v.Note(text="x")
        session.add(note)
        session.commit()
        note.text = "y"
        session.commit()
        session.delete(note)
        session.commit()
    assert tx_ids(v) == []
    assert versions(v) == []


def test_no_op_flush_then_real_change_in_same_transaction(versioned):
    v = versioned(models)
    article_id = committed_article(v, name="a", views=1)
    with v.session() as session:
        article = session.get(v.Article, article_id)
        article.views = 5
        session.flush()
        article.name = "a"
        session.flush()
        article.content = "new"
        session.commit()
    rows = versions(v)
    assert pick(rows, "name", "content", "operation_type") == [
        ("a", None, INSERT),
        ("a", "new", UPDATE),
    ]
    assert len(tx_ids(v)) == 2


# -- several flushes in one transaction ----------------------------------------------------


def test_several_flushes_merge_into_one_version_per_object(versioned):
    v = versioned(models)
    with v.session() as session:
        first, second = v.Article(name="1"), v.Article(name="2")
        session.add_all([first, second])
        session.flush()
        first.name = "1b"
        session.flush()
        second.content = "c2"
        session.flush()
        first.content = "c1"
        session.commit()
    rows = versions(v)
    assert sorted(pick(rows, "name", "content", "operation_type")) == [
        ("1b", "c1", INSERT),
        ("2", "c2", INSERT),
    ]
    assert tx_ids(v) == [rows[0]["transaction_id"]] == [rows[1]["transaction_id"]]
    assert all(r["end_transaction_id"] is None for r in rows)


def test_insert_then_update_is_one_insert_with_final_values(versioned):
    v = versioned(models)
    with v.session() as session:
        article = v.Article(name="a", content="c")
        session.add(article)
        session.flush()
        article.name = "b"
        session.flush()
        article.name = "final"
        session.commit()
    rows = versions(v)
    assert pick(rows, "name", "content", "operation_type", "end_transaction_id") == [
        ("final", "c", INSERT, None)
    ]
    assert len(tx_ids(v)) == 1


def test_update_then_update_is_one_update(versioned):
    v = versioned(models)
    article_id = committed_article(v, name="a", content="c")
    with v.session() as session:
        article = session.get(v.Article, article_id)
        article.name = "b"
        session.flush()
        article.content = "d"
        session.flush()
        article.name = "final"
        session.commit()
    rows = versions(v)
    assert pick(rows, "name", "content", "operation_type") == [
        ("a", "c", INSERT),
        ("final", "d", UPDATE),
    ]
    assert rows[0]["end_transaction_id"] == rows[1]["transaction_id"]
    assert rows[1]["end_transaction_id"] is None
    assert len(tx_ids(v)) == 2


def test_update_then_delete_is_one_delete(versioned):
    v = versioned(models)
    article_id = committed_article(v, name="a", content="c")
    with v.session() as session:
        article = session.get(v.Article, article_id)
        article.name = "b"
        session.flush()
        session.delete(article)
        session.commit()
    rows = versions(v)
    assert pick(rows, "name", "content", "operation_type") == [
        ("a", "c", INSERT),
        ("b", "c", DELETE),
    ]
    assert rows[0]["end_transaction_id"] == rows[1]["transaction_id"]
    assert rows[1]["end_transaction_id"] is None
    assert len(tx_ids(v)) == 2


def test_delete_then_reinsert_in_separate_flushes_is_one_update(versioned):
    v = versioned(models)
    article_id = committed_article(v, name="a", content="c")
    with v.session() as session:
        session.delete(session.get(v.Article, article_id))
        session.flush()
        session.add(v.Article(id=article_id, name="again", content="c2"))
        session.commit()
    rows = versions(v)
    assert pick(rows, "id", "name", "content", "operation_type") == [
        (article_id, "a", "c", INSERT),
        (article_id, "again", "c2", UPDATE),
    ]
    assert rows[0]["end_transaction_id"] == rows[1]["transaction_id"]
    assert rows[1]["end_transaction_id"] is None
    assert len(tx_ids(v)) == 2


def test_delete_then_reinsert_in_one_flush_is_one_update(versioned):
    v = versioned(models)
    article_id = committed_article(v, name="a", content="c")
    with v.session() as session:
        session.delete(session.get(v.Article, article_id))
        session.add(v.Article(id=article_id, name="again", content="c2"))
        session.commit()
    rows = versions(v)
    assert pick(rows, "id", "name", "content", "operation_type") == [
        (article_id, "a", "c", INSERT),
        (article_id, "again", "c2", UPDATE),
    ]
    assert rows[0]["end_transaction_id"] == rows[1]["transaction_id"]
    assert rows[1]["end_transaction_id"] is None
    assert len(tx_ids(v)) == 2


def test_insert_then_update_of_other_object_in_later_flush(versioned):
    """A second flush touching a different object adds a row to the same transaction."""
    v = versioned(models)
    old_id = committed_article(v, name="old")
    with v.session() as session:
        session.add(v.Article(name="new"))
        session.flush()
        session.get(v.Article, old_id).name = "old2"
        session.commit()
    txs = tx_ids(v)
    assert len(txs) == 2
    last = [r for r in versions(v) if r["transaction_id"] == txs[1]]
    assert sorted(pick(last, "name", "operation_type")) == [("new", INSERT), ("old2", UPDATE)]


# -- rollback ------------------------------------------------------------------------------


def test_rollback_after_flush_leaves_nothing(versioned):
    v = versioned(models)
    article_id = committed_article(v, name="a")
    with v.session() as session:
        article = session.get(v.Article, article_id)
        article.name = "b"
        session.add(v.Article(name="other"))
        session.flush()
        session.delete(article)
        session.flush()
        session.rollback()
    assert len(v.manager.units_of_work) == 0
    assert len(v.manager.session_connection_map) == 0
    rows = versions(v)
    assert pick(rows, "name", "operation_type", "end_transaction_id") == [("a", INSERT, None)]
    assert tx_ids(v) == [rows[0]["transaction_id"]]


def test_next_transaction_after_rollback_records_normally(versioned):
    v = versioned(models)
    article_id = committed_article(v, name="a")
    with v.session() as session:
        article = session.get(v.Article, article_id)
        article.name = "rolled back"
        session.flush()
        session.rollback()
        assert article.name == "a"
        article.content = "kept"
        session.add(v.Article(name="new"))
        session.commit()
    rows = versions(v)
    txs = tx_ids(v)
    assert len(txs) == 2
    assert sorted(pick(rows, "transaction_id", "name", "content", "operation_type")) == sorted(
        [
            (txs[0], "a", None, INSERT),
            (txs[1], "a", "kept", UPDATE),
            (txs[1], "new", None, INSERT),
        ]
    )
    first = next(r for r in rows if r["transaction_id"] == txs[0])
    assert first["end_transaction_id"] == txs[1]


def test_rollback_of_insert_then_same_object_added_again(versioned):
    v = versioned(models)
    with v.session() as session:
        article = v.Article(name="a")
        session.add(article)
        session.flush()
        session.rollback()
        session.add(v.Article(name="b"))
        session.commit()
    rows = versions(v)
    assert pick(rows, "name", "operation_type", "end_transaction_id") == [("b", INSERT, None)]
    assert tx_ids(v) == [rows[0]["transaction_id"]]


# -- savepoints ----------------------------------------------------------------------------


def test_rolled_back_savepoint_leaves_no_version_and_no_transaction(versioned):
    v = versioned(models)
    article_id = committed_article(v, name="a")
    with v.session() as session:
        article = session.get(v.Article, article_id)
        nested = session.begin_nested()
        article.name = "inside"
        session.add(v.Article(name="inserted inside"))
        session.flush()
        nested.rollback()
        session.commit()
    rows = versions(v)
    assert pick(rows, "name", "operation_type", "end_transaction_id") == [("a", INSERT, None)]
    assert tx_ids(v) == [rows[0]["transaction_id"]]


def test_savepoint_rolled_back_by_exception_in_context_manager(versioned):
    v = versioned(models)
    article_id = committed_article(v, name="a")
    with v.session() as session:
        article = session.get(v.Article, article_id)
        with pytest.raises(RuntimeError), session.begin_nested():
            article.name = "inside"
            session.flush()
            raise RuntimeError("undo the savepoint")
        session.commit()
    assert pick(versions(v), "name", "operation_type") == [("a", INSERT)]
    assert len(tx_ids(v)) == 1


def test_change_before_savepoint_keeps_its_values(versioned):
    v = versioned(models)
    article_id = committed_article(v, name="a", content="c")
    with v.session() as session:
        article = session.get(v.Article, article_id)
        article.name = "before"
        session.flush()
        nested = session.begin_nested()
        article.name = "inside"
        article.content = "inside"
        session.flush()
        nested.rollback()
        session.commit()
    rows = versions(v)
    assert pick(rows, "name", "content", "operation_type") == [
        ("a", "c", INSERT),
        ("before", "c", UPDATE),
    ]
    assert rows[0]["end_transaction_id"] == rows[1]["transaction_id"]
    assert len(tx_ids(v)) == 2


def test_flush_after_rolled_back_only_savepoint_records_correctly(versioned):
    """The transaction row written inside the savepoint is gone; a new one must be written."""
    v = versioned(models)
    article_id = committed_article(v, name="a")
    with v.session() as session:
        article = session.get(v.Article, article_id)
        nested = session.begin_nested()
        article.name = "inside"
        session.flush()
        nested.rollback()
        with v.engine.connect() as other:
            # Nothing committed yet: still only the first transaction.
            assert (
                other.execute(sa.select(sa.func.count()).select_from(v.Transaction)).scalar() == 1
            )
        article.name = "after"
        session.commit()
    rows = versions(v)
    txs = tx_ids(v)
    assert len(txs) == 2
    assert pick(rows, "transaction_id", "name", "operation_type") == [
        (txs[0], "a", INSERT),
        (txs[1], "after", UPDATE),
    ]
    assert rows[0]["end_transaction_id"] == txs[1]
    assert rows[1]["end_transaction_id"] is None


def test_update_before_inside_and_after_rolled_back_savepoint(versioned):
    v = versioned(models)
    article_id = committed_article(v, name="a", content="c")
    with v.session() as session:
        article = session.get(v.Article, article_id)
        article.name = "before"
        session.flush()
        nested = session.begin_nested()
        article.name = "inside"
        article.content = "inside"
        session.flush()
        nested.rollback()
        article.name = "after"
        session.commit()
    rows = versions(v)
    txs = tx_ids(v)
    assert len(txs) == 2
    assert pick(rows, "transaction_id", "name", "content", "operation_type") == [
        (txs[0], "a", "c", INSERT),
        (txs[1], "after", "c", UPDATE),
    ]
    assert rows[0]["end_transaction_id"] == txs[1]


def test_insert_before_savepoint_then_update_inside_rolled_back(versioned):
    """The INSERT version written before the savepoint survives with its own values."""
    v = versioned(models)
    with v.session() as session:
        article = v.Article(name="before")
        session.add(article)
        session.flush()
        nested = session.begin_nested()
        article.name = "inside"
        session.flush()
        nested.rollback()
        article.content = "after"
        session.commit()
    rows = versions(v)
    assert pick(rows, "name", "content", "operation_type", "end_transaction_id") == [
        ("before", "after", INSERT, None)
    ]
    assert len(tx_ids(v)) == 1


def test_delete_inside_rolled_back_savepoint_then_update(versioned):
    v = versioned(models)
    article_id = committed_article(v, name="a")
    with v.session() as session:
        article = session.get(v.Article, article_id)
        nested = session.begin_nested()
        session.delete(article)
        session.flush()
        nested.rollback()
        article.name = "after"
        session.commit()
    rows = versions(v)
    assert pick(rows, "name", "operation_type") == [("a", INSERT), ("after", UPDATE)]
    assert len(tx_ids(v)) == 2


def test_released_savepoint_keeps_its_rows(versioned):
    v = versioned(models)
    article_id = committed_article(v, name="a")
    with v.session() as session:
        article = session.get(v.Article, article_id)
        with session.begin_nested():
            article.name = "inside"
            session.add(v.Article(name="new inside"))
        article.content = "after"
        session.commit()
    rows = versions(v)
    txs = tx_ids(v)
    assert len(txs) == 2
    assert sorted(pick(rows, "transaction_id", "name", "content", "operation_type")) == sorted(
        [
            (txs[0], "a", None, INSERT),
            (txs[1], "inside", "after", UPDATE),
            (txs[1], "new inside", None, INSERT),
        ]
    )


def test_nested_savepoints_inner_rolled_back_outer_released(versioned):
    v = versioned(models)
    first_id = committed_article(v, name="1")
    second_id = committed_article(v, name="2")
    with v.session() as session:
        first = session.get(v.Article, first_id)
        second = session.get(v.Article, second_id)
        outer = session.begin_nested()
        first.name = "1 outer"
        session.flush()
        inner = session.begin_nested()
        second.name = "2 inner"
        first.content = "inner"
        session.flush()
        inner.rollback()
        outer.commit()
        session.commit()
    rows = versions(v)
    txs = tx_ids(v)
    assert len(txs) == 3
    last = [r for r in rows if r["transaction_id"] == txs[2]]
    assert pick(last, "id", "name", "content", "operation_type") == [
        (first_id, "1 outer", None, UPDATE)
    ]
    second_rows = [r for r in rows if r["id"] == second_id]
    assert pick(second_rows, "name", "end_transaction_id") == [("2", None)]


def test_nested_savepoints_inner_released_outer_rolled_back(versioned):
    v = versioned(models)
    article_id = committed_article(v, name="a")
    with v.session() as session:
        article = session.get(v.Article, article_id)
        outer = session.begin_nested()
        article.name = "outer"
        session.flush()
        with session.begin_nested():
            article.content = "inner"
            session.add(v.Article(name="inner new"))
        outer.rollback()
        session.commit()
    rows = versions(v)
    assert pick(rows, "name", "operation_type", "end_transaction_id") == [("a", INSERT, None)]
    assert len(tx_ids(v)) == 1


def test_savepoint_rolled_back_after_transaction_began_outside(versioned):
    """The transaction row written before the savepoint survives its rollback."""
    v = versioned(models)
    first_id = committed_article(v, name="1")
    second_id = committed_article(v, name="2")
    with v.session() as session:
        first = session.get(v.Article, first_id)
        second = session.get(v.Article, second_id)
        first.name = "1 before"
        session.flush()
        nested = session.begin_nested()
        second.name = "2 inside"
        session.flush()
        nested.rollback()
        second.content = "2 after"
        session.commit()
    rows = versions(v)
    txs = tx_ids(v)
    assert len(txs) == 3
    last = [r for r in rows if r["transaction_id"] == txs[2]]
    assert pick(last, "id", "name", "content", "operation_type") == [
        (first_id, "1 before", None, UPDATE),
        (second_id, "2", "2 after", UPDATE),
    ]


def test_several_savepoints_in_sequence(versioned):
    v = versioned(models)
    article_id = committed_article(v, name="a")
    with v.session() as session:
        article = session.get(v.Article, article_id)
        for i in range(3):
            nested = session.begin_nested()
            article.name = f"try {i}"
            session.flush()
            if i == 1:
                nested.commit()
            else:
                nested.rollback()
        session.commit()
    rows = versions(v)
    assert pick(rows, "name", "operation_type") == [("a", INSERT), ("try 1", UPDATE)]
    assert len(tx_ids(v)) == 2


# -- values the flush did not load ----------------------------------------------------------

_REVISION_TRIGGERS = {
    "sqlite": [
        """
        CREATE TRIGGER document_revision AFTER UPDATE OF body ON document
        BEGIN
            UPDATE document SET revision = OLD.revision + 1 WHERE id = NEW.id;
        END
        """
    ],
    "postgresql": [
        """
        CREATE OR REPLACE FUNCTION document_revision() RETURNS trigger AS $$
        BEGIN
            NEW.revision := OLD.revision + 1;
            RETURN NEW;
        END
        $$ LANGUAGE plpgsql
        """,
        """
        CREATE TRIGGER document_revision BEFORE UPDATE OF body ON document
        FOR EACH ROW EXECUTE FUNCTION document_revision()
        """,
    ],
    "mysql": [
        """
        CREATE TRIGGER document_revision BEFORE UPDATE ON document
        FOR EACH ROW SET NEW.revision =
            IF(NEW.body <=> OLD.body, OLD.revision, OLD.revision + 1)
        """
    ],
}


def defaults_models(Base):
    class Document(Base):
        __versioned__ = {}
        __tablename__ = "document"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        title = sa.Column(sa.Unicode(100))
        body = sa.Column(sa.Unicode(100))
        status = sa.Column(sa.Unicode(20), server_default="draft")
        priority = sa.Column(sa.Integer, server_default=sa.text("5"))
        py_default = sa.Column(sa.Unicode(20), default=lambda: "py-default")
        touched = sa.Column(sa.Unicode(20), onupdate="touched")
        edits = sa.Column(
            sa.Integer, server_default=sa.text("0"), onupdate=sa.literal_column("edits + 1")
        )
        revision = sa.Column(
            sa.Integer, server_default=sa.text("1"), server_onupdate=sa.FetchedValue()
        )
        summary = deferred(sa.Column(sa.Unicode(100)))

    return locals()


def test_server_defaults_are_recorded(versioned):
    v = versioned(defaults_models)
    with v.session() as session:
        session.add(v.Document(title="t"))
        session.commit()
    row = versions(v, "document_version")[0]
    assert (row["title"], row["status"], row["priority"], row["py_default"]) == (
        "t",
        "draft",
        5,
        "py-default",
    )
    assert (row["edits"], row["revision"], row["touched"]) == (0, 1, None)


def test_python_and_sql_onupdate_values_are_recorded(versioned):
    v = versioned(defaults_models)
    with v.session() as session:
        doc = v.Document(title="t")
        session.add(doc)
        session.commit()
        doc.title = "t2"
        session.commit()
        doc.title = "t3"
        session.commit()
    rows = versions(v, "document_version")
    assert pick(rows, "title", "touched", "edits", "operation_type") == [
        ("t", None, 0, INSERT),
        ("t2", "touched", 1, UPDATE),
        ("t3", "touched", 2, UPDATE),
    ]


def test_server_onupdate_value_from_trigger_is_recorded(versioned):
    v = versioned(defaults_models)
    statements = _REVISION_TRIGGERS.get(v.engine.dialect.name)
    if statements is None:
        pytest.skip(f"no revision trigger written for {v.engine.dialect.name}")
    with v.engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    with v.session() as session:
        doc = v.Document(title="t", body="b")
        session.add(doc)
        session.commit()
        doc.body = "b2"
        session.commit()
        doc.body = "b3"
        doc.title = "t3"
        session.flush()
        doc.title = "t4"  # a second flush without body: the trigger leaves revision at 3
        session.commit()
        assert doc.revision == 3
    rows = versions(v, "document_version")
    assert pick(rows, "title", "body", "revision", "operation_type") == [
        ("t", "b", 1, INSERT),
        ("t", "b2", 2, UPDATE),
        ("t4", "b3", 3, UPDATE),
    ]


def test_delete_of_expired_object_records_real_values(versioned):
    v = versioned(defaults_models)
    with v.session() as session:
        doc = v.Document(title="t", body="b", summary="s")
        session.add(doc)
        session.commit()
        doc.title = "t2"
        session.commit()
        session.expire(doc)
        session.delete(doc)
        session.commit()
    rows = versions(v, "document_version")
    assert pick(rows, "title", "body", "summary", "status", "edits", "operation_type") == [
        ("t", "b", "s", "draft", 0, INSERT),
        ("t2", "b", "s", "draft", 1, UPDATE),
        ("t2", "b", "s", "draft", 1, DELETE),
    ]


def test_delete_of_object_loaded_elsewhere_without_deferred_column(versioned):
    v = versioned(defaults_models)
    with v.session() as session:
        doc = v.Document(title="t", summary="s")
        session.add(doc)
        session.commit()
        doc_id = doc.id
    with v.session() as session:
        doc = session.get(v.Document, doc_id)
        assert "summary" not in sa.inspect(doc).dict
        session.delete(doc)
        session.commit()
    rows = versions(v, "document_version")
    assert pick(rows, "title", "summary", "status", "operation_type") == [
        ("t", "s", "draft", INSERT),
        ("t", "s", "draft", DELETE),
    ]


def test_update_right_after_commit_records_all_real_values(versioned):
    v = versioned(defaults_models)
    with v.session() as session:
        doc = v.Document(title="t", body="b", summary="s")
        session.add(doc)
        session.commit()
        # Every attribute is expired now; only title is assigned.
        doc.title = "t2"
        session.commit()
    rows = versions(v, "document_version")
    assert len(rows) == 2
    assert pick(rows[1:], "title", "body", "summary", "status", "priority", "py_default") == [
        ("t2", "b", "s", "draft", 5, "py-default")
    ]
    assert rows[1]["operation_type"] == UPDATE
    assert rows[1]["edits"] == 1


def test_update_with_deferred_column_not_loaded(versioned):
    v = versioned(defaults_models)
    with v.session() as session:
        doc = v.Document(title="t", summary="s")
        session.add(doc)
        session.commit()
        doc_id = doc.id
    with v.session() as session:
        doc = session.get(v.Document, doc_id)
        doc.title = "t2"
        session.commit()
    rows = versions(v, "document_version")
    assert pick(rows, "title", "summary", "operation_type") == [
        ("t", "s", INSERT),
        ("t2", "s", UPDATE),
    ]


def test_delete_after_unflushed_change_records_database_values(versioned):
    """The DELETE version holds what the row held, not an unflushed assignment."""
    v = versioned(models)
    article_id = committed_article(v, name="a", content="c")
    with v.session() as session:
        article = session.get(v.Article, article_id)
        article.name = "never flushed"
        session.delete(article)
        session.commit()
    rows = versions(v)
    assert pick(rows, "name", "content", "operation_type") == [
        ("a", "c", INSERT),
        ("a", "c", DELETE),
    ]


# -- strategies and column names -------------------------------------------------------------


CONFIGS = {
    "validity": ({}, "transaction_id", "end_transaction_id", "operation_type"),
    "subquery": ({"strategy": "subquery"}, "transaction_id", None, "operation_type"),
    "validity-custom-names": (
        {
            "transaction_column_name": "tx_id",
            "end_transaction_column_name": "end_tx_id",
            "operation_type_column_name": "op",
        },
        "tx_id",
        "end_tx_id",
        "op",
    ),
    "subquery-custom-names": (
        {
            "strategy": "subquery",
            "transaction_column_name": "tx_id",
            "end_transaction_column_name": "end_tx_id",
            "operation_type_column_name": "op",
        },
        "tx_id",
        None,
        "op",
    ),
}


@pytest.fixture(params=list(CONFIGS))
def configured(request, versioned):
    options, tx, end, op = CONFIGS[request.param]
    v = versioned(models, options=options)
    return v, tx, end, op


def test_config_version_table_columns(configured):
    v, tx, end, op = configured
    columns = set(v.version_table("article_version").c.keys())
    assert {tx, op} <= columns
    assert (end in columns) if end else not columns & {"end_transaction_id", "end_tx_id"}
    assert not {"transaction_id", "operation_type"} - {tx, op} & columns


def test_config_insert_update_delete(configured):
    v, tx, end, op = configured
    with v.session() as session:
        article = v.Article(name="a")
        session.add(article)
        session.commit()
        article.name = "b"
        session.commit()
        session.delete(article)
        session.commit()
    rows = versions(v, tx=tx)
    txs = tx_ids(v)
    assert len(txs) == 3
    assert pick(rows, tx, "name", op) == [
        (txs[0], "a", INSERT),
        (txs[1], "b", UPDATE),
        (txs[2], "b", DELETE),
    ]
    if end:
        assert [r[end] for r in rows] == [txs[1], txs[2], None]


def test_config_flushes_merge(configured):
    v, tx, end, op = configured
    article_id = committed_article(v, name="a")
    with v.session() as session:
        article = session.get(v.Article, article_id)
        article.name = "b"
        session.flush()
        article.content = "c"
        session.flush()
        created = v.Article(name="new")
        session.add(created)
        session.flush()
        created.name = "new2"
        session.commit()
        created_id = created.id
    with v.session() as session:
        session.delete(session.get(v.Article, article_id))
        session.flush()
        session.add(v.Article(id=article_id, name="back"))
        session.commit()
    rows = versions(v, tx=tx)
    txs = tx_ids(v)
    assert len(txs) == 3
    assert sorted(pick(rows, tx, "id", "name", "content", op)) == sorted(
        [
            (txs[0], article_id, "a", None, INSERT),
            (txs[1], article_id, "b", "c", UPDATE),
            (txs[1], created_id, "new2", None, INSERT),
            (txs[2], article_id, "back", None, UPDATE),
        ]
    )
    if end:
        ends = {(r["id"], r[tx]): r[end] for r in rows}
        assert ends == {
            (article_id, txs[0]): txs[1],
            (article_id, txs[1]): txs[2],
            (created_id, txs[1]): None,
            (article_id, txs[2]): None,
        }


def test_config_rolled_back_savepoint(configured):
    v, tx, end, op = configured
    article_id = committed_article(v, name="a")
    with v.session() as session:
        article = session.get(v.Article, article_id)
        nested = session.begin_nested()
        article.name = "inside"
        session.flush()
        nested.rollback()
        article.name = "after"
        session.commit()
    rows = versions(v, tx=tx)
    txs = tx_ids(v)
    assert pick(rows, tx, "name", op) == [(txs[0], "a", INSERT), (txs[1], "after", UPDATE)]
    if end:
        assert [r[end] for r in rows] == [txs[1], None]
