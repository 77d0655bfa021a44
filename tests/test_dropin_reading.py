"""Drop-in, reading history: version objects behave as SQLAlchemy-History 2.2.1 users expect.

A changeset with no predecessor, ``lazy="dynamic"`` relationships, self-referential
many-to-many relationships, hybrid properties and association proxies on version classes,
excluded columns used by relationships, and the exception async code gets when it forgets
``await``. Each test runs on every configured database.
"""

from __future__ import annotations

import asyncio
import gc
import warnings

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.associationproxy import association_proxy
from sqlalchemy.ext.hybrid import hybrid_method, hybrid_property
from sqlalchemy.orm import backref, configure_mappers, declarative_base, relationship, selectinload

from sqlalchemy_history import make_versioned, remove_versioning, version_class
from sqlalchemy_history.relationships import RelationshipWarning


def article_tag_table(Base):
    return sa.Table(
        "article_tag",
        Base.metadata,
        sa.Column("article_id", sa.Integer, sa.ForeignKey("article.id"), primary_key=True),
        sa.Column("tag_id", sa.Integer, sa.ForeignKey("tag.id"), primary_key=True),
    )


def tag_model(Base):
    return type(
        "Tag",
        (Base,),
        {
            "__tablename__": "tag",
            "__versioned__": {},
            "id": sa.Column(sa.Integer, primary_key=True, autoincrement=True),
            "name": sa.Column(sa.Unicode(50)),
        },
    )


def blog(Base):
    article_tag = article_tag_table(Base)
    Tag = tag_model(Base)
    article_reference = sa.Table(
        "article_reference",
        Base.metadata,
        sa.Column("citing_id", sa.Integer, sa.ForeignKey("article.id"), primary_key=True),
        sa.Column("cited_id", sa.Integer, sa.ForeignKey("article.id"), primary_key=True),
    )

    class Category(Base):
        __tablename__ = "category"
        __versioned__ = {}
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(50))

    class Article(Base):
        __tablename__ = "article"
        __versioned__ = {}
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(50))
        category_id = sa.Column(sa.Integer, sa.ForeignKey(Category.id))
        category = relationship(Category, backref=backref("articles", lazy="dynamic"))
        comments = relationship("Comment", lazy="dynamic", order_by="Comment.id")
        tags = relationship(Tag, secondary=article_tag, order_by=Tag.id)
        tag_names = association_proxy("tags", "name")
        references = relationship(
            "Article",
            secondary=article_reference,
            primaryjoin=id == article_reference.c.citing_id,
            secondaryjoin=id == article_reference.c.cited_id,
            order_by=id,
            backref=backref("cited_by", order_by=id),
        )

        @hybrid_property
        def shout(self):
            return self.name.upper()

        @shout.inplace.expression
        @classmethod
        def _shout_expression(cls):
            return sa.func.upper(cls.name)

        @hybrid_method
        def named(self, prefix):
            return self.name.startswith(prefix)

        @named.inplace.expression
        @classmethod
        def _named_expression(cls, prefix):
            return cls.name.startswith(prefix)

    class Comment(Base):
        __tablename__ = "comment"
        __versioned__ = {}
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        article_id = sa.Column(sa.Integer, sa.ForeignKey(Article.id))
        text = sa.Column(sa.Unicode(50))

    return locals()


def test_changeset_of_a_version_without_predecessor(versioned):
    """History that starts with an UPDATE (rows written before versioning was on)."""
    v = versioned(blog)
    with v.session() as session:
        article = v.Article(name="a")
        session.add(article)
        session.commit()
        session.execute(v.metadata.tables["article_version"].delete())
        session.commit()
        article.name = "b"
        session.commit()
        (version,) = article.versions.all()
        assert version.operation_type == 1
        assert version.previous is None
        assert version.changeset == {"id": [None, article.id], "name": [None, "b"]}


def test_dynamic_relationships_stay_dynamic(versioned):
    v = versioned(blog)
    with v.session() as session:
        category = v.Category(name="c")
        article = v.Article(name="a", category=category, comments=[v.Comment(text="x")])
        session.add(article)
        session.commit()
        with warnings.catch_warnings():
            # SQLAlchemy 2.x marks lazy="dynamic" legacy; the reference shows the warning too.
            warnings.simplefilter("ignore", sa.exc.SADeprecationWarning)
            articles = category.versions[0].articles
            comments = article.versions[0].comments
        for query, expected in ((articles, ["a"]), (comments, ["x"])):
            assert isinstance(query, sa.orm.Query)
            assert [getattr(x, "name", None) or x.text for x in query] == expected
            assert query.count() == 1
        article.comments.append(v.Comment(text="y"))
        article.name = "b"  # a child alone writes no version of its parent, as in 2.2.1
        session.commit()
        assert [c.text for c in article.versions[0].comments] == ["x"]
        assert [c.text for c in article.versions[1].comments] == ["x", "y"]


def test_self_referential_many_to_many(versioned):
    v = versioned(blog)
    ArticleVersion = version_class(v.Article)
    with v.session() as session:
        a, b, c = v.Article(name="a"), v.Article(name="b"), v.Article(name="c")
        a.references = [b, c]
        session.add_all([a, b, c])
        session.commit()
        a.references.remove(c)
        a.name = "a2"  # a link alone writes no version of its parent, as in 2.2.1
        session.commit()
        first, second = a.versions.all()
        assert [x.name for x in first.references] == ["b", "c"]
        assert [x.name for x in second.references] == ["b"]
        assert [x.name for x in b.versions[0].cited_by] == ["a"]
        # c's only version predates the unlinking; as of that version it is still cited
        assert [x.name for x in c.versions[0].cited_by] == ["a"]
        loaded = session.scalars(
            sa.select(ArticleVersion)
            .where(ArticleVersion.id == a.id)
            .order_by(ArticleVersion.transaction_id)
            .options(selectinload(ArticleVersion.references))
            .execution_options(populate_existing=True)
        ).all()
        assert [[x.name for x in version.references] for version in loaded] == [["b", "c"], ["b"]]


def test_hybrids_and_association_proxies_on_version_classes(versioned):
    v = versioned(blog)
    ArticleVersion = version_class(v.Article)
    with v.session() as session:
        article = v.Article(name="abc", tags=[v.Tag(name="t1"), v.Tag(name="t2")])
        session.add(article)
        session.commit()
        article.name = "xyz"
        article.tags.pop()
        session.commit()
        first, second = article.versions.all()
        assert (first.shout, second.shout) == ("ABC", "XYZ")
        assert first.named("ab") and not second.named("ab")
        assert list(first.tag_names) == ["t1", "t2"]
        assert list(second.tag_names) == ["t1"]
        by_sql = session.scalars(
            sa.select(ArticleVersion.name).where(
                ArticleVersion.shout == "XYZ", ArticleVersion.named("x")
            )
        ).all()
        assert by_sql == ["xyz"]
        with_t2 = session.scalars(
            sa.select(ArticleVersion.name).where(ArticleVersion.tag_names.contains("t2"))
        ).all()
        assert with_t2 == ["abc"]


def excluded(Base):
    class Category(Base):
        __tablename__ = "category"
        __versioned__ = {}
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(50))

    class Article(Base):
        __tablename__ = "article"
        __versioned__ = {"exclude": ["category_id"]}
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(50))
        category_id = sa.Column(sa.Integer, sa.ForeignKey(Category.id))
        category = relationship(Category, backref="articles")

    return locals()


def test_excluded_column_stays_off_even_when_a_relationship_uses_it(versioned):
    with pytest.warns(RelationshipWarning, match="category_id is not versioned"):
        v = versioned(excluded)
    ArticleVersion = version_class(v.Article)
    assert "category_id" not in v.metadata.tables["article_version"].c
    assert not hasattr(ArticleVersion, "category_id")
    assert not hasattr(ArticleVersion, "category")
    assert not hasattr(version_class(v.Category), "articles")
    with v.session() as session:
        article = v.Article(name="a", category=v.Category(name="c"))
        session.add(article)
        session.commit()
        article.category = v.Category(name="d")
        session.commit()
        assert article.versions.count() == 1  # only the excluded column changed


def test_excluded_relationship_name_writes_no_link_history(versioned):
    def define_excluded(Base):
        article_tag = article_tag_table(Base)
        Tag = tag_model(Base)

        class Article(Base):
            __tablename__ = "article"
            __versioned__ = {"exclude": ["tags"]}
            id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
            tags = relationship(Tag, secondary=article_tag)

        return locals()

    with warnings.catch_warnings():
        warnings.simplefilter("error", RelationshipWarning)
        v = versioned(define_excluded)
    assert "article_tag_version" not in v.metadata.tables
    assert not hasattr(version_class(v.Article), "tags")


# -- async misuse -------------------------------------------------------------------------


def test_sync_traversal_in_async_code_raises_missing_greenlet_and_leaves_no_coroutine(tmp_path):
    """The check runs before any I/O, so one async driver (aiosqlite) shows it for all."""
    pytest.importorskip("aiosqlite")

    make_versioned(user_cls=None)
    Base = declarative_base()
    try:
        models = blog(Base)
        configure_mappers()
        errors, never_awaited = _misuse(models, tmp_path)
    finally:
        remove_versioning()
        Base.registry.dispose()
    messages = [str(e) for e in errors]
    assert "await version.aprevious" in messages[0]
    assert "await version.anext" in messages[1]
    assert "await version.arevert" in messages[4]
    assert never_awaited == []


def _misuse(models, tmp_path):
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    Article = models["Article"]
    ArticleVersion = version_class(Article)
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'async.db'}")

    async def scenario() -> list[BaseException]:
        async with engine.begin() as conn:
            await conn.run_sync(Article.metadata.create_all)
        errors = []
        async with AsyncSession(engine, expire_on_commit=False) as session:
            article = Article(name="a")
            session.add(article)
            await session.commit()
            article.name = "b"
            await session.commit()
            versions = (
                await session.scalars(sa.select(ArticleVersion).order_by(ArticleVersion.name))
            ).all()
            for attempt in (
                lambda: versions[1].previous,
                lambda: versions[0].next,
                lambda: versions[1].index,
                lambda: versions[1].changeset,
                lambda: versions[0].revert(relations=["tags"]),
            ):
                with pytest.raises(sa.exc.MissingGreenlet) as raised:
                    attempt()
                errors.append(raised.value)
            assert (await versions[1].aprevious).name == "a"
        await engine.dispose()
        return errors

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        errors = asyncio.run(scenario())
        gc.collect()
    return errors, [w for w in caught if "was never awaited" in str(w.message)]
