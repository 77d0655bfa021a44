"""The concurrent-writers workload: models, writers, and running them in threads or tasks.

Each writer has its own ``Session`` (an ``AsyncSession`` in the asyncio variant) and runs
transactions made of a seeded random mix of operations, the way an application would:

- inserts of its own rows, inserts and updates of shared rows (``SELECT ... FOR UPDATE``
  first), *blind* updates of objects loaded earlier (possibly in an earlier transaction:
  half the writers keep objects across commits with ``expire_on_commit=False``, so their
  in-memory values go stale while other writers commit), deletes, re-inserts of the same
  key in one flush and in separate flushes (and, across transactions, of shared keys),
  many-to-many link and unlink, composite-key rows, a primary key change, renames of
  shared tags;
- several flushes per transaction (explicit ``flush()`` and autoflush before queries),
  savepoints (about half rolled back, some ending in a unique-key conflict that the
  writer rolls back to the savepoint) and some transactions rolled back on purpose;
- deadlocks, serialization failures, lock timeouts, unique-key conflicts and stale-row
  errors are retried with the same plan (same seed), as an application retries a unit of
  work. An integrity error raised by a statement on a version or transaction table is not
  the application's conflict but a fault of history recording: it is counted as an
  anomaly (``history_statement_failed``).

Every attempt runs inside ``versioning_context(remote_addr=<tag>)`` so that its transaction
row carries a unique tag, and what committed is logged in a ``ground_truth.Log`` (see that
module for why the log's order is the commit order). ``check_history`` then compares the
database with the log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import re
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any, Callable, Optional

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Session, configure_mappers, relationship
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import ObjectDeletedError, StaleDataError

from sqlalchemy_history import make_versioned, remove_versioning, version_table, versioning_context

from .ground_truth import HistorySchema, Log, Report, Tracked, Write, check_history

# -- models -----------------------------------------------------------------------------------


def define(Base: type[DeclarativeBase]) -> dict[str, Any]:
    """Declare the workload's versioned models on ``Base`` and return them by name.

    Keys are assigned by the writers (no autoincrement): shared keys are contended, own
    keys are unique per writer, and a key can be deleted and inserted again.
    """
    article_tag = sa.Table(
        "article_tag",
        Base.metadata,
        sa.Column("article_id", sa.Integer, sa.ForeignKey("article.id"), primary_key=True),
        sa.Column("tag_id", sa.Integer, sa.ForeignKey("tag.id"), primary_key=True),
    )

    class Tag(Base):
        __versioned__ = {}
        __tablename__ = "tag"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
        name = sa.Column(sa.String(60))

    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
        name = sa.Column(sa.String(60))
        content = sa.Column(sa.String(60))
        rank = sa.Column(sa.Integer)
        tags = relationship(Tag, secondary=article_tag)

    class Slot(Base):
        """A composite primary key."""

        __versioned__ = {}
        __tablename__ = "slot"
        owner = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
        code = sa.Column(sa.String(20), primary_key=True)
        value = sa.Column(sa.String(60))

    return {"Tag": Tag, "Article": Article, "Slot": Slot, "article_tag": article_tag}


@dataclasses.dataclass(frozen=True)
class Models:
    Tag: Any
    Article: Any
    Slot: Any
    article_tag: sa.Table
    transaction: sa.Table

    @classmethod
    def of(cls, models: dict[str, Any], transaction_cls: Any) -> Models:
        return cls(
            models["Tag"],
            models["Article"],
            models["Slot"],
            models["Tag"].metadata.tables["article_tag"],
            transaction_cls.__table__,
        )

    def schema(self) -> HistorySchema:
        """Describe where the history of these models lives, for ``check_history``."""
        return history_schema(
            self.transaction,
            self.Article.__table__,
            self.Tag.__table__,
            self.Slot.__table__,
            self.article_tag,
        )


def history_schema(transaction: sa.Table, *tables: sa.Table) -> HistorySchema:
    """Describe versioned ``tables`` (named by table name in ``Write``) for the checker."""

    def tracked(table: sa.Table) -> Tracked:
        key = tuple(c.name for c in table.primary_key)
        columns = tuple(c.name for c in table.c if c.name not in key)
        return Tracked(table.name, table, version_table(table), key, columns)

    return HistorySchema(tuple(tracked(t) for t in tables), transaction)


def build_models(engine: sa.Engine, strategy: str) -> tuple[Models, Callable[[], None]]:
    """Version the workload's models with ``strategy`` and create their tables on ``engine``.

    For scripts (the stress command); tests use the ``versioned`` fixture. Return the models
    and a function that removes versioning again.
    """
    make_versioned(user_cls=None, options={"strategy": strategy})

    class Base(DeclarativeBase):
        pass

    models = define(Base)
    configure_mappers()
    existing = sa.MetaData()
    existing.reflect(engine)
    existing.drop_all(engine)
    Base.metadata.create_all(engine)
    from sqlalchemy_history import versioning_manager

    built = Models.of(models, versioning_manager.transaction_cls)

    def teardown() -> None:
        remove_versioning()
        Base.registry.dispose()

    return built, teardown


# -- engines ----------------------------------------------------------------------------------


def prepare_engine(engine: Any, lock_timeout_ms: int = 10_000) -> None:
    """Make an engine (sync, or an AsyncEngine's ``sync_engine``) fit for concurrent writers.

    SQLite: pysqlite's own transaction handling starts a transaction only at the first
    write and breaks SAVEPOINT; as SQLAlchemy's docs recommend, let SQLAlchemy emit the
    BEGIN itself (``BEGIN IMMEDIATE``: one writer at a time, the others wait), enforce
    foreign keys, wait up to 60 s for the lock, and use WAL (readers do not wait for the
    writer). PostgreSQL, MySQL/MariaDB: give up on a row lock after ``lock_timeout_ms``
    (MariaDB counts whole seconds, 0 for not at all; its default is 50 s). Deadlocks are
    detected sooner.
    """
    name = engine.dialect.name
    if name == "sqlite":
        statements = [
            "PRAGMA foreign_keys = ON",
            "PRAGMA busy_timeout = 60000",
            "PRAGMA journal_mode = WAL",
            "PRAGMA synchronous = NORMAL",
        ]
    elif name == "postgresql":
        # 0 would mean "wait for ever" here.
        statements = [f"SET lock_timeout = '{max(1, int(lock_timeout_ms))}ms'"]
    elif name in ("mysql", "mariadb"):
        seconds = -(-int(lock_timeout_ms) // 1000)
        statements = [f"SET SESSION innodb_lock_wait_timeout = {seconds}"]
    else:
        statements = []

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        if name == "sqlite":
            dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for statement in statements:
            cursor.execute(statement)
        cursor.close()

    if name == "sqlite":

        @sa.event.listens_for(engine, "begin")
        def _begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    if not engine.dialect.is_async:
        # Connections already pooled missed the listener. (An async pool is disposed in
        # its event loop; the ones given here are new.)
        engine.dispose()


def isolation_for(dialect_name: str, number: int) -> Optional[str]:
    """Isolation level of writer ``number``: every fourth writer differs from the default.

    PostgreSQL: REPEATABLE READ (serialization failures to retry). MySQL/MariaDB: READ
    COMMITTED (no gap locks). Others: the default.
    """
    if number % 4 != 3:
        return None
    return {
        "postgresql": "REPEATABLE READ",
        "mysql": "READ COMMITTED",
        "mariadb": "READ COMMITTED",
    }.get(dialect_name)


# -- one writer -------------------------------------------------------------------------------


def forget_stale(session: Session, cls: Any, key: tuple[Any, ...]) -> None:
    """Before inserting ``key``: expunge this session's object for it, whose row another
    writer deleted since it was loaded. An object this session is deleting itself stays
    (its row is re-inserted in the same flush: a row switch)."""
    stale = session.identity_map.get(sa.inspect(cls).identity_key_from_primary_key(key))
    if stale is not None and stale not in session.deleted:
        session.expunge(stale)


class Retry(Exception):
    """The attempt cannot go on as planned (e.g. a row it needs vanished): retry it."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class Recorder:
    """The writes of the attempt in progress, with savepoint marks."""

    def __init__(self) -> None:
        self.writes: list[Write] = []
        self._marks: list[int] = []

    def add(self, *writes: Write) -> None:
        self.writes.extend(writes)

    def begin_savepoint(self) -> None:
        self._marks.append(len(self.writes))

    def release_savepoint(self) -> None:
        self._marks.pop()

    def rollback_savepoint(self) -> None:
        del self.writes[self._marks.pop() :]


@dataclasses.dataclass(frozen=True)
class Settings:
    """What the writers do; the seed makes their plans reproducible."""

    writers: int = 8
    seconds: float = 3.0
    seed: int = 0
    #: Contended articles (keys 1..n) and slots; default: twice the writers, at least 8.
    shared: int = 0
    tags: int = 6
    #: Operations per transaction (at most).
    operations: int = 4
    #: Stop a writer after this many transactions, if it gets there before the time is up.
    transactions: Optional[int] = None
    #: Names of operations to leave out of the mix (``Writer.ops``).
    without: frozenset[str] = frozenset()

    @property
    def shared_rows(self) -> int:
        return self.shared or max(8, 2 * self.writers)


@dataclasses.dataclass
class Stats:
    """What happened, per writer, merged at the end."""

    commits: int = 0
    rollbacks: int = 0
    savepoints_rolled_back: int = 0
    #: Transactions given up after ``MAX_ATTEMPTS``, with the last error of each.
    gave_up: list[str] = dataclasses.field(default_factory=list)
    retries: Counter[str] = dataclasses.field(default_factory=Counter)
    operations: Counter[str] = dataclasses.field(default_factory=Counter)
    #: Integrity errors raised by statements on history tables (a recording fault).
    history_errors: list[str] = dataclasses.field(default_factory=list)
    #: Retryable errors raised by statements on history tables (deadlocks our SQL caused).
    history_retries: Counter[str] = dataclasses.field(default_factory=Counter)

    def merge(self, other: Stats) -> None:
        self.commits += other.commits
        self.rollbacks += other.rollbacks
        self.savepoints_rolled_back += other.savepoints_rolled_back
        self.gave_up.extend(other.gave_up)
        self.retries.update(other.retries)
        self.operations.update(other.operations)
        self.history_errors.extend(other.history_errors)
        self.history_retries.update(other.history_retries)


_HISTORY_STATEMENT = re.compile(r"_version\b|\btransaction\b", re.IGNORECASE)


def classify(exc: BaseException) -> tuple[Optional[str], BaseException]:
    """Return the kind of a retryable error (``None`` for an error that is a bug) and the
    error in ``exc``'s chain that decided it.

    The exception's context chain counts: after a deadlock inside a savepoint, MariaDB has
    rolled back the whole transaction, and SQLAlchemy's ``ROLLBACK TO SAVEPOINT`` then
    fails with "SAVEPOINT ... does not exist", raised with the deadlock as its context.
    """
    seen: set[int] = set()
    error: Optional[BaseException] = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        kind = _classify_one(error)
        if kind is not None:
            return kind, error
        error = error.__cause__ or error.__context__
    return None, exc


def _classify_one(exc: BaseException) -> Optional[str]:
    if isinstance(exc, Retry):
        return exc.kind
    if isinstance(exc, (StaleDataError, ObjectDeletedError)):
        return STALE
    if not isinstance(exc, sa.exc.DBAPIError):
        return None
    message = str(exc.orig).lower()
    if "deadlock" in message:
        return "deadlock"
    if "savepoint" in message and "does not exist" in message:
        # MariaDB ended the transaction (a deadlock inside a savepoint) and the error that
        # said so was lost on the way (asyncio drivers): the savepoint went with it.
        return "deadlock"
    if "could not serialize" in message or "serialization failure" in message:
        return "serialization failure"
    if any(w in message for w in ("lock wait timeout", "lock timeout", "database is locked")):
        return "lock timeout"
    if isinstance(exc, sa.exc.IntegrityError):
        return "integrity"
    return None


def from_history_statement(exc: BaseException) -> bool:
    statement = getattr(exc, "statement", None)
    return bool(statement and _HISTORY_STATEMENT.search(statement))


_Op = Callable[[Session, random.Random, Recorder, str], None]


class Writer:
    """One application writer: plans transactions from its seed and carries them out."""

    def __init__(self, number: int, models: Models, settings: Settings, log: Log, run_id: str):
        self.number = number
        self.M = models
        self.settings = settings
        self.log = log
        self.run_id = run_id
        self.stats = Stats()
        self.rng = random.Random(f"{settings.seed}:{number}")
        self._own = 0
        self._values = 0
        self._attempts = 0
        self.last_failure = ""
        #: Own article ids that may exist (verified with a locking read before use).
        self.own_articles: list[int] = []
        self.own_slots: list[str] = []
        ops: list[tuple[str, int, _Op]] = [
            ("insert own article", 8, self.insert_own),
            ("insert or update shared article", 12, self.upsert_shared),
            ("blind update", 12, self.blind_update),
            ("delete article", 6, self.delete_article),
            ("re-insert in one flush", 4, self.reinsert_one_flush),
            ("re-insert in two flushes", 4, self.reinsert_two_flushes),
            ("link", 7, self.link),
            ("unlink", 5, self.unlink),
            ("rename tag", 2, self.rename_tag),
            ("slot", 8, self.slot),
            ("primary key change", 2, self.change_primary_key),
            ("savepoint", 6, self.savepoint),
        ]
        unknown = settings.without - {name for name, _, _ in ops}
        if unknown:
            raise ValueError(f"unknown operations {sorted(unknown)}; known: {[n for n, *_ in ops]}")
        self.ops = [op for op in ops if op[0] not in settings.without]

    # -- values and keys ---------------------------------------------------------------

    def value(self, tag: str) -> str:
        """A value no other write assigns (so that every assignment is a real change)."""
        self._values += 1
        return f"{tag}#{self._values}"

    def number_value(self) -> int:
        self._values += 1
        return (self.number + 1) * 1_000_000 + self._values

    def new_own_id(self) -> int:
        self._own += 1
        key = (self.number + 1) * 1_000_000 + self._own
        self.own_articles.append(key)
        return key

    def article_key(self, rng: random.Random) -> int:
        if self.own_articles and rng.random() < 0.4:
            return rng.choice(self.own_articles)
        return rng.randint(1, self.settings.shared_rows)

    # -- locking reads -----------------------------------------------------------------

    def locked_article(self, session: Session, key: int) -> Any:
        """Lock article ``key`` and return it (as this session knows it), or ``None``."""
        A = self.M.Article
        found = session.scalars(sa.select(A.id).where(A.id == key).with_for_update()).first()
        if found is None:
            return None
        # The in-memory object, possibly stale: this is how applications update.
        obj = session.get(A, key)
        if obj is None:
            # MariaDB: a row committed after our snapshot is visible to locking reads only.
            obj = session.get(A, key, with_for_update=True, populate_existing=True)
        return obj

    def synced_tags(self, session: Session, article: Any) -> set[int]:
        """Lock the article's links and make its ``tags`` collection what the database holds."""
        t = self.M.article_tag
        session.flush()
        query = sa.select(t.c.tag_id).where(t.c.article_id == article.id).with_for_update()
        linked = set(session.scalars(query))
        tags = [session.get(self.M.Tag, tag_id) for tag_id in sorted(linked)]
        set_committed_value(article, "tags", tags)
        return linked

    # -- operations --------------------------------------------------------------------

    def insert_article(
        self,
        session: Session,
        rng: random.Random,
        rec: Recorder,
        key: int,
        tag: str,
        tag_ids: Optional[Sequence[int]] = None,
    ) -> None:
        if tag_ids is None:
            tag_ids = rng.sample(range(1, self.settings.tags + 1), rng.randint(0, 2))
        tag_ids = sorted(tag_ids)
        values = {
            "name": self.value(tag),
            "content": self.value(tag) if rng.random() < 0.7 else None,
            "rank": self.number_value(),
        }
        forget_stale(session, self.M.Article, (key,))
        tags = [session.get(self.M.Tag, t) for t in tag_ids]
        session.add(self.M.Article(id=key, tags=tags, **values))
        rec.add(Write.insert("article", (key,), **values))
        rec.add(*(Write.insert("article_tag", (key, t)) for t in tag_ids))

    def assign(
        self,
        obj: Any,
        rng: random.Random,
        rec: Recorder,
        tag: str,
        table: str,
        key: tuple[Any, ...],
    ) -> None:
        if table == "slot":
            columns = ["value"]
        elif table == "tag":
            columns = ["name"]
        else:
            columns = rng.sample(["name", "content", "rank"], rng.randint(1, 2))
        assigned = {c: self.number_value() if c == "rank" else self.value(tag) for c in columns}
        for column, value in assigned.items():
            setattr(obj, column, value)
        rec.add(Write.update(table, key, **assigned))

    def insert_own(self, session: Session, rng: random.Random, rec: Recorder, tag: str) -> None:
        self.insert_article(session, rng, rec, self.new_own_id(), tag)

    def upsert_shared(self, session: Session, rng: random.Random, rec: Recorder, tag: str) -> None:
        key = rng.randint(1, self.settings.shared_rows)
        A = self.M.Article
        # A query, not Session.get(): it autoflushes, so that an object this transaction
        # deleted or added without flushing is not mistaken for the row.
        query = sa.select(A).where(A.id == key).with_for_update()
        obj = session.scalars(query.execution_options(populate_existing=True)).first()
        if obj is None:
            self.insert_article(session, rng, rec, key, tag)
        else:
            self.assign(obj, rng, rec, tag, "article", (key,))

    def blind_update(self, session: Session, rng: random.Random, rec: Recorder, tag: str) -> None:
        """Update an object loaded earlier without locking it first; sometimes in two flushes."""
        A = self.M.Article
        # Objects of this session's identity map, by key (reading ``id`` of an expired
        # object would load it), leaving out those marked for deletion.
        known = {
            sa.inspect(o).identity: o
            for o in session.identity_map.values()
            if isinstance(o, A) and o not in session.deleted
        }
        obj = known[rng.choice(sorted(known))] if known and rng.random() < 0.7 else None
        if obj is None:
            # Autoflushes (see upsert_shared); returns the identity map's object if any.
            obj = session.scalars(sa.select(A).where(A.id == self.article_key(rng))).first()
            if obj is None:
                return
        key = sa.inspect(obj).identity
        self.assign(obj, rng, rec, tag, "article", key)
        if rng.random() < 0.5:
            session.flush()
            self.assign(obj, rng, rec, tag, "article", key)

    def _delete(self, session: Session, rec: Recorder, key: int) -> Optional[set[int]]:
        """Delete article ``key`` if it exists; return the tags it was linked to."""
        # Flush first: what is pending must reach the row before it goes (a DELETE of a
        # dirty object skips its UPDATE, and a pending object would never be written).
        session.flush()
        obj = self.locked_article(session, key)
        if obj is None:
            return None
        linked = self.synced_tags(session, obj)
        session.delete(obj)
        rec.add(*(Write.delete("article_tag", (key, t)) for t in sorted(linked)))
        rec.add(Write.delete("article", (key,)))
        return linked

    def delete_article(self, session: Session, rng: random.Random, rec: Recorder, tag: str) -> None:
        self._delete(session, rec, self.article_key(rng))

    def reinsert_one_flush(
        self, session: Session, rng: random.Random, rec: Recorder, tag: str
    ) -> None:
        """Delete an article and add a new one with its key in the same flush (half the
        time linked to the same tags: those links are removed and added again)."""
        key = self.article_key(rng)
        linked = self._delete(session, rec, key)
        if linked is not None:
            same = linked if rng.random() < 0.5 else None
            self.insert_article(session, rng, rec, key, tag, same)
            session.flush()

    def reinsert_two_flushes(
        self, session: Session, rng: random.Random, rec: Recorder, tag: str
    ) -> None:
        key = self.article_key(rng)
        linked = self._delete(session, rec, key)
        if linked is not None:
            session.flush()
            same = linked if rng.random() < 0.5 else None
            self.insert_article(session, rng, rec, key, tag, same)

    def _linkable(self, session: Session, rng: random.Random) -> tuple[Any, set[int]]:
        session.flush()
        obj = self.locked_article(session, self.article_key(rng))
        if obj is None:
            return None, set()
        return obj, self.synced_tags(session, obj)

    def link(self, session: Session, rng: random.Random, rec: Recorder, tag: str) -> None:
        obj, linked = self._linkable(session, rng)
        free = [t for t in range(1, self.settings.tags + 1) if t not in linked]
        if obj is None or not free:
            return
        tag_id = rng.choice(free)
        obj.tags.append(session.get(self.M.Tag, tag_id))
        rec.add(Write.insert("article_tag", (obj.id, tag_id)))

    def unlink(self, session: Session, rng: random.Random, rec: Recorder, tag: str) -> None:
        obj, linked = self._linkable(session, rng)
        if obj is None or not linked:
            return
        tag_id = rng.choice(sorted(linked))
        obj.tags.remove(session.get(self.M.Tag, tag_id))
        rec.add(Write.delete("article_tag", (obj.id, tag_id)))

    def rename_tag(self, session: Session, rng: random.Random, rec: Recorder, tag: str) -> None:
        key = rng.randint(1, self.settings.tags)
        obj = session.get(self.M.Tag, key, with_for_update=True, populate_existing=True)
        self.assign(obj, rng, rec, tag, "tag", (key,))

    def slot(self, session: Session, rng: random.Random, rec: Recorder, tag: str) -> None:
        """Insert, update, delete or re-insert (one flush) a composite-key row."""
        S = self.M.Slot
        if self.own_slots and rng.random() < 0.4:
            key = (self.number + 1, rng.choice(self.own_slots))
        elif rng.random() < 0.2:
            self._own += 1
            key = (self.number + 1, f"k{self._own}")
            self.own_slots.append(key[1])
        else:
            key = (0, f"s{rng.randint(1, self.settings.shared_rows)}")
        session.flush()
        query = sa.select(S.owner).where(S.owner == key[0], S.code == key[1]).with_for_update()
        exists = session.scalars(query).first() is not None
        if not exists:
            value = self.value(tag)
            forget_stale(session, S, key)
            session.add(S(owner=key[0], code=key[1], value=value))
            rec.add(Write.insert("slot", key, value=value))
            return
        obj = session.get(S, key) or session.get(
            S, key, with_for_update=True, populate_existing=True
        )
        choice = rng.random()
        if choice < 0.5:
            self.assign(obj, rng, rec, tag, "slot", key)
            return
        session.delete(obj)
        rec.add(Write.delete("slot", key))
        if choice < 0.75:
            value = self.value(tag)
            session.add(S(owner=key[0], code=key[1], value=value))
            rec.add(Write.insert("slot", key, value=value))
            session.flush()

    def change_primary_key(
        self, session: Session, rng: random.Random, rec: Recorder, tag: str
    ) -> None:
        """Give one of our own articles a new primary key (unlinking its tags first: the
        link table's foreign key has no ON UPDATE CASCADE)."""
        session.flush()
        for key in rng.sample(self.own_articles, min(3, len(self.own_articles))):
            obj = self.locked_article(session, key)
            if obj is not None:
                break
        else:
            return
        linked = self.synced_tags(session, obj)
        if linked:
            obj.tags = []
            rec.add(*(Write.delete("article_tag", (key, t)) for t in sorted(linked)))
            session.flush()
        new_key = self.new_own_id()
        obj.id = new_key
        assigned = {}
        if rng.random() < 0.5:
            assigned["name"] = obj.name = self.value(tag)
        session.flush()
        rec.add(Write.rekey("article", (key,), (new_key,), **assigned))

    def savepoint(self, session: Session, rng: random.Random, rec: Recorder, tag: str) -> None:
        """Some operations in a SAVEPOINT, released or rolled back (also after a conflict)."""
        rec.begin_savepoint()
        nested = session.begin_nested()
        try:
            for _ in range(rng.randint(1, 2)):
                self.random_operation(session, rng, rec, tag, nested=True)
            session.flush()
        except sa.exc.IntegrityError as exc:
            if from_history_statement(exc) or classify(exc)[0] != "integrity":
                raise
            # The application's answer to a conflict: undo the savepoint, carry on.
            nested.rollback()
            rec.rollback_savepoint()
            self.stats.savepoints_rolled_back += 1
            return
        if rng.random() < 0.5:
            nested.rollback()
            rec.rollback_savepoint()
            self.stats.savepoints_rolled_back += 1
        else:
            nested.commit()
            rec.release_savepoint()

    def random_operation(
        self,
        session: Session,
        rng: random.Random,
        rec: Recorder,
        tag: str,
        nested: bool = False,
        index: Optional[int] = None,
    ) -> None:
        choices = [op for op in self.ops if not (nested and op[0] == "savepoint")]
        if index is not None:
            name, _, op = choices[index % len(choices)]
        else:
            name, _, op = rng.choices(choices, weights=[w for _, w, _ in choices])[0]
        self.stats.operations[name] += 1
        op(session, rng, rec, tag)
        if rng.random() < 0.3:
            session.flush()

    # -- transactions ------------------------------------------------------------------

    def plan(self, count: int) -> tuple[int, bool, Optional[int]]:
        """Seed, whether to roll back on purpose, and forced first operation of transaction
        ``count``. The first transactions go through every operation once, so that even a
        short run has each kind."""
        forced = count if count < len(self.ops) else None
        return self.rng.randrange(2**32), self.rng.random() < 0.04, forced

    def body(
        self, session: Session, seed: int, forced: Optional[int], rec: Recorder, tag: str
    ) -> None:
        rng = random.Random(seed)
        for number in range(rng.randint(1, self.settings.operations)):
            self.random_operation(session, rng, rec, tag, index=forced if number == 0 else None)
        session.flush()

    def next_tag(self) -> str:
        self._attempts += 1
        return f"{self.run_id}:{self.number}:{self._attempts}"

    def failed(self, tag: str, exc: BaseException) -> str:
        """Count a failed (rolled back) attempt and return its kind; re-raise ``exc`` if it
        is not retryable."""
        self.log.rollback(tag)
        kind, cause = classify(exc)
        if kind is None:
            raise exc
        if from_history_statement(cause):
            if kind == "integrity":
                self.stats.history_errors.append(f"{type(exc).__name__}: {exc}"[:500])
            else:
                self.stats.history_retries[kind] += 1
        self.stats.retries[kind] += 1
        self.last_failure = f"{kind}: {str(cause).splitlines()[0][:300]}"
        return kind

    def rolled_back(self, tag: str) -> None:
        self.log.rollback(tag)
        self.stats.rollbacks += 1

    def committed(self, ticket: int, tag: str, rec: Recorder) -> None:
        self.log.commit(ticket, tag, rec.writes)
        self.stats.commits += 1

    def plans(self, deadline: float) -> Iterator[tuple[int, bool, Optional[int]]]:
        """The transactions to carry out until ``deadline`` (``time.monotonic()``)."""
        count = 0
        limit = self.settings.transactions
        while time.monotonic() < deadline and (limit is None or count < limit):
            yield self.plan(count)
            count += 1

    def attempts(self) -> Iterator[tuple[str, Recorder]]:
        """Tags and recorders for the attempts of one transaction (the caller stops at the
        one that commits); after ``MAX_ATTEMPTS`` the transaction is given up."""
        for _ in range(MAX_ATTEMPTS):
            yield self.next_tag(), Recorder()
        self.stats.gave_up.append(self.last_failure)


MAX_ATTEMPTS = 100
#: The kind of error after which an application forgets the objects it holds: one of them
#: names a row that is gone, and the retry (same plan) would pick it again.
STALE = "stale row"


def reset(session: Session) -> None:
    """Roll back after a failed attempt.

    When the database already ended the transaction (MariaDB after a deadlock inside a
    savepoint), ``ROLLBACK TO SAVEPOINT`` fails; then drop the connection instead.
    """
    try:
        session.rollback()
    except sa.exc.DBAPIError:
        session.invalidate()


def run_sync_writer(writer: Writer, make_session: Callable[[], Session], deadline: float) -> None:
    """Run ``writer`` in this thread until ``deadline`` (``time.monotonic()``)."""
    with make_session() as session:
        for seed, roll_back, forced in writer.plans(deadline):
            for tag, rec in writer.attempts():
                try:
                    with versioning_context(remote_addr=tag):
                        writer.body(session, seed, forced, rec, tag)
                        if roll_back:
                            session.rollback()
                            writer.rolled_back(tag)
                            break
                        ticket = writer.log.ticket()
                        session.commit()
                    writer.committed(ticket, tag, rec)
                    break
                except Exception as exc:  # classified; re-raised unless retryable
                    reset(session)
                    if writer.failed(tag, exc) == STALE:
                        session.expunge_all()


async def run_async_writer(
    writer: Writer, make_session: Callable[[], Any], deadline: float
) -> None:
    """Run ``writer`` as an asyncio task until ``deadline``: the same plan through an
    ``AsyncSession`` (the operations run in ``run_sync``, commit and rollback are awaited)."""
    async with make_session() as session:
        for seed, roll_back, forced in writer.plans(deadline):
            for tag, rec in writer.attempts():
                try:
                    with versioning_context(remote_addr=tag):
                        await session.run_sync(writer.body, seed, forced, rec, tag)
                        if roll_back:
                            await session.rollback()
                            writer.rolled_back(tag)
                            break
                        ticket = writer.log.ticket()
                        await session.commit()
                    writer.committed(ticket, tag, rec)
                    break
                except Exception as exc:  # classified; re-raised unless retryable
                    await session.run_sync(reset)
                    if writer.failed(tag, exc) == STALE:
                        session.expunge_all()


# -- a whole run ------------------------------------------------------------------------------


@dataclasses.dataclass
class RunResult:
    settings: Settings
    database: str
    strategy: str
    mode: str
    elapsed: float
    stats: Stats
    report: Report
    log: Log
    #: Writers that stopped on an error that is not retryable (a bug), with tracebacks.
    crashed: list[str]

    @property
    def anomalies(self) -> int:
        return sum(self.report.counts.values()) + len(self.stats.history_errors)

    @property
    def ok(self) -> bool:
        return not self.crashed and self.anomalies == 0 and self.stats.commits > 0

    def summary(self) -> str:
        s = self.stats
        rate = s.commits / self.elapsed if self.elapsed else 0.0
        lines = [
            f"{self.database} {self.mode} {self.strategy}: {self.settings.writers} writers, "
            f"seed {self.settings.seed}, {self.elapsed:.1f} s",
            f"  commits: {s.commits} ({rate:.0f}/s), rolled back on purpose: {s.rollbacks}, "
            f"savepoints rolled back: {s.savepoints_rolled_back}, gave up: {len(s.gave_up)}",
            f"  retries: {sum(s.retries.values())} {dict(sorted(s.retries.items()))}",
        ]
        if s.gave_up:
            lines.append("  last error of each transaction given up:")
            lines.extend(f"      {e}" for e in sorted(set(s.gave_up))[:5])
        if s.history_retries:
            by_kind = dict(sorted(s.history_retries.items()))
            lines.append(f"  of which raised by history statements: {by_kind}")
        if s.history_errors:
            lines.append(f"  history_statement_failed: {len(s.history_errors)}")
            lines.extend(f"      e.g. {e}" for e in s.history_errors[:5])
        lines.append("  " + self.report.summary().replace("\n", "\n  "))
        lines.extend(self.crashed)
        lines.append(f"  reproduce the plans with seed={self.settings.seed}")
        return "\n".join(lines)


def seed_rows(session: Session, models: Models, settings: Settings, log: Log) -> None:
    """Insert the shared tags, articles and slots in one logged transaction."""
    tag = "seed"
    writes: list[Write] = []
    with versioning_context(remote_addr=tag):
        tags = []
        for key in range(1, settings.tags + 1):
            tags.append(models.Tag(id=key, name=f"tag {key}"))
            writes.append(Write.insert("tag", (key,), name=f"tag {key}"))
        session.add_all(tags)
        for key in range(1, settings.shared_rows + 1):
            linked = tags[: key % 3]
            values = {"name": f"article {key}", "content": "c0", "rank": key}
            session.add(models.Article(id=key, tags=linked, **values))
            writes.append(Write.insert("article", (key,), **values))
            writes.extend(Write.insert("article_tag", (key, t.id)) for t in linked)
            session.add(models.Slot(owner=0, code=f"s{key}", value="v0"))
            writes.append(Write.insert("slot", (0, f"s{key}"), value="v0"))
        session.commit()
    log.record(tag, writes)


def _run_id(seed: int) -> str:
    return f"{seed % 100000:x}"


def run_threads(engine: sa.Engine, models: Models, settings: Settings, strategy: str) -> RunResult:
    """Run ``settings.writers`` threads against ``engine`` and check the history they left."""
    log = Log()
    with Session(engine) as session:
        seed_rows(session, models, settings, log)
    writers = [
        Writer(n, models, settings, log, _run_id(settings.seed)) for n in range(settings.writers)
    ]
    crashed: list[str] = []
    start = time.monotonic()
    deadline = start + settings.seconds

    def target(writer: Writer) -> None:
        level = isolation_for(engine.dialect.name, writer.number)
        bind = engine.execution_options(isolation_level=level) if level else engine
        expire = writer.number % 2 == 1

        try:
            run_sync_writer(writer, lambda: Session(bind, expire_on_commit=expire), deadline)
        except BaseException:  # reported with the result
            crashed.append(f"writer {writer.number} crashed:\n{traceback.format_exc()}")

    threads = [
        threading.Thread(target=target, args=(w,), name=f"writer-{w.number}") for w in writers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - start
    return _result(engine, models, settings, strategy, "threads", elapsed, writers, log, crashed)


def run_tasks(async_engine: Any, models: Models, settings: Settings, strategy: str) -> RunResult:
    """Run ``settings.writers`` asyncio tasks on ``async_engine`` and check the history."""
    from sqlalchemy.ext.asyncio import AsyncSession

    log = Log()
    engine = async_engine.sync_engine
    writers = [
        Writer(n, models, settings, log, _run_id(settings.seed)) for n in range(settings.writers)
    ]
    crashed: list[str] = []

    async def main() -> float:
        async with AsyncSession(async_engine) as session:
            await session.run_sync(lambda s: seed_rows(s, models, settings, log))
        start = time.monotonic()
        deadline = start + settings.seconds

        async def task(writer: Writer) -> None:
            level = isolation_for(engine.dialect.name, writer.number)
            bind = async_engine.execution_options(isolation_level=level) if level else async_engine
            expire = writer.number % 2 == 1
            try:
                await run_async_writer(
                    writer, lambda: AsyncSession(bind, expire_on_commit=expire), deadline
                )
            except BaseException:  # reported with the result
                crashed.append(f"writer {writer.number} crashed:\n{traceback.format_exc()}")

        await asyncio.gather(*(task(w) for w in writers))
        elapsed = time.monotonic() - start
        await async_engine.dispose()
        return elapsed

    elapsed = asyncio.run(main())
    return _result(engine, models, settings, strategy, "asyncio", elapsed, writers, log, crashed)


def _result(
    engine: sa.Engine,
    models: Models,
    settings: Settings,
    strategy: str,
    mode: str,
    elapsed: float,
    writers: Sequence[Writer],
    log: Log,
    crashed: list[str],
) -> RunResult:
    stats = Stats()
    for writer in writers:
        stats.merge(writer.stats)
    # A plain engine through the synchronous driver (the writers' may be an async one).
    checker = sa.create_engine(
        engine.url.set(drivername=_sync_driver(engine)), poolclass=sa.pool.NullPool
    )
    try:
        report = check_history(checker, models.schema(), log)
    finally:
        checker.dispose()
    return RunResult(
        settings, engine.dialect.name, strategy, mode, elapsed, stats, report, log, crashed
    )


def _sync_driver(engine: sa.Engine) -> str:
    """The synchronous driver for the checker (the async engine's URL names an async one)."""
    backend = engine.url.get_backend_name()
    return {
        "sqlite": "sqlite",
        "postgresql": "postgresql+psycopg2",
        "mysql": "mysql+pymysql",
        "mariadb": "mariadb+pymysql",
    }[backend]
