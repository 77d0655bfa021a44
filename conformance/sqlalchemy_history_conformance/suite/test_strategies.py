"""Both strategies (validity, subquery) and custom column and table names."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from ._helpers import CONFIGS, DELETE, INSERT, UPDATE, add, articles, configs, pick, pk, tx_ids

__all__ = [
    "TestConfigurationErrorRecovery",
    "TestOptionErrors",
    "TestStrategiesAndNames",
    "TestTableNameTemplate",
]


@pytest.mark.parametrize("config", configs())
class TestStrategiesAndNames:
    def test_record_and_traverse(self, history, conformance_models, config):
        options, tx, end, op = CONFIGS[config]
        m = conformance_models(articles, options=options)
        columns = {c["name"] for c in sa.inspect(m.engine).get_columns("article_version")}
        assert columns == {"id", "name", "content", tx, op} | ({end} if end else set())
        article_id = add(m, m.Article(name="a"))
        with m.session() as session:
            article = session.get(m.Article, article_id)
            article.name = "b"
            session.commit()
            article.name = "c"
            session.commit()
            first, second, third = article.versions.all()
            assert [v.name for v in (first, second, third)] == ["a", "b", "c"]
            assert (second.previous.name, second.next.name) == ("a", "c")
            assert (first.previous, third.next) == (None, None)
            assert [v.index for v in (first, second, third)] == [0, 1, 2]
            assert third.changeset == {"name": ["b", "c"]}
            assert getattr(second, op) == UPDATE
            assert history.tx_column_name(article) == tx
            if end:
                assert history.utils.end_tx_column_name(article) == end
            session.delete(article)
            session.commit()
        rows = m.rows("article_version", [tx])
        txs = tx_ids(m)
        assert pick(rows, tx, "name", op) == [
            (txs[0], "a", INSERT),
            (txs[1], "b", UPDATE),
            (txs[2], "c", UPDATE),
            (txs[3], "c", DELETE),
        ]
        if end:
            assert [r[end] for r in rows] == [txs[1], txs[2], txs[3], None]

    def test_merging_and_savepoint_rollback(self, conformance_models, config):
        options, tx, end, op = CONFIGS[config]
        m = conformance_models(articles, options=options)
        article_id = add(m, m.Article(name="a"))
        with m.session() as session:
            article = session.get(m.Article, article_id)
            article.name = "b"
            session.flush()
            nested = session.begin_nested()
            article.name = "inside"
            session.flush()
            nested.rollback()
            article.content = "c"
            session.commit()
        rows = m.rows("article_version", [tx])
        assert pick(rows, "name", "content", op) == [("a", None, INSERT), ("b", "c", UPDATE)]
        if end:
            assert rows[0][end] == rows[1][tx]


class TestTableNameTemplate:
    def test_table_name_template(self, history, conformance_models):
        m = conformance_models(articles, options={"table_name": "%s_history"})
        add(m, m.Article(name="a"))
        assert sa.inspect(m.engine).has_table("article_history")
        assert pick(m.rows("article_history"), "name", "operation_type") == [("a", INSERT)]
        assert sa.inspect(history.version_class(m.Article)).local_table.name == "article_history"

    def test_per_class_options_override_manager_options(self, conformance_models):
        def define(Base):
            class Article(Base):
                __versioned__ = {"strategy": "validity"}
                __tablename__ = "article"
                id = pk()
                name = sa.Column(sa.Unicode(255))

            class Tag(Base):
                __versioned__ = {}
                __tablename__ = "tag"
                id = pk()
                name = sa.Column(sa.Unicode(255))

            return locals()

        m = conformance_models(define, options={"strategy": "subquery"})
        inspector = sa.inspect(m.engine)
        article_columns = {c["name"] for c in inspector.get_columns("article_version")}
        tag_columns = {c["name"] for c in inspector.get_columns("tag_version")}
        assert "end_transaction_id" in article_columns
        assert "end_transaction_id" not in tag_columns


class TestOptionErrors:
    @pytest.mark.requires("option_validation")
    def test_unknown_strategy_names_the_model(self, history, conformance_models):
        def define(Base):
            class Gadget(Base):
                __versioned__ = {"strategy": "sometimes"}
                __tablename__ = "gadget"
                id = pk()

            return locals()

        conformance_models.configuration_error(
            history.exc.ImproperlyConfigured, define, match="Gadget"
        )

    @pytest.mark.requires("column_collision_check")
    def test_parent_column_colliding_with_versioning_column(self, history, conformance_models):
        def define(Base):
            class Gizmo(Base):
                __versioned__ = {}
                __tablename__ = "gizmo"
                id = pk()
                transaction_id = sa.Column(sa.Integer)

            return locals()

        conformance_models.configuration_error(
            history.exc.ImproperlyConfigured, define, match="transaction_id"
        )


class TestConfigurationErrorRecovery:
    @pytest.mark.requires("configuration_error_recovery")
    def test_models_after_a_configuration_error_are_versioned(self, history, conformance_models):
        def rejected(Base):
            class Gizmo(Base):
                __versioned__ = {}
                __tablename__ = "gizmo"
                id = pk()
                # rejected by every implementation (ImproperlyConfigured, or SQLAlchemy's
                # DuplicateColumnError where the collision is not checked)
                transaction_id = sa.Column(sa.Integer)

            return locals()

        def recovered():
            try:
                conformance_models(rejected, create=False)
            except Exception:
                pass
            else:
                return "the rejected models were accepted"
            conformance_models.close(keep=False)  # remove_versioning(), dispose the classes
            m = conformance_models(articles, create=False)
            return sa.inspect(history.version_class(m.Article)).local_table.name

        assert conformance_models.isolated(recovered) == "article_version"
