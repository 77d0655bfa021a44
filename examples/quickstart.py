"""Quick start: record, read and revert the history of one model on in-memory SQLite.

Run it with ``python examples/quickstart.py``.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Session, configure_mappers

from sqlalchemy_history import make_versioned

make_versioned(user_cls=None)


class Base(DeclarativeBase):
    pass


class Article(Base):
    __versioned__ = {}
    __tablename__ = "article"
    id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
    name = sa.Column(sa.Unicode(255))
    content = sa.Column(sa.UnicodeText)


configure_mappers()
engine = sa.create_engine("sqlite://")
Base.metadata.create_all(engine)

with Session(engine) as session:
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
    print("version count:", article.versions.count())  # 3
    print("operation types:", [v.operation_type for v in article.versions])  # [0, 1, 1]
