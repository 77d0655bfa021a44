"""Temporal relationships on version classes (SPEC §4): every relationship kind, both
strategies, answering "as of this version's transaction"; eager loading with selectinload.
"""

from __future__ import annotations

import math

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import joinedload, relationship, selectinload, subqueryload

from conftest import count_statements
from sqlalchemy_history import Operation, version_class

STRATEGIES = ["validity", "subquery"]


@pytest.fixture(params=STRATEGIES)
def strategy(request):
    return request.param


def blog(*parts):
    """Models around a versioned ``Article``, with only the ``parts`` a test needs.

    Parts: "category" (many-to-one, versioned), "author" (many-to-one, not versioned),
    "tags" (many-to-many, versioned), "labels" (many-to-many, not versioned), "comments"
    (one-to-many, plus custom primaryjoin, dynamic and write_only views), "detail"
    (one-to-one). Fewer tables keep the per-test DDL cheap.
    """
    wanted = set(parts)

    def define(Base):
        if "tags" in wanted:
            article_tag = sa.Table(
                "article_tag",
                Base.metadata,
                sa.Column("article_id", sa.Integer, sa.ForeignKey("article.id"), primary_key=True),
                sa.Column("tag_id", sa.Integer, sa.ForeignKey("tag.id"), primary_key=True),
            )
        if "labels" in wanted:
            article_label = sa.Table(
                "article_label",
                Base.metadata,
                sa.Column("article_id", sa.Integer, sa.ForeignKey("article.id"), primary_key=True),
                sa.Column("label_id", sa.Integer, sa.ForeignKey("label.id"), primary_key=True),
            )

            class Label(Base):
                # Not versioned.
                __tablename__ = "label"
                id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
                name = sa.Column(sa.Unicode(100))

        if "author" in wanted:

            class Author(Base):
                # Not versioned.
                __tablename__ = "author"
                id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
                name = sa.Column(sa.Unicode(100))

        if "category" in wanted:

            class Category(Base):
                __versioned__ = {}
                __tablename__ = "category"
                id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
                name = sa.Column(sa.Unicode(100))
                articles = relationship("Article", back_populates="category")

        class Article(Base):
            __versioned__ = {}
            __tablename__ = "article"
            id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
            name = sa.Column(sa.Unicode(100))
            if "category" in wanted:
                category_id = sa.Column(sa.Integer, sa.ForeignKey("category.id"))
                category = relationship("Category", back_populates="articles")
            if "author" in wanted:
                author_id = sa.Column(sa.Integer, sa.ForeignKey("author.id"))
                author = relationship("Author")
            if "tags" in wanted:
                tags = relationship("Tag", secondary=article_tag, back_populates="articles")
            if "labels" in wanted:
                labels = relationship("Label", secondary=article_label)
            if "comments" in wanted:
                comments = relationship(
                    "Comment", back_populates="article", cascade="all, delete-orphan"
                )
                published_comments = relationship(
                    "Comment",
                    primaryjoin="and_(Article.id == foreign(Comment.article_id), "
                    "Comment.published == True)",
                    viewonly=True,
                )
                comment_query = relationship("Comment", lazy="dynamic", viewonly=True)
                comment_list = relationship("Comment", lazy="write_only", viewonly=True)
            if "detail" in wanted:
                detail = relationship(
                    "Detail", uselist=False, back_populates="article", cascade="all, delete-orphan"
                )

        if "tags" in wanted:

            class Tag(Base):
                __versioned__ = {}
                __tablename__ = "tag"
                id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
                name = sa.Column(sa.Unicode(100))
                articles = relationship(Article, secondary=article_tag, back_populates="tags")

        if "comments" in wanted:

            class Comment(Base):
                __versioned__ = {}
                __tablename__ = "comment"
                id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
                body = sa.Column(sa.Unicode(100))
                published = sa.Column(sa.Boolean, default=False)
                article_id = sa.Column(sa.Integer, sa.ForeignKey("article.id"))
                article = relationship(Article, back_populates="comments")

        if "detail" in wanted:

            class Detail(Base):
                __versioned__ = {}
                __tablename__ = "detail"
                id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
                text = sa.Column(sa.Unicode(100))
                article_id = sa.Column(sa.Integer, sa.ForeignKey("article.id"), unique=True)
                article = relationship(Article, back_populates="detail")

        return locals()

    return define


def history(session, cls, obj_id):
    """Return the versions of one object, oldest first, loaded in ``session``."""
    V = version_class(cls)
    return session.scalars(sa.select(V).where(V.id == obj_id).order_by(V.transaction_id)).all()


def names(items, attr="name"):
    return sorted(getattr(i, attr) for i in items)


# -- many-to-one -------------------------------------------------------------------


def test_many_to_one_as_of_each_version(versioned, strategy):
    v = versioned(blog("category"), options={"strategy": strategy})
    CV = version_class(v.Category)
    with v.session() as session:
        tech = v.Category(name="Tech")
        article = v.Article(name="a1", category=tech)
        session.add(article)
        session.commit()  # tx1
        # Several flushes in one transaction: the final value is what the version sees.
        tech.name = "Tech!"
        session.flush()
        tech.name = "Science"
        article.name = "a2"
        session.commit()  # tx2
        other = v.Category(name="Other")
        article.category = other
        article.name = "a3"
        session.commit()  # tx3
        session.delete(tech)
        session.commit()  # tx4: the first category is gone
        other.name = "Other renamed"
        session.commit()  # tx5: a later rename, the article untouched
        article.category = None
        article.name = "a4"
        session.commit()  # tx6
        article_id, tech_id = article.id, tech.id

    with v.session() as session:
        versions = history(session, v.Article, article_id)
        assert [x.name for x in versions] == ["a1", "a2", "a3", "a4"]
        assert isinstance(versions[0].category, CV)
        assert versions[0].category.id == tech_id
        assert versions[0].category.name == "Tech"
        assert versions[1].category.name == "Science"
        assert versions[2].category.name == "Other"
        assert versions[3].category is None

        # The reverse side (one-to-many) of the category's own versions.
        tech_versions = history(session, v.Category, tech_id)
        assert [x.operation_type for x in tech_versions] == [
            Operation.INSERT,
            Operation.UPDATE,
            Operation.DELETE,
        ]
        assert [a.name for a in tech_versions[0].articles] == ["a1"]
        assert [a.name for a in tech_versions[1].articles] == ["a2"]
        assert tech_versions[2].articles == []


# -- one-to-many -------------------------------------------------------------------


def test_one_to_many_as_of_each_version(versioned, strategy):
    v = versioned(blog("comments"), options={"strategy": strategy})
    with v.session() as session:
        one = v.Comment(body="one")
        article = v.Article(name="a1", comments=[one])
        other = v.Article(name="other")
        session.add_all([article, other])
        session.commit()  # tx1
        two = v.Comment(body="two", article=article)
        session.add(two)
        session.commit()  # tx2: a comment created later, the article untouched
        one.body = "one!"
        article.name = "a2"
        session.commit()  # tx3: the change of the same transaction is visible
        session.delete(one)
        article.name = "a3"
        session.commit()  # tx4: the comment deleted in that transaction is gone
        two.article = other
        article.name = "a4"
        session.commit()  # tx5: the last comment moved away
        article_id = article.id

    with v.session() as session:
        versions = history(session, v.Article, article_id)
        assert [x.name for x in versions] == ["a1", "a2", "a3", "a4"]
        assert names(versions[0].comments, "body") == ["one"]
        assert names(versions[1].comments, "body") == ["one!", "two"]
        assert names(versions[2].comments, "body") == ["two"]
        assert versions[3].comments == []
        assert all(isinstance(c, version_class(v.Comment)) for c in versions[1].comments)
        # The child side: many-to-one back to the article as it was.
        comment_versions = history(session, v.Comment, versions[1].comments[0].id)
        assert comment_versions[0].article.name == "a1"


# -- one-to-one --------------------------------------------------------------------


def test_one_to_one_as_of_each_version(versioned, strategy):
    v = versioned(blog("detail"), options={"strategy": strategy})
    with v.session() as session:
        article = v.Article(name="a1", detail=v.Detail(text="d1"))
        session.add(article)
        session.commit()  # tx1
        article.detail.text = "d2"
        article.name = "a2"
        session.commit()  # tx2
        session.delete(article.detail)
        article.name = "a3"
        session.commit()  # tx3
        article.detail = v.Detail(text="d4")
        session.commit()  # tx4: the article's columns unchanged, no article version
        article.name = "a5"
        session.commit()  # tx5
        article_id = article.id

    with v.session() as session:
        versions = history(session, v.Article, article_id)
        assert [x.name for x in versions] == ["a1", "a2", "a3", "a5"]
        assert isinstance(versions[0].detail, version_class(v.Detail))
        assert versions[0].detail.text == "d1"
        assert versions[1].detail.text == "d2"
        assert versions[2].detail is None
        assert versions[3].detail.text == "d4"
        detail_versions = history(session, v.Detail, versions[3].detail.id)
        assert detail_versions[-1].article.name == "a3"


# -- many-to-many ------------------------------------------------------------------


def test_many_to_many_follows_association_history(versioned, strategy):
    v = versioned(blog("tags"), options={"strategy": strategy})
    TV = version_class(v.Tag)
    with v.session() as session:
        t1, t2, t3 = v.Tag(name="t1"), v.Tag(name="t2"), v.Tag(name="t3")
        article = v.Article(name="a1", tags=[t1, t2])
        session.add_all([article, t3])
        session.commit()  # tx1
        article.tags.remove(t1)
        article.tags.append(t3)
        article.name = "a2"
        session.commit()  # tx2
        t2.name = "t2 renamed"
        session.commit()  # tx3: the article untouched
        session.delete(t3)
        article.name = "a3"
        session.commit()  # tx4: deleting a tag removes its link
        article.tags = []
        t1.articles.append(article)  # from the other side
        article.name = "a4"
        session.commit()  # tx5
        article_id, t2_id = article.id, t2.id

    with v.session() as session:
        versions = history(session, v.Article, article_id)
        assert [x.name for x in versions] == ["a1", "a2", "a3", "a4"]
        assert all(isinstance(t, TV) for t in versions[0].tags)
        assert names(versions[0].tags) == ["t1", "t2"]
        # t2's later rename is not seen by the version of tx2.
        assert names(versions[1].tags) == ["t2", "t3"]
        assert names(versions[2].tags) == ["t2 renamed"]
        assert names(versions[3].tags) == ["t1"]

        t2_versions = history(session, v.Tag, t2_id)
        assert [x.name for x in t2_versions] == ["t2", "t2 renamed"]
        assert names(t2_versions[0].articles) == ["a1"]
        # At tx3 the article's valid version is the one of tx2.
        assert names(t2_versions[1].articles) == ["a2"]


def test_many_to_many_link_changes_in_same_transaction(versioned, strategy):
    v = versioned(blog("tags"), options={"strategy": strategy})
    with v.session() as session:
        t1, t2 = v.Tag(name="t1"), v.Tag(name="t2")
        article = v.Article(name="a1", tags=[t1])
        session.add_all([article, t2])
        session.commit()  # tx1
        article.tags.append(t2)
        session.flush()
        article.tags.remove(t1)
        session.flush()
        t2.name = "t2 new"
        article.name = "a2"
        session.commit()  # tx2, three flushes
        article_id = article.id

    with v.session() as session:
        first, second = history(session, v.Article, article_id)
        assert names(first.tags) == ["t1"]
        assert names(second.tags) == ["t2 new"]


# -- self-referential --------------------------------------------------------------


def tree_models(Base):
    class Node(Base):
        __versioned__ = {}
        __tablename__ = "node"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(100))
        parent_id = sa.Column(sa.Integer, sa.ForeignKey("node.id"))
        parent = relationship("Node", remote_side=[id], back_populates="children")
        children = relationship("Node", back_populates="parent")

    return locals()


def test_self_referential_tree(versioned, strategy):
    v = versioned(tree_models, options={"strategy": strategy})
    NV = version_class(v.Node)
    with v.session() as session:
        root = v.Node(name="root")
        child1 = v.Node(name="child1", parent=root)
        session.add(root)
        session.commit()  # tx1
        child2 = v.Node(name="child2", parent=root)
        session.add(child2)
        root.name = "root2"
        session.commit()  # tx2
        child1.parent = child2
        child1.name = "child1 moved"
        child2.name = "child2b"
        session.commit()  # tx3
        root.name = "root3"
        session.commit()  # tx4
        ids = root.id, child1.id, child2.id

    with v.session() as session:
        root_v = history(session, v.Node, ids[0])
        child1_v = history(session, v.Node, ids[1])
        child2_v = history(session, v.Node, ids[2])
        assert [x.name for x in root_v] == ["root", "root2", "root3"]
        assert names(root_v[0].children) == ["child1"]
        assert names(root_v[1].children) == ["child1", "child2"]
        assert names(root_v[2].children) == ["child2b"]
        assert root_v[0].parent is None
        assert isinstance(child1_v[0].parent, NV)
        assert child1_v[0].parent.name == "root"
        assert child1_v[1].parent.name == "child2b"
        assert child2_v[0].children == []
        assert names(child2_v[1].children) == ["child1 moved"]
        assert child2_v[1].parent.name == "root2"


# -- custom primaryjoin, dynamic, write_only ---------------------------------------


def test_custom_primaryjoin(versioned, strategy):
    v = versioned(blog("comments"), options={"strategy": strategy})
    with v.session() as session:
        c1 = v.Comment(body="c1", published=True)
        c2 = v.Comment(body="c2", published=False)
        article = v.Article(name="a1", comments=[c1, c2])
        session.add(article)
        session.commit()  # tx1
        c2.published = True
        article.name = "a2"
        session.commit()  # tx2
        c1.published = False
        article.name = "a3"
        session.commit()  # tx3
        c2.published = False
        session.commit()  # tx4: the article untouched
        article_id = article.id

    with v.session() as session:
        versions = history(session, v.Article, article_id)
        assert names(versions[0].published_comments, "body") == ["c1"]
        assert names(versions[1].published_comments, "body") == ["c1", "c2"]
        assert names(versions[2].published_comments, "body") == ["c2"]
        # The plain relationship still holds both.
        assert names(versions[2].comments, "body") == ["c1", "c2"]


def comment_history(v, session):
    """tx1: article + c1; tx2: c2 added (article untouched); tx3: c1 deleted, rename."""
    c1 = v.Comment(body="c1")
    article = v.Article(name="a1", comments=[c1])
    session.add(article)
    session.commit()
    session.add(v.Comment(body="c2", article=article))
    session.commit()
    session.delete(c1)
    article.name = "a2"
    session.commit()
    return article.id


def test_dynamic_and_write_only_relationships(versioned, strategy):
    v = versioned(blog("comments"), options={"strategy": strategy})
    CV = version_class(v.Comment)
    with v.session() as session:
        article_id = comment_history(v, session)

    with v.session() as session:
        first, second = history(session, v.Article, article_id)
        # lazy="dynamic": the version side is a query.
        query = first.comment_query
        assert not isinstance(query, list)
        assert query.count() == 1
        assert [c.body for c in query.all()] == ["c1"]
        assert all(isinstance(c, CV) for c in query)
        assert [c.body for c in second.comment_query] == ["c2"]
        assert second.comment_query.filter(CV.body == "c1").count() == 0
        assert second.comment_query.filter(CV.body == "c2").count() == 1
        # lazy="write_only": the version side has .select().
        rows = session.scalars(first.comment_list.select()).all()
        assert [c.body for c in rows] == ["c1"]
        assert all(isinstance(c, CV) for c in rows)
        rows = session.scalars(second.comment_list.select().where(CV.body == "c2")).all()
        assert [c.body for c in rows] == ["c2"]
        assert session.scalars(second.comment_list.select().where(CV.body == "c1")).all() == []


# -- non-versioned targets ---------------------------------------------------------


def test_non_versioned_targets_are_live_objects(versioned, strategy):
    v = versioned(blog("author", "labels"), options={"strategy": strategy})
    assert v.Author not in v.manager.version_class_map
    assert "article_label_version" in v.metadata.tables
    with v.session() as session:
        ann, bob = v.Author(name="Ann"), v.Author(name="Bob")
        l1, l2 = v.Label(name="l1"), v.Label(name="l2")
        article = v.Article(name="a1", author=ann, labels=[l1])
        session.add_all([article, bob, l2])
        session.commit()  # tx1
        article.author = bob
        article.labels = [l2]
        article.name = "a2"
        session.commit()  # tx2
        ann.name = "Ann renamed"  # live objects show their current state
        session.commit()
        article.labels.append(l1)
        article.name = "a3"
        session.commit()  # tx4
        article_id = article.id

    with v.session() as session:
        versions = history(session, v.Article, article_id)
        assert isinstance(versions[0].author, v.Author)
        assert versions[0].author.name == "Ann renamed"
        assert versions[1].author.name == "Bob"
        # Many-to-many to a non-versioned class: still through the association history.
        assert all(isinstance(label, v.Label) for label in versions[0].labels)
        assert names(versions[0].labels) == ["l1"]
        assert names(versions[1].labels) == ["l2"]
        assert names(versions[2].labels) == ["l1", "l2"]


# -- inheritance -------------------------------------------------------------------


def inheritance_models(Base):
    class Section(Base):
        __versioned__ = {}
        __tablename__ = "section"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(100))
        items = relationship("TextItem", back_populates="section")

    class TextItem(Base):
        __versioned__ = {}
        __tablename__ = "text_item"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        kind = sa.Column(sa.Unicode(20))
        section_id = sa.Column(sa.Integer, sa.ForeignKey("section.id"))
        section = relationship(Section, back_populates="items")
        __mapper_args__ = {"polymorphic_on": kind, "polymorphic_identity": "text"}

    class Article(TextItem):
        __tablename__ = "article"
        id = sa.Column(sa.Integer, sa.ForeignKey("text_item.id"), primary_key=True)
        title = sa.Column(sa.Unicode(100))
        reviews = relationship("Review", back_populates="article")
        __mapper_args__ = {"polymorphic_identity": "article"}

    class Review(Base):
        __versioned__ = {}
        __tablename__ = "review"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        stars = sa.Column(sa.Integer)
        article_id = sa.Column(sa.Integer, sa.ForeignKey("article.id"))
        article = relationship(Article, back_populates="reviews")

    return locals()


def test_relationships_across_joined_inheritance(versioned, strategy):
    v = versioned(inheritance_models, options={"strategy": strategy})
    AV, SV = version_class(v.Article), version_class(v.Section)
    with v.session() as session:
        news, sport = v.Section(name="news"), v.Section(name="sport")
        article = v.Article(title="t1", section=news)
        review = v.Review(stars=3, article=article)
        plain = v.TextItem(section=news)
        session.add_all([article, review, plain, sport])
        session.commit()  # tx1
        article.section = sport
        article.title = "t2"
        news.name = "news2"
        session.commit()  # tx2
        session.delete(plain)
        review.stars = 5
        article.title = "t3"
        session.commit()  # tx3
        article_id, review_id, news_id = article.id, review.id, news.id

    with v.session() as session:
        versions = history(session, v.Article, article_id)
        assert all(isinstance(x, AV) for x in versions)
        # A relationship defined on the base class, read from the subclass's versions.
        assert isinstance(versions[0].section, SV)
        assert [x.section.name for x in versions] == ["news", "sport", "sport"]
        # One-to-many defined on the subclass.
        assert [[r.stars for r in x.reviews] for x in versions] == [[3], [3], [5]]
        # Target is the subclass: the article version valid then, with its subclass columns.
        review_versions = history(session, v.Review, review_id)
        assert isinstance(review_versions[0].article, AV)
        assert [r.article.title for r in review_versions] == ["t1", "t3"]
        # One-to-many to the base class returns polymorphic versions.
        news_versions = history(session, v.Section, news_id)
        first_items = news_versions[0].items
        assert sorted(type(i).__name__ for i in first_items) == sorted(
            [AV.__name__, version_class(v.TextItem).__name__]
        )
        assert [type(i) for i in news_versions[1].items] == [version_class(v.TextItem)]


# -- eager loading -----------------------------------------------------------------


def snapshot(versions):
    return [
        (
            x.name,
            x.category.name if x.category is not None else None,
            names(x.tags),
            names(x.comments, "body"),
        )
        for x in versions
    ]


@pytest.mark.parametrize(
    ("loader", "queries"),
    [
        # selectinload sends the parent keys in IN lists of 500 (SQLAlchemy's batch size)
        (selectinload, 1 + math.ceil(2000 / 500)),
        (subqueryload, 2),
        (joinedload, 1),
    ],
    ids=["selectinload", "subqueryload", "joinedload"],
)
def test_a_page_of_2000_versions_loads_its_links_in_few_queries(versioned, loader, queries):
    v = versioned(blog("tags"))
    AV = version_class(v.Article)
    with v.session() as session:
        tags = [v.Tag(name=f"t{i}") for i in range(10)]
        articles = [v.Article(name=f"a{i}", tags=[tags[i % 10]]) for i in range(1000)]
        session.add_all(articles)
        session.commit()
        for i, article in enumerate(articles):
            article.name = f"b{i}"
            article.tags.append(tags[(i + 1) % 10])
        session.commit()
    statement = sa.select(AV).order_by(AV.id, AV.transaction_id)
    with v.session() as session, count_statements(v.engine) as counter:
        page = session.scalars(statement.options(loader(AV.tags))).unique().all()
        loaded = [(x.name, sorted(t.name for t in x.tags)) for x in page]
    assert len(page) == 2000
    assert counter.count == queries, counter.statements
    with v.session() as session:  # the truth, lazily: every 97th version
        lazy = [
            (x.name, sorted(t.name for t in x.tags)) for x in session.scalars(statement).all()[::97]
        ]
    assert loaded[::97] == lazy
    assert loaded[0] == ("a0", ["t0"]) and loaded[1] == ("b0", ["t0", "t1"])


def test_selectinload_costs_constant_queries_and_matches_lazy_loading(versioned, strategy):
    v = versioned(blog("category", "tags", "comments"), options={"strategy": strategy})
    AV = version_class(v.Article)
    count = 100
    # expire_on_commit=False: the second transaction needs no lazy loads to set up.
    with v.session(expire_on_commit=False) as session:
        categories = [v.Category(name=f"c{i}") for i in range(5)]
        tags = [v.Tag(name=f"t{i}") for i in range(6)]
        articles = [
            v.Article(
                name=f"a{i}",
                category=categories[i % 5],
                tags=[tags[i % 6], tags[(i + 1) % 6]],
                comments=[v.Comment(body=f"c{i}")],
            )
            for i in range(count)
        ]
        session.add_all(articles)
        session.commit()  # tx1: 100 versions
        for i, article in enumerate(articles):
            article.name = f"b{i}"
            article.category = categories[(i + 1) % 5]
            article.tags.remove(tags[i % 6])
            article.comments.append(v.Comment(body=f"d{i}"))
        categories[0].name = "renamed"
        session.commit()  # tx2: 100 more

    statement = sa.select(AV).order_by(AV.id, AV.transaction_id)
    with v.session() as session:
        with count_statements(v.engine) as counter:
            eager = session.scalars(
                statement.options(
                    selectinload(AV.tags), selectinload(AV.category), selectinload(AV.comments)
                )
            ).all()
            eager_snapshot = snapshot(eager)
        assert len(eager) == 2 * count
        assert counter.count == 1 + 3, counter.statements

    with v.session() as session:
        # Lazy loading costs three queries per version: compare every seventh one.
        sample = session.scalars(statement).all()[::7]
        lazy_snapshot = snapshot(sample)
    assert len(lazy_snapshot) == len(range(0, 2 * count, 7))
    assert eager_snapshot[::7] == lazy_snapshot
    # Spot-check against what was written, so both loaders are held to the truth.
    by_name = {entry[0]: entry for entry in eager_snapshot}
    assert len(by_name) == 2 * count
    assert by_name["a0"] == ("a0", "c0", ["t0", "t1"], ["c0"])
    assert by_name["b0"] == ("b0", "c1", ["t1"], ["c0", "d0"])
    assert by_name["a4"] == ("a4", "c4", ["t4", "t5"], ["c4"])
    assert by_name["b4"] == ("b4", "renamed", ["t5"], ["c4", "d4"])
