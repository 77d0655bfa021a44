"""Recipe: record who changed what, from where, in a Flask app.

``init_versioning(app, get_user_id)`` opens a ``versioning_context`` for every request,
so every transaction the request commits gets ``transaction.user_id`` and
``transaction.remote_addr`` (plus ``transaction_meta`` pairs when
``TransactionMetaPlugin`` is on). Requests served at the same time (threads, greenlets)
never mix their values: the context lives in a ``ContextVar``.

Run the demo with ``python examples/recipes/flask_app.py`` (needs ``pip install flask``).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from flask import Flask, g, request

from sqlalchemy_history import versioning_context


def init_versioning(
    app: Flask,
    get_user_id: Callable[[], Any],
    with_meta: bool = False,
) -> None:
    """Fill the transaction rows of every request of ``app``.

    :param get_user_id: returns the id of the user making the request (``None`` for
        anonymous requests), e.g. ``lambda: current_user.get_id()`` with Flask-Login.
    :param with_meta: also store the endpoint and the ``X-Request-ID`` header as
        transaction metadata (needs ``TransactionMetaPlugin``).
    """

    @app.before_request
    def enter_versioning_context() -> None:
        meta: Optional[dict[str, Optional[str]]] = None
        if with_meta:
            meta = {"endpoint": request.endpoint, "request_id": request.headers.get("X-Request-ID")}
        context = versioning_context(
            user_id=get_user_id(), remote_addr=request.remote_addr, meta=meta
        )
        context.__enter__()
        g.versioning_context = context

    @app.teardown_request
    def exit_versioning_context(error: Optional[BaseException]) -> None:
        context = g.pop("versioning_context", None)
        if context is not None:
            context.__exit__(None, None, None)


def main() -> None:
    import sqlalchemy as sa
    from sqlalchemy.orm import DeclarativeBase, Session, configure_mappers

    from sqlalchemy_history import make_versioned
    from sqlalchemy_history.plugins import TransactionMetaPlugin

    make_versioned(user_cls="User", plugins=[TransactionMetaPlugin()])

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
    engine = sa.create_engine("sqlite://", poolclass=sa.pool.StaticPool)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(User(id=42))
        session.commit()

    app = Flask(__name__)
    # A real app reads the user from its session or token; the demo trusts a header.
    init_versioning(app, lambda: request.headers.get("X-User-Id", type=int), with_meta=True)

    @app.post("/articles")
    def create_article() -> dict[str, Any]:
        with Session(engine) as session:
            article = Article(name=request.get_json()["name"])
            session.add(article)
            session.commit()
            return {"id": article.id}

    client = app.test_client()
    client.post("/articles", json={"name": "Hello"}, headers={"X-User-Id": "42"})
    with Session(engine) as session:
        version = session.scalars(sa.select(Article)).one().versions[0]
        tx = version.transaction
        print(f"{version.name!r} written by user {tx.user_id} from {tx.remote_addr}")
        print(f"meta: {dict(tx.meta)}")


if __name__ == "__main__":
    main()
