"""The benchmark models, defined the same way for every implementation.

``build(impl)`` switches versioning on with the implementation's own ``make_versioned``
(none for ``plain``) and declares:

- ``Category`` (validity strategy) with a one-to-many ``articles`` (``passive_deletes``:
  the database deletes a category's articles, ``ON DELETE CASCADE``);
- ``Article`` (validity strategy) with a many-to-one ``category``;
- ``ArticleSub`` (subquery strategy), for the subquery variant of the update workload;
- ``Tag`` with the many-to-many ``Article.tags`` (table ``article_tag``);
- ``Pair``, keyed by two columns (an integer and a string), with a many-to-many ``tags``
  (table ``pair_tag``, keyed by three), for the scale workloads.

The many-to-many relationships have no backref: the ideal recorder (``ideal.py``) reads
link changes from one side only.

Runs inside the implementation's own virtualenv (see ``worker.py``): the import names of
this project and of the released SQLAlchemy-History are the same.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, configure_mappers, relationship

#: Implementation key -> (import name, human label).
IMPLEMENTATIONS = {
    "plain": (None, "SQLAlchemy, no history"),
    "ours": ("sqlalchemy_history", "sqlalchemy-history (this tree)"),
    "history": ("sqlalchemy_history", "SQLAlchemy-History (PyPI)"),
    "continuum": ("sqlalchemy_continuum", "SQLAlchemy-Continuum (PyPI)"),
    # Plain SQLAlchemy plus benchmarks/ideal.py (runs in the plain virtualenv).
    "ideal": (None, "ideal recorder (lower bound)"),
}


@dataclasses.dataclass
class Models:
    """The mapped classes of one implementation, plus how to find version classes."""

    impl: str
    library: Any
    Base: Any
    Category: Any
    Article: Any
    ArticleSub: Any
    Tag: Any
    Pair: Any
    version_class: Optional[Callable[[type], type]]

    @property
    def versioned(self) -> bool:
        return self.library is not None

    @property
    def closes(self) -> bool:
        """Whether superseded versions get their ``end_transaction_id`` (not the ideal's)."""
        return self.versioned and self.impl != "ideal"

    @property
    def metadata(self) -> sa.MetaData:
        return self.Base.metadata  # type: ignore[no-any-return]


def build(impl: str) -> Models:
    """Switch versioning on for ``impl`` and declare the benchmark models."""
    module_name, _ = IMPLEMENTATIONS[impl]
    library: Any = None
    if module_name is not None:
        library = __import__(module_name)
        library.make_versioned(user_cls=None)
    elif impl == "ideal":
        import ideal

        library = ideal

    class Base(DeclarativeBase):
        pass

    class Category(Base):
        __tablename__ = "category"
        __versioned__ = {}
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.String(100), nullable=False)
        articles = relationship(
            "Article", back_populates="category", order_by="Article.id", passive_deletes=True
        )

    class Article(Base):
        __tablename__ = "article"
        __versioned__ = {}
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.String(100), nullable=False)
        content = sa.Column(sa.Text)
        category_id = sa.Column(
            sa.Integer, sa.ForeignKey("category.id", ondelete="CASCADE"), nullable=True
        )
        category = relationship(Category, back_populates="articles")
        tags = relationship("Tag", secondary="article_tag", order_by="Tag.id")

    class Tag(Base):
        __tablename__ = "tag"
        __versioned__ = {}
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.String(100), nullable=False)

    sa.Table(
        "article_tag",
        Base.metadata,
        sa.Column("article_id", sa.Integer, sa.ForeignKey("article.id"), primary_key=True),
        sa.Column("tag_id", sa.Integer, sa.ForeignKey("tag.id"), primary_key=True),
    )

    class Pair(Base):
        __tablename__ = "pair"
        __versioned__ = {}
        region = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
        code = sa.Column(sa.String(40), primary_key=True)
        name = sa.Column(sa.String(100), nullable=False)
        tags = relationship("Tag", secondary="pair_tag", order_by="Tag.id")

    sa.Table(
        "pair_tag",
        Base.metadata,
        sa.Column("region", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("code", sa.String(40), primary_key=True),
        sa.Column("tag_id", sa.Integer, sa.ForeignKey("tag.id"), primary_key=True),
        sa.ForeignKeyConstraint(["region", "code"], ["pair.region", "pair.code"]),
    )

    class ArticleSub(Base):
        __tablename__ = "article_sub"
        __versioned__ = {"strategy": "subquery"}
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.String(100), nullable=False)
        content = sa.Column(sa.Text)

    configure_mappers()
    if impl == "ideal":
        names = ["category", "article", "article_sub", "tag", "article_tag", "pair", "pair_tag"]
        library.install(Base.metadata, library.version_tables(Base.metadata, names))
    return Models(
        impl=impl,
        library=library,
        Base=Base,
        Category=Category,
        Article=Article,
        ArticleSub=ArticleSub,
        Tag=Tag,
        Pair=Pair,
        version_class=getattr(library, "version_class", None),
    )
