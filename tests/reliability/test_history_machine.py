"""Hypothesis stateful testing: generated sequences of ORM operations, history checked after
every commit and rollback against the ground-truth model (``ground_truth.check_history``).

One session on databases that allow one writing transaction at a time (SQLite), two
interleaved sessions elsewhere (the second keeps its objects across commits, so its
in-memory values go stale). Operations: insert, update (fresh or of a possibly stale
object), delete, re-insert of the same key in one flush and in two flushes, link, unlink,
primary key change, flush, commit, rollback, savepoint begin / rollback / release. Two
sessions never touch a row the other's open transaction touched (in one thread, the
second would wait for ever); a lock wait or deadlock the database reports anyway is
handled as an application would, by rolling that transaction back.

Generation is derandomized (the same examples every run, so a strict xfail is stable) and
shrinking reduces a failure to a minimal sequence of steps.
"""

from __future__ import annotations

from typing import Any, Optional

import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from sqlalchemy_history import versioning_context

from .capabilities import Capabilities
from .conftest import workload_models
from .ground_truth import Log, Report, RowId, Write, check_history, replay
from .workload import Models, Recorder, classify, forget_stale, prepare_engine

KEYS = 4
TAGS = 3


def examples_for(caps: Capabilities) -> int:
    """A small number of examples in CI: fewer where each costs network round trips."""
    return 60 if caps.dialect == "sqlite" else 20


class HistoryMachine(RuleBasedStateMachine):
    """Set by ``machine_for``: the database, models, sessions and left-out operations."""

    engine: sa.Engine
    models: Models
    session_count: int
    without: frozenset[str]

    def __init__(self) -> None:
        super().__init__()
        wipe(self.engine, self.models)
        self.log = Log()
        self.attempts = 0
        self.sessions = [
            Session(self.engine, expire_on_commit=(n == 0)) for n in range(self.session_count)
        ]
        self.recorders = [Recorder() for _ in self.sessions]
        self.tags: list[Optional[str]] = [None for _ in self.sessions]
        self.touched: list[set[RowId]] = [set() for _ in self.sessions]
        self.savepoints: list[list[Any]] = [[] for _ in self.sessions]
        #: Objects each session loaded: the identity map holds them weakly, and a session
        #: that keeps objects across commits should find them again (stale).
        self.held: list[list[Any]] = [[] for _ in self.sessions]

    def teardown(self) -> None:
        for session in self.sessions:
            session.close()

    # -- bookkeeping ------------------------------------------------------------------

    def tag(self, s: int) -> str:
        if self.tags[s] is None:
            self.attempts += 1
            self.tags[s] = f"m{self.attempts}"
        tag = self.tags[s]
        assert tag is not None
        return tag

    def visible(self, s: int) -> dict[RowId, dict[str, Any]]:
        """What session ``s`` sees: committed rows plus its own uncommitted writes."""
        log = self.log.copy()
        log.record("pending", self.recorders[s].writes)
        _, state = replay(log, self.models.schema(), Report())
        return state

    def free(self, s: int, *rows: RowId) -> bool:
        """No other session's open transaction touched any of ``rows``."""
        return not any(
            row in self.touched[o] for o in range(len(self.sessions)) if o != s for row in rows
        )

    def write(self, s: int, *writes: Write, touch: tuple[RowId, ...] = ()) -> None:
        self.recorders[s].add(*writes)
        self.touched[s].update((w.table, w.key) for w in writes)
        self.touched[s].update(touch)

    def ended(self, s: int) -> None:
        self.recorders[s] = Recorder()
        self.tags[s] = None
        self.touched[s] = set()
        self.savepoints[s] = []

    def run(self, s: int, step: Any) -> None:
        """Run ``step(session)`` in session ``s``'s versioning context; a lock timeout or
        deadlock rolls its transaction back, as an application would."""
        with versioning_context(remote_addr=self.tag(s)):
            try:
                step(self.sessions[s])
            except Exception as exc:
                kind, _ = classify(exc)
                # Also when raised by a history statement: on small tables MariaDB reads
                # the parent rows of INSERT ... SELECT with a full scan, whose shared locks
                # wait for rows the other session inserted.
                if kind not in ("deadlock", "lock timeout", "serialization failure"):
                    raise
                self.sessions[s].rollback()
                self.log.rollback(self.tag(s))
                self.ended(s)
                self.check()

    def check(self) -> None:
        report = check_history(self.engine, self.models.schema(), self.log)
        assert report.ok, report.summary()

    def articles(self, s: int) -> list[int]:
        return sorted(key[0] for (table, key) in self.visible(s) if table == "article")

    def links(self, s: int, article: int) -> list[int]:
        return sorted(
            key[1]
            for (table, key) in self.visible(s)
            if table == "article_tag" and key[0] == article
        )

    def session_index(self) -> Any:
        return st.integers(0, len(self.sessions) - 1)

    def locked(self, session: Session, key: int) -> Any:
        A = self.models.Article
        query = sa.select(A).where(A.id == key).with_for_update()
        return session.scalars(query.execution_options(populate_existing=True)).one()

    def sync_tags(self, session: Session, article: Any) -> list[int]:
        t = self.models.article_tag
        session.flush()
        query = sa.select(t.c.tag_id).where(t.c.article_id == article.id).with_for_update()
        linked = sorted(session.scalars(query))
        set_committed_value(article, "tags", [session.get(self.models.Tag, i) for i in linked])
        return linked

    def value(self, s: int) -> str:
        self.attempts += 1
        return f"{self.tag(s)}.{self.attempts}"

    # -- rules ------------------------------------------------------------------------

    @initialize()
    def seed(self) -> None:
        """Tags 1..3 and articles 1..3 (linked to tags 1, 2 and none), committed."""
        writes = [Write.insert("tag", (t,), name=f"tag {t}") for t in range(1, TAGS + 1)]
        with Session(self.engine) as session, versioning_context(remote_addr="seed"):
            tags = [self.models.Tag(id=t, name=f"tag {t}") for t in range(1, TAGS + 1)]
            session.add_all(tags)
            for key, linked in ((1, tags[:1]), (2, tags[1:2]), (3, [])):
                session.add(self.models.Article(id=key, name=f"a{key}", tags=linked))
                writes.append(Write.insert("article", (key,), name=f"a{key}"))
                writes.extend(Write.insert("article_tag", (key, t.id)) for t in linked)
            session.commit()
        self.log.record("seed", writes)

    def maybe_flush(self, s: int, data: Any) -> None:
        """Flush after an operation, or leave it for a later one to share the flush."""
        if self.tags[s] is not None and data.draw(st.booleans(), "flush"):
            self.run(s, lambda session: session.flush())

    @rule(data=st.data())
    def insert(self, data: Any) -> None:
        s = data.draw(self.session_index(), "session")
        visible = self.visible(s)
        absent = [
            k
            for k in range(1, KEYS + 1)
            if ("article", (k,)) not in visible and self.free(s, ("article", (k,)))
        ]
        if not absent:
            return
        key = data.draw(st.sampled_from(absent), "key")
        tags = sorted(data.draw(st.sets(st.integers(1, TAGS), max_size=2), "tags"))
        if not self.free(s, *(("tag", (t,)) for t in tags)):
            return
        name = self.value(s)

        def step(session: Session) -> None:
            forget_stale(session, self.models.Article, (key,))
            linked = [session.get(self.models.Tag, t) for t in tags]
            session.add(
                self.models.Article(id=key, name=name, content=None, rank=None, tags=linked)
            )

        self.run(s, step)
        self.write(
            s,
            Write.insert("article", (key,), name=name),
            *(Write.insert("article_tag", (key, t)) for t in tags),
            touch=tuple(("tag", (t,)) for t in tags),
        )
        self.maybe_flush(s, data)

    @rule(data=st.data())
    def update(self, data: Any) -> None:
        s = data.draw(self.session_index(), "session")
        candidates = [k for k in self.articles(s) if self.free(s, ("article", (k,)))]
        if not candidates:
            return
        key = data.draw(st.sampled_from(candidates), "key")
        column = data.draw(st.sampled_from(["name", "content"]), "column")
        fresh = data.draw(st.booleans(), "fresh")
        value = self.value(s)

        def step(session: Session) -> None:
            # A stale object (loaded in an earlier transaction) or the row as it is now.
            obj = None if fresh else session.get(self.models.Article, key)
            if obj is None:
                obj = self.locked(session, key)
            self.held[s].append(obj)
            setattr(obj, column, value)

        self.run(s, step)
        if self.tags[s] is not None:
            self.write(s, Write.update("article", (key,), **{column: value}))
        self.maybe_flush(s, data)

    def _delete(self, s: int, key: int, fresh: bool) -> None:
        def step(session: Session) -> None:
            session.flush()  # what is pending reaches the row before it goes
            # The object as loaded earlier (possibly stale), or the row as it is now.
            obj = None if fresh else session.get(self.models.Article, key)
            if obj is None:
                obj = self.locked(session, key)
            self.sync_tags(session, obj)
            session.delete(obj)

        links = self.links(s, key)
        self.run(s, step)
        if self.tags[s] is not None:
            self.write(
                s,
                *(Write.delete("article_tag", (key, t)) for t in links),
                Write.delete("article", (key,)),
            )

    def _deletable(self, s: int, data: Any) -> Optional[int]:
        candidates = [
            k
            for k in self.articles(s)
            if self.free(s, ("article", (k,)), *(("article_tag", (k, t)) for t in self.links(s, k)))
        ]
        return data.draw(st.sampled_from(candidates), "key") if candidates else None

    @rule(data=st.data())
    def delete(self, data: Any) -> None:
        s = data.draw(self.session_index(), "session")
        key = self._deletable(s, data)
        if key is not None:
            self._delete(s, key, data.draw(st.booleans(), "fresh"))
            self.maybe_flush(s, data)

    def _readd(self, data: Any, flushes: int) -> None:
        s = data.draw(self.session_index(), "session")
        key = self._deletable(s, data)
        if key is None:
            return
        links = self.links(s, key)
        tags = links if data.draw(st.booleans(), "same tags") else []
        if not self.free(s, *(("tag", (t,)) for t in tags)):
            return
        name = self.value(s)

        def step(session: Session) -> None:
            session.flush()
            obj = self.locked(session, key)
            self.sync_tags(session, obj)  # loaded: the case that breaks in one flush
            session.delete(obj)
            if flushes == 2:
                session.flush()
            linked = [session.get(self.models.Tag, t) for t in tags]
            session.add(
                self.models.Article(id=key, name=name, content=None, rank=None, tags=linked)
            )
            session.flush()

        self.run(s, step)
        if self.tags[s] is not None:
            self.write(
                s,
                *(Write.delete("article_tag", (key, t)) for t in links),
                Write.delete("article", (key,)),
                Write.insert("article", (key,), name=name),
                *(Write.insert("article_tag", (key, t)) for t in tags),
            )

    @precondition(lambda self: "readd_one_flush" not in self.without)
    @rule(data=st.data())
    def readd_one_flush(self, data: Any) -> None:
        self._readd(data, 1)

    @rule(data=st.data())
    def readd_two_flushes(self, data: Any) -> None:
        self._readd(data, 2)

    @rule(data=st.data())
    def link(self, data: Any) -> None:
        s = data.draw(self.session_index(), "session")
        key = self._deletable(s, data)
        if key is None:
            return
        free = [t for t in range(1, TAGS + 1) if t not in self.links(s, key)]
        if not free:
            return
        tag = data.draw(st.sampled_from(free), "tag")
        if not self.free(s, ("tag", (tag,)), ("article_tag", (key, tag))):
            return

        def step(session: Session) -> None:
            obj = self.locked(session, key)
            self.held[s].append(obj)
            self.sync_tags(session, obj)
            obj.tags.append(session.get(self.models.Tag, tag))

        self.run(s, step)
        if self.tags[s] is not None:
            self.write(
                s,
                Write.insert("article_tag", (key, tag)),
                touch=(("article", (key,)), ("tag", (tag,))),
            )
        self.maybe_flush(s, data)

    @rule(data=st.data())
    def unlink(self, data: Any) -> None:
        s = data.draw(self.session_index(), "session")
        key = self._deletable(s, data)
        if key is None or not self.links(s, key):
            return
        tag = data.draw(st.sampled_from(self.links(s, key)), "tag")

        def step(session: Session) -> None:
            obj = self.locked(session, key)
            self.held[s].append(obj)
            self.sync_tags(session, obj)
            obj.tags.remove(session.get(self.models.Tag, tag))

        self.run(s, step)
        if self.tags[s] is not None:
            self.write(s, Write.delete("article_tag", (key, tag)), touch=(("article", (key,)),))
        self.maybe_flush(s, data)

    @precondition(lambda self: "change_key" not in self.without)
    @rule(data=st.data())
    def change_key(self, data: Any) -> None:
        s = data.draw(self.session_index(), "session")
        key = self._deletable(s, data)
        if key is None:
            return
        visible = self.visible(s)
        absent = [
            k
            for k in range(1, KEYS + 1)
            if ("article", (k,)) not in visible and self.free(s, ("article", (k,)))
        ]
        if not absent:
            return
        new = data.draw(st.sampled_from(absent), "new key")
        links = self.links(s, key)

        def step(session: Session) -> None:
            obj = self.locked(session, key)
            self.held[s].append(obj)
            if self.sync_tags(session, obj):
                obj.tags = []  # the link table's foreign key has no ON UPDATE CASCADE
                session.flush()
            obj.id = new
            session.flush()

        self.run(s, step)
        if self.tags[s] is not None:
            self.write(
                s,
                *(Write.delete("article_tag", (key, t)) for t in links),
                Write.rekey("article", (key,), (new,)),
            )

    @rule(data=st.data())
    def flush(self, data: Any) -> None:
        s = data.draw(self.session_index(), "session")
        self.run(s, lambda session: session.flush())

    @rule(data=st.data())
    def commit(self, data: Any) -> None:
        s = data.draw(self.session_index(), "session")
        tag = self.tag(s)
        writes = list(self.recorders[s].writes)

        def step(session: Session) -> None:
            session.flush()
            ticket = self.log.ticket()
            session.commit()
            self.log.commit(ticket, tag, writes)

        self.run(s, step)
        if self.tags[s] == tag:  # not rolled back by the database
            self.ended(s)
        self.check()

    @rule(data=st.data())
    def rollback(self, data: Any) -> None:
        s = data.draw(self.session_index(), "session")
        self.sessions[s].rollback()
        if self.tags[s] is not None:
            self.log.rollback(self.tags[s])
        self.ended(s)
        self.check()

    @rule(data=st.data())
    def begin_savepoint(self, data: Any) -> None:
        s = data.draw(self.session_index(), "session")
        if len(self.savepoints[s]) >= 2:
            return

        def step(session: Session) -> None:
            self.savepoints[s].append(session.begin_nested())
            self.recorders[s].begin_savepoint()

        self.run(s, step)

    @rule(data=st.data(), release=st.booleans())
    def end_savepoint(self, data: Any, release: bool) -> None:
        s = data.draw(self.session_index(), "session")
        if not self.savepoints[s]:
            return

        def step(session: Session) -> None:
            nested = self.savepoints[s].pop()
            if release:
                nested.commit()
                self.recorders[s].release_savepoint()
            else:
                nested.rollback()
                self.recorders[s].rollback_savepoint()

        self.run(s, step)


def wipe(engine: sa.Engine, models: Models) -> None:
    """Delete every row of the models' tables and their history (between examples)."""
    schema = models.schema()
    parents = [
        models.article_tag,
        models.Article.__table__,
        models.Tag.__table__,
        models.Slot.__table__,
    ]
    with engine.begin() as conn:
        for table in [*parents, *(t.version for t in schema.tables), schema.transaction]:
            conn.execute(table.delete())


def machine_for(engine: sa.Engine, models: Models, sessions: int, without: frozenset[str]) -> type:
    return type(
        "HistoryMachine",
        (HistoryMachine,),
        {"engine": engine, "models": models, "session_count": sessions, "without": without},
    )


def run_machine(
    versioned: Any,
    engine: sa.Engine,
    caps: Capabilities,
    strategy: str,
    sessions: int,
    without: frozenset[str],
    shrink: bool = True,
) -> None:
    """Run the machine; ``shrink=False`` reports a failure as found (shrinking one takes
    minutes: every step runs against the database)."""
    # One thread: a lock wait can never end (the other session waits for this step), so
    # fail it at once.
    prepare_engine(engine, lock_timeout_ms=0)
    models = workload_models(versioned, strategy)
    machine = machine_for(engine, models, sessions, without)
    phases = [Phase.explicit, Phase.reuse, Phase.generate, *([Phase.shrink] if shrink else [])]
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples_for(caps),
            stateful_step_count=30,
            deadline=None,
            derandomize=True,
            database=None,
            phases=phases,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


def test_one_session_keeps_history_true(versioned, engine, caps, strategy):
    run_machine(versioned, engine, caps, strategy, 1, frozenset())


def test_generated_operations_keep_history_true(versioned, engine, caps, strategy):
    sessions = 2 if caps.concurrent_write_transactions else 1
    run_machine(versioned, engine, caps, strategy, sessions, frozenset())
