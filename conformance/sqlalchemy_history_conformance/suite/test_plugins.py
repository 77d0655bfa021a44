"""Plugins: custom hooks and the bundled plugins, one requirement each.

The suite reaches plugin classes as ``<implementation>.plugins``, the import path users
have (``from sqlalchemy_history.plugins import PropertyModTrackerPlugin``).
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from ._helpers import DELETE, INSERT, UPDATE, add, articles, pick, versions

__all__ = ["TestBundledPlugins", "TestPluginHooks"]


def plugins_module(history):
    return history.plugins


class TestPluginHooks:
    @pytest.mark.requires("plugin_hooks")
    def test_transaction_args_and_changeset_hooks_run(self, history, conformance_models):
        base = plugins_module(history).Plugin

        class Tagging(base):
            def transaction_args(self, uow, session):
                return {"remote_addr": "192.0.2.7"}

            def after_construct_changeset(self, version, changeset):
                changeset["seen_by_plugin"] = [None, True]

        m = conformance_models(articles, plugins=[Tagging()])
        with m.session() as session:
            article = m.Article(name="a")
            session.add(article)
            session.commit()
            assert article.versions[0].changeset["seen_by_plugin"] == [None, True]
        assert [r["remote_addr"] for r in m.rows("transaction")] == ["192.0.2.7"]

    @pytest.mark.requires("plugin_hook_validation")
    def test_misspelt_hook_is_rejected_at_registration(self, history, conformance_models):
        base = plugins_module(history).Plugin

        class Misspelt(base):
            def after_flsuh(self, *args):  # not a hook: a typo of after_flush
                pass

        conformance_models.configuration_error(
            history.exc.ImproperlyConfigured, articles, match="after_flsuh", plugins=[Misspelt()]
        )


class TestBundledPlugins:
    @pytest.mark.requires("property_mod_tracker_plugin")
    def test_property_mod_tracker_flags_changed_columns(self, history, conformance_models):
        plugin = plugins_module(history).PropertyModTrackerPlugin()
        m = conformance_models(articles, plugins=[plugin])
        article_id = add(m, m.Article(name="a", content="c"))
        with m.session() as session:
            session.get(m.Article, article_id).name = "b"
            session.commit()
            ArticleVersion = history.version_class(m.Article)
            renames = session.scalars(
                sa.select(ArticleVersion.name)
                .where(ArticleVersion.name_mod)
                .order_by(ArticleVersion.transaction_id)
            ).all()
            assert renames == ["a", "b"]
        rows = versions(m)
        assert pick(rows, "name_mod", "content_mod", "operation_type") == [
            (True, True, INSERT),
            (True, False, UPDATE),
        ]

    @pytest.mark.requires("transaction_changes_plugin")
    def test_transaction_changes_lists_changed_classes(self, history, conformance_models):
        plugin = plugins_module(history).TransactionChangesPlugin()
        m = conformance_models(articles, plugins=[plugin])
        add(m, m.Article(name="a"))
        add(m, m.Note(text="not versioned"))
        with m.session() as session:
            (transaction,) = session.scalars(sa.select(m.Transaction)).all()
            assert transaction.entity_names == ["Article"]
        assert pick(m.rows("transaction_changes"), "entity_name") == [("Article",)]

    @pytest.mark.requires("transaction_meta_plugin")
    def test_transaction_meta_stores_key_value_pairs(self, history, conformance_models):
        plugin = plugins_module(history).TransactionMetaPlugin()
        m = conformance_models(articles, plugins=[plugin])
        with m.session() as session:
            uow = history.versioning_manager.unit_of_work(session)
            uow.create_transaction(session).meta = {"reason": "typo", "ticket": "T-42"}
            session.add(m.Article(name="a"))
            session.commit()
            (transaction,) = session.scalars(sa.select(m.Transaction)).all()
            assert transaction.meta == {"reason": "typo", "ticket": "T-42"}
        rows = m.rows("transaction_meta", ["key"])
        assert pick(rows, "key", "value") == [("reason", "typo"), ("ticket", "T-42")]

    @pytest.mark.requires("null_delete_plugin")
    def test_null_delete_stores_nulls_in_delete_versions(self, history, conformance_models):
        plugin = plugins_module(history).NullDeletePlugin()
        m = conformance_models(articles, plugins=[plugin])
        article_id = add(m, m.Article(name="a", content="c"))
        with m.session() as session:
            session.delete(session.get(m.Article, article_id))
            session.commit()
        assert pick(versions(m), "id", "name", "content", "operation_type") == [
            (article_id, "a", "c", INSERT),
            (article_id, None, None, DELETE),
        ]
