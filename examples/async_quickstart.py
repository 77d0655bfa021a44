"""Async quick start: the seed's async example on aiosqlite, then traversal and revert.

Run it with ``python examples/async_quickstart.py`` (or ``python3 -m nox -s demo``); it
needs ``aiosqlite`` and ``greenlet``. More in docs/async.md.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, configure_mappers

from sqlalchemy_history import make_versioned

make_versioned(user_cls=None, options={"support_async": True})


class Base(DeclarativeBase):
    pass


class Article(Base):
    __versioned__ = {}
    __tablename__ = "article"
    id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
    name = sa.Column(sa.Unicode(255))
    content = sa.Column(sa.UnicodeText)


async def main() -> None:
    configure_mappers()
    engine = create_async_engine("sqlite+aiosqlite://")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)

    Session = async_sessionmaker(engine, expire_on_commit=False)
    async with Session() as session:
        # The seed example: with support_async, `versions` is a write_only relationship.
        article = Article(name="Some article", content="Some content")
        session.add(article)
        await session.commit()
        versions = (await session.scalars(article.versions.select())).all()
        print("versions[0].name:", versions[0].name)  # 'Some article'

        article.name = "Updated name"
        await session.commit()
        versions = (await session.scalars(article.versions.select())).all()
        print("versions[1].name:", versions[1].name)  # 'Updated name'

        versions[0].revert()  # the article is in the session: no query needed
        await session.commit()
        print("after revert:", article.name)  # 'Some article'

        # Traversal and changesets query the database: await their async forms.
        versions = (await session.scalars(article.versions.select())).all()
        last = versions[-1]
        print("index of the last version:", await last.aindex)  # 2
        print("its previous version's name:", (await last.aprevious).name)  # 'Updated name'
        print("its changeset:", await last.achangeset)
        # {'name': ['Updated name', 'Some article']}

        # A deleted object comes back with `await version.arevert()`.
        await session.delete(article)
        await session.commit()
        restored = await versions[1].arevert()
        await session.commit()
        print("restored after delete:", restored.name)  # 'Updated name'
        versions = (await session.scalars(restored.versions.select())).all()
        print("operation types:", [v.operation_type for v in versions])  # [0, 1, 1, 2, 0]

    await engine.dispose()


asyncio.run(main())
