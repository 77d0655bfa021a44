"""The context recipes in examples/recipes: Flask, FastAPI/ASGI and Celery/worker jobs.

Each recipe is tested with its framework (dependency group ``tests-recipes``) on every
database, with concurrent requests or jobs for different users; the demo of each recipe
runs as a script too.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session
from test_context import ASYNC_DRIVERS, concurrent_engine, engine_options, meta_of, transactions

from sqlalchemy_history import versioning_context
from sqlalchemy_history.plugins import TransactionMetaPlugin

RECIPES = Path(__file__).resolve().parent.parent / "examples" / "recipes"
sys.path.insert(0, str(RECIPES))

USERS = 4


def models(Base):
    class User(Base):
        __tablename__ = "app_user"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)

    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(255))

    return locals()


@pytest.fixture
def v(versioned):
    v = versioned(models, user_cls="User", plugins=[TransactionMetaPlugin()])
    with v.session() as session:
        session.add_all([v.User(id=n) for n in range(1, USERS + 1)])
        session.commit()
    return v


def written_by(v) -> dict[str, tuple]:
    """Map each article name to (user_id, remote_addr, meta) of the transaction that wrote it."""
    rows, meta = transactions(v), meta_of(v)
    return {
        r["name"]: (
            rows[r["transaction_id"]]["user_id"],
            rows[r["transaction_id"]]["remote_addr"],
            meta.get(r["transaction_id"], {}),
        )
        for r in v.rows("article_version")
    }


# -- Flask -----------------------------------------------------------------------------------


def test_flask_requests_in_threads(v):
    flask = pytest.importorskip("flask")
    from flask_app import init_versioning

    engine = concurrent_engine(v)
    app = flask.Flask(__name__)
    init_versioning(app, lambda: flask.request.headers.get("X-User-Id", type=int), with_meta=True)
    in_flight = threading.Barrier(USERS + 1)

    @app.post("/articles/<name>")
    def create(name):
        in_flight.wait(10)  # every request is inside its context at the same time
        with Session(engine) as session:
            session.add(v.Article(name=name))
            session.commit()
        return {"ok": True}

    def call(n):
        headers = {"X-Request-ID": f"req-{n}"}
        if n:
            headers["X-User-Id"] = str(n)
        response = app.test_client().post(
            f"/articles/a{n}", headers=headers, environ_base={"REMOTE_ADDR": f"10.0.0.{n}"}
        )
        assert response.status_code == 200, response.data

    try:
        with ThreadPoolExecutor(USERS + 1) as pool:
            list(pool.map(call, range(USERS + 1)))
    finally:
        engine.dispose()
    assert written_by(v) == {
        f"a{n}": (
            n or None,
            f"10.0.0.{n}",
            {"endpoint": "create", "request_id": f"req-{n}"},
        )
        for n in range(USERS + 1)
    }


# -- FastAPI / Starlette ---------------------------------------------------------------------


def test_fastapi_sync_and_async_endpoints_concurrently(v):
    fastapi = pytest.importorskip("fastapi")
    httpx = pytest.importorskip("httpx")
    backend = v.engine.dialect.name
    pytest.importorskip(ASYNC_DRIVERS[backend])
    from fastapi_app import VersioningContextMiddleware, user_id_from_header
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    sync_engine = concurrent_engine(v)
    url = v.engine.url.set(drivername=f"{backend}+{ASYNC_DRIVERS[backend]}")

    async def main():
        async_engine = create_async_engine(url, **engine_options(backend))
        app = fastapi.FastAPI()
        app.add_middleware(
            VersioningContextMiddleware, get_user_id=user_id_from_header, with_meta=True
        )
        entered = asyncio.Event()
        waiting = []

        async def all_in_flight():
            waiting.append(1)
            if len(waiting) == USERS:
                entered.set()
            await asyncio.wait_for(entered.wait(), 10)

        @app.post("/async/{name}")
        async def create_async(name: str):
            await all_in_flight()
            async with AsyncSession(async_engine) as session:
                session.add(v.Article(name=name))
                await session.commit()
            return {"ok": True}

        @app.post("/sync/{name}")
        def create_sync(name: str):  # runs in Starlette's thread pool
            with Session(sync_engine) as session:
                session.add(v.Article(name=name))
                session.commit()
            return {"ok": True}

        transport = httpx.ASGITransport(app=app, client=("192.0.2.9", 5000))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                calls = [
                    client.post(f"/async/async{n}", headers={"X-User-Id": str(n)})
                    for n in range(1, USERS + 1)
                ]
                calls += [
                    client.post(f"/sync/sync{n}", headers={"X-User-Id": str(n)})
                    for n in range(1, USERS + 1)
                ]
                calls.append(client.post("/sync/anonymous", headers={"X-Request-ID": "r"}))
                responses = await asyncio.gather(*calls)
                assert [r.status_code for r in responses] == [200] * len(calls)
        finally:
            await async_engine.dispose()

    try:
        asyncio.run(main())
    finally:
        sync_engine.dispose()
    expected = {}
    for n in range(1, USERS + 1):
        for kind in ("async", "sync"):
            path = f"/{kind}/{kind}{n}"
            expected[f"{kind}{n}"] = (n, "192.0.2.9", {"path": path, "request_id": None})
    expected["anonymous"] = (None, "192.0.2.9", {"path": "/sync/anonymous", "request_id": "r"})
    assert written_by(v) == expected


def test_asgi_middleware_passes_other_scopes_through():
    from fastapi_app import VersioningContextMiddleware

    from sqlalchemy_history.context import current_context

    seen = []

    async def app(scope, receive, send):
        seen.append(bool(current_context()))

    middleware = VersioningContextMiddleware(app, get_user_id=lambda scope: 1)
    asyncio.run(middleware({"type": "lifespan"}, None, None))
    asyncio.run(middleware({"type": "http", "headers": [], "client": None}, None, None))
    assert seen == [False, True]


# -- Celery / workers ------------------------------------------------------------------------


def test_celery_task_runs_in_the_context_it_was_queued_with(v):
    celery = pytest.importorskip("celery")
    from worker import VersionedTask, send_with_context

    app = celery.Celery("recipes", broker="memory://", backend="cache+memory://")
    app.conf.task_always_eager = True

    @app.task(base=VersionedTask, versioning_meta=True, name="create_article")
    def create_article(name):
        with v.session() as session:
            session.add(v.Article(name=name))
            session.commit()

    with versioning_context(user_id=2, remote_addr="10.9.9.9", meta={"reason": "import"}):
        result = send_with_context(create_article, "queued-in-context")
    send_with_context(create_article, "queued-without-context")
    create_article.apply_async(("plain-apply-async",))

    found = written_by(v)
    assert found["queued-in-context"] == (
        2,
        "10.9.9.9",
        {"reason": "import", "task": "create_article", "task_id": result.id},
    )
    assert found["queued-without-context"][:2] == (None, None)
    assert found["queued-without-context"][2]["task"] == "create_article"
    assert found["plain-apply-async"][:2] == (None, None)


def test_carried_context_in_a_worker_pool(v):
    from worker import carry, restored

    engine = concurrent_engine(v)
    jobs = []
    for n in range(1, USERS + 1):
        with versioning_context(user_id=n, meta={"reason": f"job {n}"}):
            jobs.append((n, carry()))  # what a queue would store with the job

    def run(job):
        n, carried = job
        with restored(carried, {"worker": "w1"}), Session(engine) as session:
            session.add(v.Article(name=f"job{n}"))
            session.commit()

    try:
        with ThreadPoolExecutor(USERS) as pool:
            list(pool.map(run, jobs))
    finally:
        engine.dispose()
    assert written_by(v) == {
        f"job{n}": (n, None, {"reason": f"job {n}", "worker": "w1"}) for n in range(1, USERS + 1)
    }


# -- the demos -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "script, needs, expected",
    [
        ("flask_app.py", "flask", "'Hello' written by user 42 from 127.0.0.1"),
        ("fastapi_app.py", "fastapi", "'Hello' written by user 7 from 127.0.0.1"),
        ("worker.py", "celery", "published by user 3; meta: {'reason': 'scheduled publish'"),
    ],
)
def test_recipe_demo_runs(script, needs, expected):
    pytest.importorskip(needs)
    done = subprocess.run(
        [sys.executable, str(RECIPES / script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout
