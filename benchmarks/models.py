"""The benchmark models, defined the same way for every implementation.

``build(impl)`` switches versioning on with the implementation's own ``make_versioned``
(none for ``plain``) and declares:

- ``Category`` (validity strategy) with a one-to-many ``articles`` (``passive_deletes``:
  the database deletes a category's articles, ``ON DELETE CASCADE``);
- ``Article`` (validity strategy) with a many-to-one ``category``;
- ``ArticleSub`` (subquery strategy), for the subquery variant of the update workload.

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
    version_class: Optional[Callable[[type], type]]

    @property
    def versioned(self) -> bool:
        return self.library is not None

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

    class ArticleSub(Base):
        __tablename__ = "article_sub"
        __versioned__ = {"strategy": "subquery"}
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.String(100), nullable=False)
        content = sa.Column(sa.Text)

    configure_mappers()
    return Models(
        impl=impl,
        library=library,
        Base=Base,
        Category=Category,
        Article=Article,
        ArticleSub=ArticleSub,
        version_class=library.version_class if library is not None else None,
    )
