"""Quick start: record, read and revert history on in-memory SQLite.

Run it with ``python examples/quickstart.py`` (or ``python3 -m nox -s demo``).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Session, configure_mappers, relationship

from sqlalchemy_history import make_versioned, version_class

make_versioned(user_cls=None)


class Base(DeclarativeBase):
    pass


article_tag = sa.Table(
    "article_tag",
    Base.metadata,
    sa.Column("article_id", sa.ForeignKey("article.id"), primary_key=True),
    sa.Column("tag_id", sa.ForeignKey("tag.id"), primary_key=True),
)


class Category(Base):
    __versioned__ = {}
    __tablename__ = "category"
    id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
    name = sa.Column(sa.Unicode(255))


class Article(Base):
    __versioned__ = {}
    __tablename__ = "article"
    id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
    name = sa.Column(sa.Unicode(255))
    content = sa.Column(sa.UnicodeText)
    category_id = sa.Column(sa.ForeignKey("category.id"))
    category = relationship(Category)
    tags = relationship("Tag", secondary=article_tag)


class Tag(Base):
    __versioned__ = {}
    __tablename__ = "tag"
    id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
    name = sa.Column(sa.Unicode(255))


configure_mappers()
engine = sa.create_engine("sqlite://")
Base.metadata.create_all(engine)

with Session(engine) as session:
    # The seed example: one object, its versions, a changeset, a revert.
    article = Article(name="Some article", content="Some content")
    session.add(article)
    session.commit()
    print("versions[0].name:", article.versions[0].name)  # 'Some article'

    article.name = "Updated name"
    session.commit()
    print("versions[1].name:", article.versions[1].name)  # 'Updated name'
    print("versions[1].changeset:", article.versions[1].changeset)
    # {'name': ['Some article', 'Updated name']}

    article.versions[0].revert()
    session.commit()
    print("after revert:", article.name)  # 'Some article'
    print("operation types:", [v.operation_type for v in article.versions])  # [0, 1, 1]

    # Relationships as they were: a category and tags, changed over time.
    news = Category(name="News")
    python = Tag(name="python")
    article.category = news
    article.tags.append(python)
    session.commit()
    tagged = article.versions[3]  # the version written with the category and the tag

    news.name = "World news"
    article.tags = [Tag(name="sqlalchemy")]
    article.content = "Rewritten"
    session.commit()
    print("category then / now:", tagged.category.name, "/", article.category.name)
    # 'News' / 'World news'
    print("tags then / now:", [t.name for t in tagged.tags], "/", [t.name for t in article.tags])
    # ['python'] / ['sqlalchemy']

    # Revert the article and the named relationships to that version.
    tagged.revert(relations=["category", "tags"])
    session.commit()
    print(
        "after revert with relations:",
        article.content,
        article.category.name,
        [t.name for t in article.tags],
    )
    # 'Some content' 'News' ['python']

    # History is plain SQLAlchemy: select version classes like any model.
    ArticleVersion = version_class(Article)
    count = session.scalar(sa.select(sa.func.count()).select_from(ArticleVersion))
    print("article versions stored:", count)  # 6
