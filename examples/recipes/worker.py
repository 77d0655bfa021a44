"""Recipe: background jobs (Celery, or any task queue) record who asked for the change.

A job runs long after the web request that queued it, in another process, so the
request's ``versioning_context`` must travel with the job. ``carry()`` turns the context
in force into a JSON-able dict to put in the job's message; ``restored(carried, ...)``
opens it again in the worker, adding what the worker knows (the task name and id).

With Celery: queue with ``send_with_context(task, ...)`` (the context goes in a message
header) and declare tasks with ``base=VersionedTask``. Other queues (RQ, Dramatiq, arq):
pass ``carry()`` as a job argument and wrap the job body in ``with restored(...)``.

Run the demo with ``python examples/recipes/worker.py`` (needs ``pip install celery``;
it runs the task eagerly, in process).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from sqlalchemy_history import versioning_context
from sqlalchemy_history.context import VersioningContext, current_context

#: Name of the Celery message header carrying the context.
HEADER = "versioning_context"


def carry() -> dict[str, Any]:
    """Return the context in force as a JSON-able dict (values must be JSON-able)."""
    values = current_context()
    return {"columns": dict(values.columns), "meta": dict(values.meta)}


def restored(
    carried: Optional[Mapping[str, Any]], meta: Optional[Mapping[str, Optional[str]]] = None
) -> VersioningContext:
    """Return a ``versioning_context`` re-opening ``carried`` (from ``carry()``).

    :param meta: extra metadata from the worker side, e.g. ``{"task": name}`` (needs
        ``TransactionMetaPlugin``, as does carried metadata).
    """
    carried = carried or {}
    merged = {**carried.get("meta", {}), **(meta or {})}
    return versioning_context(meta=merged, **carried.get("columns", {}))


try:
    import celery
except ImportError:  # the recipe's Celery part needs Celery; carry()/restored() do not
    celery = None

if celery is not None:

    class VersionedTask(celery.Task):  # type: ignore[misc]
        """A Celery task base running each task inside the context it was queued with."""

        #: Add the task name and id to the transaction metadata (``TransactionMetaPlugin``).
        versioning_meta = False

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            request = self.request
            # Eager tasks keep custom headers in request.headers; workers (message
            # protocol 2) turn them into request attributes.
            carried = (getattr(request, "headers", None) or {}).get(HEADER) or getattr(
                request, HEADER, None
            )
            meta = {"task": self.name, "task_id": request.id} if self.versioning_meta else None
            with restored(carried, meta):
                return super().__call__(*args, **kwargs)

    def send_with_context(task: Any, *args: Any, **kwargs: Any) -> Any:
        """``task.apply_async(args, kwargs)`` carrying the current context in a header."""
        return task.apply_async(args, kwargs, headers={HEADER: carry()})


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
        session.add_all([User(id=3), Article(id=1, name="draft")])
        session.commit()

    app = celery.Celery("demo", broker="memory://", backend="cache+memory://")
    app.conf.task_always_eager = True  # the demo runs the task in process

    @app.task(base=VersionedTask, versioning_meta=True, name="publish")
    def publish(article_id: int) -> None:
        with Session(engine) as session:
            session.get(Article, article_id).name = "published"
            session.commit()

    # In the web request that queues the job:
    with versioning_context(user_id=3, meta={"reason": "scheduled publish"}):
        send_with_context(publish, 1)

    with Session(engine) as session:
        tx = session.get(Article, 1).versions.all()[-1].transaction
        print(f"published by user {tx.user_id}; meta: {dict(tx.meta)}")


if __name__ == "__main__":
    main()
