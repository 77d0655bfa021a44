"""Names: long identifiers, reserved words as table and column names, schemas.

Long names are sized from the database's own limit (Oracle and SQL Server allow 128 bytes,
MySQL 64, PostgreSQL 63), and each length runs where the database accepts it.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from ._helpers import DELETE, INSERT, UPDATE, pick, pk

__all__ = ["TestLongIdentifiers", "TestReservedWords", "TestSchemas"]

SUFFIX = "_version"


def _long_models(length):
    """Models whose version table name and one column name are ``length`` bytes."""
    table_name = ("t" * (length - len(SUFFIX) - 2) + "_x")[: length - len(SUFFIX)]
    column_name = ("c" * length)[:length]

    def define(Base):
        class LongNamed(Base):
            __versioned__ = {}
            __tablename__ = table_name
            id = pk()
            value = sa.Column(column_name, sa.Unicode(50))

        return locals()

    return define, table_name + SUFFIX, column_name


class TestLongIdentifiers:
    @pytest.mark.parametrize(
        "length",
        [
            pytest.param(63, marks=pytest.mark.requires("identifier_length", 63)),
            pytest.param(64, marks=pytest.mark.requires("identifier_length", 64)),
            pytest.param(128, marks=pytest.mark.requires("identifier_length", 128)),
        ],
    )
    @pytest.mark.requires("generated_names_fit_limit")
    def test_names_at_the_limit_work(self, history, conformance_models, length):
        define, version_table, column = _long_models(length)
        assert len(version_table) == len(column) == length
        # An implementation that keeps generated names portable by default is told here
        # (by its adapter) that the database allows longer ones.
        options = history.adapter.identifier_length_options(length)
        m = conformance_models(define, options=options)
        assert sa.inspect(m.engine).has_table(version_table)
        with m.session() as session:
            obj = m.LongNamed(value="a")
            session.add(obj)
            session.commit()
            obj.value = "b"
            session.commit()
            assert [v.value for v in obj.versions] == ["a", "b"]
            assert obj.versions[1].changeset == {"value": ["a", "b"]}
        assert pick(m.rows(version_table, ["transaction_id"]), column, "operation_type") == [
            ("a", INSERT),
            ("b", UPDATE),
        ]

    @pytest.mark.requires("identifier_length_limit")
    @pytest.mark.requires("early_identifier_check")
    def test_too_long_version_table_name_fails_naming_the_model(
        self, history, conformance_models, conformance_db
    ):
        limit = conformance_db.info.max_identifier_length
        table_name = "t" * (limit - 3)  # fits; the version table name does not

        def define(Base):
            class Overlong(Base):
                __versioned__ = {}
                __tablename__ = table_name
                id = pk()

            return locals()

        conformance_models.configuration_error(
            history.exc.ImproperlyConfigured, define, match="Overlong"
        )


def reserved(Base):
    class User(Base):
        __tablename__ = "user"
        id = pk()
        select = sa.Column(sa.Unicode(50))

    class Order(Base):
        __versioned__ = {}
        __tablename__ = "order"
        id = pk()
        group = sa.Column("group", sa.Unicode(50))
        user = sa.Column("user", sa.Unicode(50))
        from_ = sa.Column("from", sa.Integer)
        user_id = sa.Column(sa.Integer, sa.ForeignKey("user.id"))

    return locals()


class TestReservedWords:
    def test_reserved_words_as_table_and_column_names(self, history, conformance_models):
        m = conformance_models(reserved, user_cls="User")
        with m.session() as session:
            user = m.User(select="s")
            session.add(user)
            session.commit()
            order = m.Order(group="g", user="u", from_=1, user_id=user.id)
            session.add(order)
            session.commit()
            order.group = "g2"
            order.from_ = 2
            session.commit()
            first, second = order.versions.all()
            assert second.changeset == {"group": ["g", "g2"], "from_": [1, 2]}
            assert first.next.group == "g2"
            first.revert()
            session.commit()
            assert (order.group, order.from_) == ("g", 1)
            session.delete(order)
            session.commit()
        rows = m.rows("order_version", ["transaction_id"])
        assert pick(rows, "group", "user", "from", "operation_type") == [
            ("g", "u", 1, INSERT),
            ("g2", "u", 2, UPDATE),
            ("g", "u", 1, UPDATE),
            ("g", "u", 1, DELETE),
        ]

    @pytest.mark.parametrize(
        "op",
        [
            "operation_type",
            pytest.param("order", marks=pytest.mark.requires("operation_type_column_name")),
        ],
    )
    def test_reserved_words_as_versioning_column_names(self, history, conformance_models, op):
        options = {"transaction_column_name": "select", "end_transaction_column_name": "end"}
        if op != "operation_type":
            options["operation_type_column_name"] = op
        m = conformance_models(reserved, options=options)
        with m.session() as session:
            order = m.Order(group="g")
            session.add(order)
            session.commit()
            order.group = "h"
            session.commit()
            assert [v.group for v in order.versions] == ["g", "h"]
            assert order.versions[0].next.group == "h"
        rows = m.rows("order_version", ["select"])
        assert [(r["group"], r[op]) for r in rows] == [("g", INSERT), ("h", UPDATE)]
        assert rows[0]["end"] == rows[1]["select"]


@pytest.mark.requires("schemas")
class TestSchemas:
    def test_version_table_lives_in_the_parent_schema(
        self, history, conformance_models, conformance_db
    ):
        schema = conformance_db.info.schema

        def define(Base):
            class Article(Base):
                __versioned__ = {}
                __tablename__ = "article"
                __table_args__ = {"schema": schema}
                id = pk()
                name = sa.Column(sa.Unicode(100))

            return locals()

        m = conformance_models(define)
        assert sa.inspect(m.engine).has_table("article_version", schema=schema)
        with m.session() as session:
            article = m.Article(name="a")
            session.add(article)
            session.commit()
            article.name = "b"
            session.commit()
            assert [v.name for v in article.versions] == ["a", "b"]
            article.versions[0].revert()
            session.commit()
            assert article.name == "a"
        rows = m.rows(f"{schema}.article_version", ["transaction_id"])
        assert pick(rows, "name", "operation_type") == [("a", INSERT), ("b", UPDATE), ("a", UPDATE)]
