"""CRUD and operation types, no-op skip, and the version table layout.

Every test reads the tables back from the database after commit: it checks what the
database holds, not what the implementation keeps in memory.
"""

from __future__ import annotations

import datetime

import pytest
import sqlalchemy as sa

from ._helpers import (
    DELETE,
    INSERT,
    UPDATE,
    StatementCounter,
    add,
    articles,
    pick,
    pk,
    tx_ids,
    versions,
)

__all__ = ["TestNoOpSkip", "TestRecording", "TestVersionSchema"]


class TestRecording:
    def test_insert_update_delete_write_operation_types(self, history, conformance_models):
        m = conformance_models(articles)
        with m.session() as session:
            article = m.Article(name="a", content="c", views=3)
            session.add(article)
            session.commit()
            article.name = "b"
            session.commit()
            session.delete(article)
            session.commit()
        rows = versions(m)
        txs = tx_ids(m)
        assert len(txs) == 3
        assert pick(rows, "transaction_id", "name", "content", "operation_type") == [
            (txs[0], "a", "c", INSERT),
            (txs[1], "b", "c", UPDATE),
            (txs[2], "b", "c", DELETE),
        ]
        assert [r["end_transaction_id"] for r in rows] == [txs[1], txs[2], None]
        assert "views" not in rows[0]
        assert [int(history.Operation.INSERT), int(history.Operation.DELETE)] == [INSERT, DELETE]

    def test_one_transaction_row_for_many_objects(self, conformance_models):
        m = conformance_models(articles)
        with m.session() as session:
            session.add_all([m.Article(name=f"a{i}") for i in range(5)])
            session.add(m.Note(text="not versioned"))
            session.commit()
        rows = versions(m)
        assert len(rows) == 5
        assert {r["transaction_id"] for r in rows} == set(tx_ids(m))
        assert len(tx_ids(m)) == 1

    def test_transaction_row_is_issued_now_in_utc(self, conformance_models):
        m = conformance_models(articles)
        before = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        add(m, m.Article(name="a"))
        after = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        (row,) = m.rows("transaction")
        issued = row["issued_at"]
        slack = datetime.timedelta(seconds=2)  # MySQL DATETIME drops fractions of seconds
        assert before - slack <= issued <= after + slack

    def test_deleted_object_with_expired_attributes_records_database_values(
        self, conformance_models
    ):
        m = conformance_models(articles)
        article_id = add(m, m.Article(name="a", content="c"))
        with m.session() as session:
            article = session.get(m.Article, article_id)
            session.expire(article)
            session.delete(article)
            session.commit()
        assert pick(versions(m), "name", "content", "operation_type") == [
            ("a", "c", INSERT),
            ("a", "c", DELETE),
        ]

    def test_server_default_and_sql_onupdate_are_recorded(self, conformance_models):
        def define(Base):
            class Page(Base):
                __versioned__ = {}
                __tablename__ = "page"
                id = pk()
                title = sa.Column(sa.Unicode(100))
                status = sa.Column(sa.Unicode(20), server_default="draft")
                edits = sa.Column(sa.Integer, default=0, onupdate=sa.text("edits + 1"))

            return locals()

        m = conformance_models(define)
        page_id = add(m, m.Page(title="t"))
        with m.session() as session:
            session.get(m.Page, page_id).title = "u"
            session.commit()
        rows = versions(m, "page_version")
        assert pick(rows, "title", "status", "edits", "operation_type") == [
            ("t", "draft", 0, INSERT),
            ("u", "draft", 1, UPDATE),
        ]

    def test_composite_primary_key(self, conformance_models):
        def define(Base):
            class Slot(Base):
                __versioned__ = {}
                __tablename__ = "slot"
                day = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
                room = sa.Column(sa.Unicode(20), primary_key=True)
                label = sa.Column(sa.Unicode(100))

            return locals()

        m = conformance_models(define)
        with m.session() as session:
            session.add_all([m.Slot(day=1, room="a", label="x"), m.Slot(day=1, room="b")])
            session.commit()
            session.get(m.Slot, (1, "a")).label = "y"
            session.commit()
            session.delete(session.get(m.Slot, (1, "b")))
            session.commit()
        rows = m.rows("slot_version", ["transaction_id", "day", "room"])
        assert pick(rows, "room", "label", "operation_type") == [
            ("a", "x", INSERT),
            ("b", None, INSERT),
            ("a", "y", UPDATE),
            ("b", None, DELETE),
        ]
        closed = {(r["room"], r["transaction_id"]): r["end_transaction_id"] for r in rows}
        assert closed[("a", rows[0]["transaction_id"])] == rows[2]["transaction_id"]
        assert closed[("b", rows[1]["transaction_id"])] == rows[3]["transaction_id"]

    def test_column_alias_is_versioned_under_its_column_name(self, history, conformance_models):
        def define(Base):
            class Book(Base):
                __versioned__ = {}
                __tablename__ = "book"
                id = pk()
                title = sa.Column("book_title", sa.Unicode(100))

            return locals()

        m = conformance_models(define)
        book_id = add(m, m.Book(title="one"))
        with m.session() as session:
            book = session.get(m.Book, book_id)
            book.title = "two"
            session.commit()
            assert [v.title for v in book.versions] == ["one", "two"]
            assert book.versions[1].changeset == {"title": ["one", "two"]}
        assert [r["book_title"] for r in versions(m, "book_version")] == ["one", "two"]

    @pytest.mark.requires("transaction_user")
    def test_transaction_user(self, history, conformance_models):
        def define(Base):
            class User(Base):
                __tablename__ = "app_user"
                id = pk()
                name = sa.Column(sa.Unicode(50))

            class Article(Base):
                __versioned__ = {}
                __tablename__ = "article"
                id = pk()
                name = sa.Column(sa.Unicode(255))

            return locals()

        m = conformance_models(define, user_cls="User")
        user_id = add(m, m.User(name="ann"))
        with m.session() as session:
            uow = history.versioning_manager.unit_of_work(session)
            transaction = uow.create_transaction(session)
            transaction.user_id = user_id
            session.add(m.Article(name="a"))
            session.commit()
            version = session.scalars(sa.select(history.version_class(m.Article))).one()
            assert version.transaction.user.name == "ann"
        assert [r["user_id"] for r in m.rows("transaction")] == [user_id]

    @pytest.mark.requires("constant_history_statements")
    def test_history_statements_do_not_grow_with_rows(self, conformance_models):
        m = conformance_models(articles)

        def history_statements(n: int) -> int:
            # expire_on_commit=False: one flush writes the n rows (reading expired objects
            # one by one would autoflush them one by one)
            with m.session(expire_on_commit=False) as session:
                objs = [m.Article(name=f"n{i}") for i in range(n)]
                session.add_all(objs)
                session.commit()
                for obj in objs:
                    obj.name = obj.name + "!"
                with StatementCounter(m.engine) as counter:
                    session.commit()
            return len(counter.matching("article_version"))

        one, many = history_statements(1), history_statements(50)
        # Both updates were recorded (the counts below are not an empty 0 == 0) ...
        updates = [r for r in versions(m) if r["operation_type"] == UPDATE]
        assert sorted(r["name"] for r in updates) == sorted(["n0!"] + [f"n{i}!" for i in range(50)])
        # ... with statements on the version table: close the previous versions, insert the
        # new ones, a constant whatever the row count.
        assert 1 <= one <= 3
        assert many == one


class TestNoOpSkip:
    def test_assigning_the_same_value_writes_nothing(self, conformance_models):
        m = conformance_models(articles)
        article_id = add(m, m.Article(name="a"))
        with m.session() as session:
            session.get(m.Article, article_id).name = "a"
            session.commit()
        assert len(versions(m)) == 1
        assert len(tx_ids(m)) == 1

    def test_changing_only_an_excluded_column_writes_nothing(self, conformance_models):
        m = conformance_models(articles)
        article_id = add(m, m.Article(name="a", views=1))
        with m.session() as session:
            session.get(m.Article, article_id).views = 2
            session.commit()
        assert len(versions(m)) == 1
        assert len(tx_ids(m)) == 1

    def test_excluded_and_versioned_change_together_write_one_version(self, conformance_models):
        m = conformance_models(articles)
        article_id = add(m, m.Article(name="a", views=1))
        with m.session() as session:
            article = session.get(m.Article, article_id)
            article.views = 2
            article.name = "b"
            session.commit()
        assert pick(versions(m), "name", "operation_type") == [("a", INSERT), ("b", UPDATE)]

    def test_only_non_versioned_changes_write_no_transaction(self, conformance_models):
        m = conformance_models(articles)
        add(m, m.Note(text="n"))
        assert tx_ids(m) == []
        add(m, m.Article(name="a"))  # the control: a versioned change writes one
        assert len(tx_ids(m)) == 1

    def test_no_op_flush_then_real_change_writes_one_version(self, conformance_models):
        m = conformance_models(articles)
        article_id = add(m, m.Article(name="a"))
        with m.session() as session:
            article = session.get(m.Article, article_id)
            article.name = "a"
            session.flush()
            article.name = "b"
            session.commit()
        assert pick(versions(m), "name", "operation_type") == [("a", INSERT), ("b", UPDATE)]
        assert len(tx_ids(m)) == 2


class TestVersionSchema:
    """The version tables as the database reports them (reflection, not our MetaData)."""

    def test_version_table_columns_and_primary_key(self, conformance_models):
        m = conformance_models(articles)
        inspector = sa.inspect(m.engine)
        columns = {c["name"]: c for c in inspector.get_columns("article_version")}
        assert set(columns) == {
            "id",
            "name",
            "content",
            "transaction_id",
            "end_transaction_id",
            "operation_type",
        }
        primary_key = inspector.get_pk_constraint("article_version")["constrained_columns"]
        assert sorted(primary_key) == ["id", "transaction_id"]
        assert all(columns[c]["nullable"] for c in ("name", "content", "end_transaction_id"))
        assert not columns["operation_type"]["nullable"]
        assert all(columns[c].get("default") is None for c in ("name", "content"))
        assert not inspector.get_unique_constraints("article_version")

    def test_transaction_table_columns(self, conformance_models):
        m = conformance_models(articles)
        inspector = sa.inspect(m.engine)
        names = {c["name"] for c in inspector.get_columns("transaction")}
        assert {"id", "issued_at", "remote_addr"} <= names
        assert inspector.get_pk_constraint("transaction")["constrained_columns"] == ["id"]
