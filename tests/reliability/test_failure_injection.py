"""Failures in the middle of writing history leave nothing half-written (SPEC §3).

Each test commits some history (logged as ground truth), then a transaction fails: in the
middle of a flush after version rows were written, in a later flush, inside a savepoint,
by its connection being killed between flush and commit, or at COMMIT itself (a deferred
constraint, a serialization failure). Afterwards ``check_history`` must find no version
and no transaction row of the failed transaction (its tag is logged as rolled back), every
earlier chain intact, and the session must record the next transaction correctly.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Session

from sqlalchemy_history import version_table, versioning_context, versioning_manager

from .conftest import workload_models
from .ground_truth import Log, Write, check_history
from .workload import Models, Settings, history_schema, seed_rows


class InjectedFailure(Exception):
    """The driver error we raise on purpose."""


class FailOnSecondVersionTable:
    """A ``before_cursor_execute`` listener that fails the first statement touching a second
    version table of one transaction: by then, rows of the first one were written."""

    def __init__(self, version_tables: list[str]) -> None:
        self.patterns = {name: re.compile(rf"\b{name}\b") for name in version_tables}
        self.seen: list[str] = []
        self.fired = False
        self.armed = False

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not self.armed or self.fired:
            return
        touched = [
            n for n, p in self.patterns.items() if p.search(statement) and n not in self.seen
        ]
        self.seen.extend(touched)
        if len(self.seen) >= 2:
            self.fired = True
            raise sa.exc.OperationalError(statement, None, InjectedFailure("injected failure"))


@contextlib.contextmanager
def failing_history_writes(engine: sa.Engine, models: Models) -> Iterator[FailOnSecondVersionTable]:
    names = [version_table(t).name for t in (models.Article.__table__, models.Slot.__table__)]
    listener = FailOnSecondVersionTable(names)
    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        yield listener
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)


def committed_history(engine: sa.Engine, models: Models) -> Log:
    """Seed rows (tags, articles 1..8 with links, slots) and one more logged transaction."""
    log = Log()
    with Session(engine) as session:
        seed_rows(session, models, Settings(writers=1), log)
    commit(engine, log, "update", lambda s: rename(s, models, 1, "renamed"))
    return log


def load(session: Session, models: Models, *keys: int) -> list[Any]:
    """Load articles ``keys`` and the slots with the same numbers, so that changing them
    later runs no query (``Session.get`` autoflushes when it queries). Keep the returned
    list: the session holds its objects weakly."""
    return [
        obj
        for key in keys
        for obj in (session.get(models.Article, key), session.get(models.Slot, (0, f"s{key}")))
    ]


def rename(session: Session, models: Models, key: int, name: str) -> list[Write]:
    session.get(models.Article, key).name = name
    return [Write.update("article", (key,), name=name)]


def set_slot(session: Session, models: Models, code: str, value: str) -> list[Write]:
    session.get(models.Slot, (0, code)).value = value
    return [Write.update("slot", (0, code), value=value)]


def commit(engine: sa.Engine, log: Log, tag: str, work: Any) -> None:
    with Session(engine) as session, versioning_context(remote_addr=tag):
        writes = work(session)
        session.commit()
    log.record(tag, writes)


def assert_nothing_half_written(engine: sa.Engine, models: Models, log: Log) -> None:
    report = check_history(engine, models.schema(), log)
    assert report.ok, report.summary()
    assert len(versioning_manager.units_of_work) == 0
    assert len(versioning_manager.session_connection_map) == 0


def and_the_next_transaction_records(engine: sa.Engine, models: Models, log: Log) -> None:
    commit(
        engine,
        log,
        "afterwards",
        lambda s: rename(s, models, 1, "afterwards") + set_slot(s, models, "s1", "afterwards"),
    )
    assert_nothing_half_written(engine, models, log)


# -- failures during flushes ------------------------------------------------------------------


def test_failure_after_some_version_rows_were_written_leaves_nothing(versioned, engine, strategy):
    models = workload_models(versioned, strategy)
    log = committed_history(engine, models)
    with failing_history_writes(engine, models) as injected, Session(engine) as session:
        with versioning_context(remote_addr="failed"), pytest.raises(sa.exc.OperationalError):
            held = load(session, models, 2)
            rename(session, models, 2, "lost")
            set_slot(session, models, "s2", "lost")
            injected.armed = True
            session.flush()
            session.commit()  # where history is written at commit
        session.rollback()
        log.rollback("failed")
    assert injected.fired and len(injected.seen) == 2 and held
    assert_nothing_half_written(engine, models, log)
    and_the_next_transaction_records(engine, models, log)


def test_constraint_violation_in_a_later_flush_leaves_nothing(versioned, engine, strategy):
    models = workload_models(versioned, strategy)
    log = committed_history(engine, models)
    with Session(engine) as session, versioning_context(remote_addr="failed"):
        rename(session, models, 2, "lost")
        session.flush()
        session.add(models.Article(id=3, name="duplicate key"))
        with pytest.raises(sa.exc.IntegrityError):
            session.flush()
        session.rollback()
        log.rollback("failed")
    assert_nothing_half_written(engine, models, log)
    and_the_next_transaction_records(engine, models, log)


# -- savepoints -------------------------------------------------------------------------------


def test_failed_flush_inside_a_savepoint_is_undone_and_the_rest_commits(versioned, engine):
    models = workload_models(versioned, "validity")
    log = committed_history(engine, models)
    with Session(engine) as session, versioning_context(remote_addr="partly"):
        writes = rename(session, models, 2, "kept")
        session.flush()
        with pytest.raises(sa.exc.IntegrityError), session.begin_nested():
            rename(session, models, 4, "undone")
            session.add(models.Article(id=3, name="duplicate key"))
        writes += rename(session, models, 5, "kept too")
        session.commit()
    log.record("partly", writes)
    assert_nothing_half_written(engine, models, log)


def test_failure_writing_versions_inside_a_savepoint_is_undone(versioned, engine):
    models = workload_models(versioned, "validity")
    log = committed_history(engine, models)
    with contextlib.ExitStack() as stack:
        injected = stack.enter_context(failing_history_writes(engine, models))
        session = stack.enter_context(Session(engine))
        stack.enter_context(versioning_context(remote_addr="partly"))
        writes = rename(session, models, 2, "kept")
        session.flush()
        held = load(session, models, 4, 5)
        with pytest.raises(sa.exc.OperationalError), session.begin_nested():
            rename(session, models, 4, "undone")
            set_slot(session, models, "s4", "undone")
            injected.armed = True
            session.flush()
        writes += rename(session, models, 5, "kept too") + set_slot(session, models, "s5", "kept")
        session.commit()
    log.record("partly", writes)
    assert injected.fired and held
    assert_nothing_half_written(engine, models, log)


def test_savepoints_rolled_back_after_writing_versions_leave_nothing(versioned, engine):
    models = workload_models(versioned, "validity")
    log = committed_history(engine, models)
    with Session(engine) as session, versioning_context(remote_addr="partly"):
        nested = session.begin_nested()
        rename(session, models, 2, "undone")
        session.add(models.Article(id=100, name="undone"))
        session.flush()
        nested.rollback()
        writes = rename(session, models, 2, "kept")
        nested = session.begin_nested()
        inner = session.begin_nested()
        writes += rename(session, models, 3, "kept")
        session.flush()
        inner.commit()
        set_slot(session, models, "s3", "undone with the outer savepoint")
        session.flush()
        nested.rollback()
        session.commit()
    # The inner savepoint was released into the outer one, which was rolled back.
    log.record("partly", writes[:1])
    assert_nothing_half_written(engine, models, log)


# -- a connection killed between flush and commit ----------------------------------------------


def test_connection_killed_between_flush_and_commit_leaves_nothing(
    versioned, engine, caps, strategy
):
    models = workload_models(versioned, strategy)
    log = committed_history(engine, models)
    with Session(engine) as session:
        with versioning_context(remote_addr="killed"):
            rename(session, models, 2, "lost")
            set_slot(session, models, "s2", "lost")
            session.add(models.Article(id=100, name="lost"))
            session.flush()
            conn = session.connection()
            caps.kill(conn, caps.backend_id(conn))
            with pytest.raises(sa.exc.DBAPIError):
                session.commit()
        with contextlib.suppress(sa.exc.DBAPIError):
            session.rollback()
        log.rollback("killed")
    engine.dispose()  # SQLite: the pool still holds the closed driver connection
    assert_nothing_half_written(engine, models, log)
    and_the_next_transaction_records(engine, models, log)


# -- a commit that fails at the database ---------------------------------------------------------


def deferred(Base: type[DeclarativeBase]) -> dict[str, Any]:
    class Owner(Base):
        __versioned__ = {}
        __tablename__ = "owner"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
        name = sa.Column(sa.String(20))

    class Pet(Base):
        __versioned__ = {}
        __tablename__ = "pet"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
        owner_id = sa.Column(
            sa.Integer,
            sa.ForeignKey("owner.id", deferrable=True, initially="DEFERRED"),
        )

    return {"Owner": Owner, "Pet": Pet}


def test_deferred_constraint_failing_at_commit_leaves_nothing(
    versioned, prepared_engine, caps, strategy
):
    if not caps.deferrable_constraints:
        pytest.skip(f"{caps.dialect} has no deferrable constraints")
    engine = prepared_engine  # SQLite: foreign keys enforced
    v = versioned(deferred, options={"strategy": strategy})
    schema = history_schema(v.Transaction.__table__, v.Owner.__table__, v.Pet.__table__)
    log = Log()
    with Session(engine) as session, versioning_context(remote_addr="first"):
        session.add_all([v.Owner(id=1, name="ann"), v.Pet(id=1, owner_id=1)])
        session.commit()
    log.record(
        "first", [Write.insert("owner", (1,), name="ann"), Write.insert("pet", (1,), owner_id=1)]
    )

    with Session(engine) as session, versioning_context(remote_addr="failed"):
        session.get(v.Owner, 1).name = "lost"
        session.add(v.Pet(id=2, owner_id=99))  # no such owner: checked at COMMIT
        session.get(v.Pet, 1).owner_id = 98
        session.flush()
        with pytest.raises(sa.exc.IntegrityError):
            session.commit()
        session.rollback()
    log.rollback("failed")
    report = check_history(engine, schema, log)
    assert report.ok, report.summary()
    assert len(versioning_manager.units_of_work) == 0


def test_serialization_failure_at_commit_leaves_nothing(versioned, engine, caps, strategy):
    """Write skew under SERIALIZABLE: each transaction reads both rows and changes one; the
    second to commit is refused at COMMIT."""
    if not caps.serializable_snapshot_isolation:
        pytest.skip(f"{caps.dialect} does not refuse write skew at COMMIT")
    models = workload_models(versioned, strategy)
    log = committed_history(engine, models)
    serializable = engine.execution_options(isolation_level="SERIALIZABLE")
    A = models.Article
    first, second = Session(serializable), Session(serializable)
    try:
        for session in (first, second):
            session.scalars(sa.select(A).where(A.id.in_([2, 3]))).all()
        with versioning_context(remote_addr="first"):
            writes = rename(first, models, 2, "first")
            first.flush()
        with versioning_context(remote_addr="second"):
            rename(second, models, 3, "second")
            second.flush()
        with versioning_context(remote_addr="first"):
            first.commit()
        log.record("first", writes)
        with (
            versioning_context(remote_addr="second"),
            pytest.raises(sa.exc.OperationalError) as failure,
        ):
            second.commit()
        assert "could not serialize" in str(failure.value)
        second.rollback()
        log.rollback("second")
    finally:
        first.close()
        second.close()
    assert_nothing_half_written(engine, models, log)
    and_the_next_transaction_records(engine, models, log)
