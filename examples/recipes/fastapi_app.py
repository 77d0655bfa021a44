"""Recipe: record who changed what, from where, in a FastAPI (or any Starlette/ASGI) app.

``VersioningContextMiddleware`` is a plain ASGI middleware: it opens a
``versioning_context`` around each HTTP request, so every transaction the request
commits gets ``transaction.user_id`` and ``transaction.remote_addr``. It works for
``async def`` endpoints (``AsyncSession``) and for ``def`` endpoints, which Starlette runs
in a thread pool with a copy of the request's context. Concurrent requests never see
each other's values.

Run the demo with ``python examples/recipes/fastapi_app.py`` (needs
``pip install fastapi httpx``).
"""

from __future__ import annotations

from collections.abc import Awaitable, MutableMapping
from typing import Any, Callable, Optional

from sqlalchemy_history import versioning_context

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


def header(scope: Scope, name: str) -> Optional[str]:
    """Return request header ``name`` (lower case) from an ASGI scope."""
    wanted = name.lower().encode("latin-1")
    for key, value in scope.get("headers", []):
        if key == wanted:
            return bytes(value).decode("latin-1")
    return None


class VersioningContextMiddleware:
    """Open a ``versioning_context`` for every HTTP request.

    :param get_user_id: returns the requesting user's id from the ASGI scope (for example
        from ``scope["user"]`` set by an authentication middleware), or ``None``.
    :param with_meta: also store the request path and ``X-Request-ID`` as transaction
        metadata (needs ``TransactionMetaPlugin``).
    """

    def __init__(
        self,
        app: ASGIApp,
        get_user_id: Callable[[Scope], Any],
        with_meta: bool = False,
    ) -> None:
        self.app = app
        self.get_user_id = get_user_id
        self.with_meta = with_meta

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        meta = None
        if self.with_meta:
            meta = {"path": scope.get("path"), "request_id": header(scope, "x-request-id")}
        async with versioning_context(
            user_id=self.get_user_id(scope),
            remote_addr=client[0] if client else None,
            meta=meta,
        ):
            await self.app(scope, receive, send)


def user_id_from_header(scope: Scope) -> Optional[int]:
    """Demo only: trust an ``X-User-Id`` header. Real apps use their authentication."""
    value = header(scope, "x-user-id")
    return int(value) if value else None


def main() -> None:
    import asyncio

    import httpx
    import sqlalchemy as sa
    from fastapi import FastAPI
    from sqlalchemy.orm import DeclarativeBase, Session, configure_mappers

    from sqlalchemy_history import make_versioned

    make_versioned(user_cls="User")

    class Base(DeclarativeBase):
        pass

    class User(Base):
        __tablename__ = "app_user"
        id = sa.Column(sa.Integer, primary_key=True)

    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True)
        name = sa.Column(sa.Unicode(255))

    configure_mappers()
    engine = sa.create_engine(
        "sqlite://", poolclass=sa.pool.StaticPool, connect_args={"check_same_thread": False}
    )
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(User(id=7))
        session.commit()

    app = FastAPI()
    app.add_middleware(VersioningContextMiddleware, get_user_id=user_id_from_header)

    @app.post("/articles")
    def create_article(name: str) -> dict[str, Any]:
        with Session(engine) as session:
            article = Article(name=name)
            session.add(article)
            session.commit()
            return {"id": article.id}

    async def call() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
            await client.post("/articles", params={"name": "Hello"}, headers={"X-User-Id": "7"})

    asyncio.run(call())
    with Session(engine) as session:
        version = session.scalars(sa.select(Article)).one().versions[0]
        tx = version.transaction
        print(f"{version.name!r} written by user {tx.user_id} from {tx.remote_addr}")


if __name__ == "__main__":
    main()
