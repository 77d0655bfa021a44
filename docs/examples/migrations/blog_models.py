"""The models of the worked example, as they stand after the last migration."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase

from sqlalchemy_history import make_versioned

make_versioned(user_cls=None)


class Base(DeclarativeBase):
    pass


class Article(Base):
    __versioned__ = {}
    __tablename__ = "article"
    id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
    title = sa.Column(sa.Unicode(200), nullable=False)
    content = sa.Column(sa.UnicodeText)


class Tag(Base):
    # Existed (unversioned, populated) before migration 0005 switched versioning on.
    __versioned__ = {}
    __tablename__ = "tag"
    id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
    name = sa.Column(sa.Unicode(50), nullable=False)
