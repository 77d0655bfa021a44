"""The benchmark workloads: what is timed, and the check of what each one wrote.

Every workload prepares its data outside the timed section, times exactly one block
(``ctx.timed()``), then checks the database: row counts of the parent, version and
transaction tables, closed validity rows, and the values read back. A workload whose
check fails raises ``CheckFailed``; the harness reports it as failed, never as a time.
A feature an implementation lacks raises ``Unsupported`` (reported as "not supported").

Workloads run in every implementation's process through the same code; the only
library calls are the API the three libraries share (``version_class``, ``versions``,
``previous``, ``changeset``, ``revert``, temporal relationships on version classes).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import gc
import random
import threading
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any, Callable, Optional

import sqlalchemy as sa
from models import Models
from sqlalchemy.orm import Session, joinedload, selectinload


class CheckFailed(Exception):
    """What a workload wrote or read is not what it should be."""


class Unsupported(Exception):
    """The implementation lacks the feature this workload measures."""


class Context:
    """One run of one workload: engine, models, size, and the measurement."""

    def __init__(self, engine: sa.Engine, models: Models, size: int) -> None:
        self.engine = engine
        self.models = models
        self.size = size
        self.seconds: Optional[float] = None
        self.statements = 0
        self._counting = False
        # The concurrent workloads count from many threads: += on an attribute can lose one.
        self._count_lock = threading.Lock()
        #: A ``cProfile.Profile`` enabled during the timed block (``worker.py --profile``).
        self.profiler: Any = None
        #: Peak bytes allocated by Python in the timed block (``timed(memory=True)``).
        self.peak_bytes: Optional[int] = None
        #: Further results of the run (throughput workloads: commits, retries, ...).
        self.extra: dict[str, Any] = {}
        #: ``connect_args`` of ``engine``, for workloads that open an engine of their own.
        self.connect_args: dict[str, Any] = {}
        sa.event.listen(engine, "before_cursor_execute", self._count)

    def close(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._count)

    def _count(self, *args: Any) -> None:
        if self._counting:
            with self._count_lock:
                self.statements += 1

    @property
    def versioned(self) -> bool:
        return self.models.versioned

    @property
    def closes(self) -> bool:
        """Whether the implementation closes superseded versions (the ideal recorder does not)."""
        return self.models.closes

    def version_class(self, model: type) -> Any:
        self.require_reads()
        assert self.models.version_class is not None
        return self.models.version_class(model)

    def require_reads(self) -> None:
        if self.models.impl == "ideal":
            raise Unsupported("the ideal recorder only writes history; it has no read API")

    @contextlib.contextmanager
    def timed(self, memory: bool = False) -> Iterator[None]:
        """Time the block and count the statements it sends to the database (once per run).

        With ``memory``, also trace Python's allocations in the block and keep their peak
        (``peak_bytes``); the time is then slower than untraced and not reported.
        """
        if self.seconds is not None:
            raise RuntimeError("a workload times exactly one block")
        gc.collect()
        self._counting = True
        if self.profiler is not None:
            self.profiler.enable()
        if memory:
            tracemalloc.start()
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds = time.perf_counter() - start
            if memory:
                self.peak_bytes = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
            if self.profiler is not None:
                self.profiler.disable()
            self._counting = False

    # -- checks --------------------------------------------------------------------

    def count(self, table: str, where: Optional[str] = None) -> int:
        statement = sa.select(sa.func.count()).select_from(sa.table(table))
        if where:
            statement = statement.where(sa.text(where))
        with self.engine.connect() as conn:
            return int(conn.scalar(statement) or 0)

    def expect(self, what: str, actual: Any, expected: Any) -> None:
        if actual != expected:
            raise CheckFailed(f"{what}: expected {expected!r}, found {actual!r}")

    def expect_rows(self, table: str, expected: int, where: Optional[str] = None) -> None:
        label = f"rows in {table}" + (f" where {where}" if where else "")
        self.expect(label, self.count(table, where), expected)

    def expect_recorded(self, what: str, table: str, expected: int, where: str) -> None:
        """Check that ``what`` left its history; a peer that records nothing for it lacks
        the feature (reported as not supported), this project fails the check."""
        found = self.count(table, where)
        if found == 0 and expected and self.models.impl in ("history", "continuum", "ideal"):
            raise Unsupported(f"{what} leaves no history ({table} has no row where {where})")
        self.expect(f"rows in {table} where {where}", found, expected)


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    title: str
    #: "write": ratio to plain SQLAlchemy doing the same writes; "read": plain runs an
    #: equivalent read of live rows when ``plain`` is True, otherwise times are absolute.
    kind: str
    default_size: int
    quick_size: int
    run: Callable[[Context], None]
    #: Whether plain SQLAlchemy has an equivalent to time.
    plain: bool = True
    #: What the size counts, for the report.
    unit: str = "rows"
    #: What is compared: "time" (seconds of the timed block), "memory" (its peak Python
    #: allocations) or "throughput" (commits per second of concurrent writers).
    metric: str = "time"
    #: The implementations that run it (None: all); the others are listed as not run.
    impls: Optional[tuple[str, ...]] = None
    #: The databases it runs on (None: all).
    databases: Optional[tuple[str, ...]] = None
    #: At most this many repetitions (None: the run's setting).
    max_reps: Optional[int] = None
    #: Why some implementations do not run it, for the report.
    why_not: str = ""


WORKLOADS: dict[str, Workload] = {}


def workload(
    name: str, title: str, kind: str, default_size: int, quick_size: int, **options: Any
) -> Callable[[Callable[[Context], None]], Callable[[Context], None]]:
    def register(fn: Callable[[Context], None]) -> Callable[[Context], None]:
        WORKLOADS[name] = Workload(name, title, kind, default_size, quick_size, fn, **options)
        return fn

    return register


def _articles(m: Models, n: int, prefix: str = "a", model: Any = None) -> list[Any]:
    cls = model or m.Article
    return [cls(name=f"{prefix}{i}", content=f"content of {prefix}{i}") for i in range(n)]


def _insert(ctx: Context, objects: list[Any]) -> None:
    with Session(ctx.engine) as session:
        session.add_all(objects)
        session.commit()


def _new_transaction(ctx: Context, conn: sa.Connection) -> Any:
    transaction = ctx.models.metadata.tables["transaction"]
    issued_at = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return conn.execute(transaction.insert().values(issued_at=issued_at)).inserted_primary_key[0]


def _write_versions(
    ctx: Context,
    conn: sa.Connection,
    table: str,
    rows: list[dict[str, Any]],
    tx_id: Any,
    operation: int,
    end: Any = None,
) -> None:
    version = ctx.models.metadata.tables[f"{table}_version"]
    values = []
    for row in rows:
        value = {c.key: None for c in version.columns}
        value.update(row, transaction_id=tx_id, operation_type=operation)
        if "end_transaction_id" in value:
            value["end_transaction_id"] = end
        values.append(value)
    conn.execute(version.insert(), values)


def _insert_rows(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` and give each its new ``id`` (read back in insertion order)."""
    conn.execute(table.insert(), rows)
    ids = conn.scalars(sa.select(table.c.id).order_by(table.c.id)).all()
    for id_, row in zip(ids[-len(rows) :], rows):
        row["id"] = id_


def _seed(ctx: Context, model: Any, n: int) -> None:
    """Write N rows and the history an ORM insert would have left, with Core.

    The three libraries store an insert the same way: one ``transaction`` row and, per
    object, one version row (the columns, ``transaction_id``, ``operation_type`` 0, an open
    ``end_transaction_id``). Writing that directly keeps the slow peers' insert out of the
    setup of the update and no-op workloads; what is timed (and checked) is unchanged.
    """
    rows = [{"name": f"a{i}", "content": f"content of a{i}"} for i in range(n)]
    with ctx.engine.begin() as conn:
        _insert_rows(conn, model.__table__, rows)
        if ctx.versioned:
            _write_versions(ctx, conn, model.__table__.name, rows, _new_transaction(ctx, conn), 0)


# -- writes ------------------------------------------------------------------------


@workload("commits", "Many 1-row commits", "write", 500, 20, unit="commits")
def many_commits(ctx: Context) -> None:
    m, n = ctx.models, ctx.size
    with ctx.timed(), Session(ctx.engine) as session:
        for i in range(n):
            session.add(m.Article(name=f"a{i}", content=f"content of a{i}"))
            session.commit()
    ctx.expect_rows("article", n)
    if ctx.versioned:
        ctx.expect_rows("article_version", n, "operation_type = 0")
        ctx.expect_rows("article_version", n)
        ctx.expect_rows("transaction", n)


@workload("insert", "One commit inserting N rows", "write", 5000, 200)
def insert_rows(ctx: Context) -> None:
    m, n = ctx.models, ctx.size
    with ctx.timed(), Session(ctx.engine) as session:
        session.add_all(_articles(m, n))
        session.commit()
    ctx.expect_rows("article", n)
    if ctx.versioned:
        ctx.expect_rows("article_version", n, "operation_type = 0")
        ctx.expect_rows("article_version", n)
        ctx.expect_rows("transaction", 1)


def _update_rows(ctx: Context, model: Any, table: str, validity: bool) -> None:
    n = ctx.size
    _seed(ctx, model, n)
    with Session(ctx.engine) as session:
        objects = session.scalars(sa.select(model).order_by(model.id)).all()
        with ctx.timed():
            for obj in objects:
                obj.name = obj.name + " (edited)"
            session.commit()
    ctx.expect_rows(table, n, "name LIKE '% (edited)'")
    if ctx.versioned:
        version = f"{table}_version"
        ctx.expect_rows(version, 2 * n)
        ctx.expect_rows(version, n, "operation_type = 1")
        ctx.expect_rows("transaction", 2)
        if validity and ctx.closes:
            ctx.expect_rows(version, n, "end_transaction_id IS NOT NULL")
            ctx.expect_rows(version, n, "end_transaction_id IS NULL AND operation_type = 1")


@workload("update_validity", "One commit updating N rows (validity)", "write", 5000, 200)
def update_validity(ctx: Context) -> None:
    _update_rows(ctx, ctx.models.Article, "article", validity=True)


@workload("update_subquery", "One commit updating N rows (subquery)", "write", 5000, 200)
def update_subquery(ctx: Context) -> None:
    _update_rows(ctx, ctx.models.ArticleSub, "article_sub", validity=False)


@workload("noop", "N no-op assignments, one commit", "write", 5000, 200)
def noop_assignments(ctx: Context) -> None:
    m, n = ctx.models, ctx.size
    _seed(ctx, m.Article, n)
    with Session(ctx.engine) as session:
        objects = session.scalars(sa.select(m.Article).order_by(m.Article.id)).all()
        with ctx.timed():
            for obj in objects:
                obj.name = str(obj.name)  # an equal value: not a change
                obj.content = str(obj.content)
            session.commit()
    if ctx.versioned:
        ctx.expect_rows("article_version", n)
        ctx.expect_rows("transaction", 1)


@workload(
    "parent_children",
    "Commits touching a parent and its children",
    "write",
    200,
    10,
    unit="commits",
)
def parent_children(ctx: Context) -> None:
    """Each commit renames a category, renames two of its articles and adds one."""
    m, n = ctx.models, ctx.size
    parents = 100 if n >= 100 else n
    categories = [
        m.Category(name=f"c{i}", articles=_articles(m, 5, f"c{i}a")) for i in range(parents)
    ]
    _insert(ctx, categories)
    with Session(ctx.engine) as session:
        loaded = session.scalars(
            sa.select(m.Category).options(selectinload(m.Category.articles)).order_by(m.Category.id)
        ).all()
        with ctx.timed():
            for i in range(n):
                category = loaded[i % parents]
                category.name = f"{category.name}+"
                children = category.articles
                children[0].name = f"{children[0].name}+"
                children[1].name = f"{children[1].name}+"
                children.append(m.Article(name=f"new{i}", content="added"))
                session.commit()
    ctx.expect_rows("category", parents)
    ctx.expect_rows("article", 5 * parents + n)
    if ctx.versioned:
        ctx.expect_rows("category_version", parents + n)
        ctx.expect_rows("article_version", 5 * parents + 3 * n)
        ctx.expect_rows("transaction", 1 + n)
        if ctx.closes:
            ctx.expect_rows("category_version", n, "end_transaction_id IS NOT NULL")
            ctx.expect_rows("article_version", 2 * n, "end_transaction_id IS NOT NULL")


@workload("bulk_update", "One ORM bulk UPDATE of N rows", "write", 10_000, 200)
def bulk_update(ctx: Context) -> None:
    """``session.execute(update(Article).values(...))``: one statement for the ORM; the
    peers write no history for it (not supported)."""
    m, n = ctx.models, ctx.size
    _seed(ctx, m.Article, n)
    statement = sa.update(m.Article).values(name=m.Article.name + " (edited)")
    with ctx.timed(), Session(ctx.engine) as session:
        session.execute(statement, execution_options={"synchronize_session": False})
        session.commit()
    ctx.expect_rows("article", n, "name LIKE '% (edited)'")
    if ctx.versioned:
        ctx.expect_recorded("an ORM bulk UPDATE", "article_version", n, "operation_type = 1")
        ctx.expect_rows("article_version", 2 * n)
        ctx.expect_rows("article_version", n, "end_transaction_id IS NOT NULL")
        ctx.expect_rows("article_version", n, "end_transaction_id IS NULL AND operation_type = 1")
        ctx.expect_rows("transaction", 2)


@workload(
    "cascade_delete",
    "Delete 1 category; the database cascades to its N articles",
    "write",
    10_000,
    200,
)
def cascade_delete(ctx: Context) -> None:
    """``session.delete(category)`` with ``passive_deletes=True``: the database removes the
    articles; this project writes their DELETE versions, the peers none (not supported)."""
    m, n = ctx.models, ctx.size
    rows = [{"name": f"a{i}", "content": f"content of a{i}"} for i in range(n)]
    with ctx.engine.begin() as conn:
        category = {"name": "doomed"}
        _insert_rows(conn, m.Category.__table__, [category])
        for row in rows:
            row["category_id"] = category["id"]
        _insert_rows(conn, m.Article.__table__, rows)
        if ctx.versioned:
            tx = _new_transaction(ctx, conn)
            _write_versions(ctx, conn, "category", [category], tx, 0)
            _write_versions(ctx, conn, "article", rows, tx, 0)
    with ctx.engine.connect() as conn:
        if ctx.engine.dialect.name == "sqlite":
            # SQLite applies ON DELETE rules only where they are switched on
            conn.exec_driver_sql("PRAGMA foreign_keys = ON")
            conn.commit()
        with ctx.timed(), Session(conn) as session:
            session.delete(session.get(m.Category, category["id"]))
            session.commit()
    ctx.expect_rows("article", 0)
    ctx.expect_rows("category", 0)
    if ctx.versioned:
        ctx.expect_rows("category_version", 1, "operation_type = 2")
        ctx.expect_recorded("a cascaded delete", "article_version", n, "operation_type = 2")
        ctx.expect_rows("article_version", n, "end_transaction_id IS NOT NULL")
        ctx.expect_rows("transaction", 2)


@workload(
    "tag_commits",
    "Commits of an update and 2 many-to-many links",
    "write",
    200,
    10,
    unit="commits",
)
def tag_commits(ctx: Context) -> None:
    """Each commit renames an article and links it to two more tags (``Article.tags``):
    one version of the article and one version per association row."""
    m, n = ctx.models, ctx.size
    articles = 100 if n >= 100 else n
    _seed(ctx, m.Article, articles)
    tags = [{"name": f"t{i}"} for i in range(2 * n)]
    with ctx.engine.begin() as conn:
        _insert_rows(conn, m.Tag.__table__, tags)
        if ctx.versioned:
            _write_versions(ctx, conn, "tag", tags, _new_transaction(ctx, conn), 0)
    with Session(ctx.engine) as session:
        loaded = session.scalars(
            sa.select(m.Article).options(selectinload(m.Article.tags)).order_by(m.Article.id)
        ).all()
        tag_objects = session.scalars(sa.select(m.Tag).order_by(m.Tag.id)).all()
        with ctx.timed():
            for i in range(n):
                article = loaded[i % articles]
                article.name = f"{article.name}+"
                article.tags.append(tag_objects[2 * i])
                article.tags.append(tag_objects[2 * i + 1])
                session.commit()
    ctx.expect_rows("article_tag", 2 * n)
    ctx.expect_rows("article", min(n, articles), "name LIKE '%+'")
    if ctx.versioned:
        ctx.expect_rows("article_version", articles + n)
        ctx.expect_rows("article_tag_version", 2 * n, "operation_type = 0")
        ctx.expect_rows("article_tag_version", 2 * n)
        ctx.expect_rows("transaction", 2 + n)
        if ctx.closes:
            ctx.expect_rows("article_version", n, "end_transaction_id IS NOT NULL")


# -- scale: composite keys and many-to-many links, one flush ------------------------

#: The scale workloads compare this tree with plain SQLAlchemy (and the ideal recorder);
#: the released libraries take minutes per run at these sizes (see the insert workload).
SCALE_IMPLS = ("plain", "ours", "ideal")
SCALE_WHY = (
    "the released libraries are not run: at 20,000 rows they take minutes per run "
    "(compare the one-commit insert and update workloads)"
)
SCALE_SIZES = ((5_000, 100), (10_000, 200), (20_000, 400))
SCALE_TAGS = 50


def _seed_pairs(ctx: Context, n: int) -> None:
    """N pairs (keys ``(i % 7, "k<i>")``), each linked to one of 50 tags, with their history."""
    m = ctx.models
    tags = [{"name": f"t{i}"} for i in range(SCALE_TAGS)]
    pairs = [{"region": i % 7, "code": f"k{i}", "name": f"p{i}"} for i in range(n)]
    with ctx.engine.begin() as conn:
        _insert_rows(conn, m.Tag.__table__, tags)
        links = [
            {"region": p["region"], "code": p["code"], "tag_id": tags[i % SCALE_TAGS]["id"]}
            for i, p in enumerate(pairs)
        ]
        conn.execute(m.Pair.__table__.insert(), pairs)
        conn.execute(m.Pair.tags.property.secondary.insert(), links)
        if ctx.versioned:
            tx = _new_transaction(ctx, conn)
            _write_versions(ctx, conn, "tag", tags, tx, 0)
            _write_versions(ctx, conn, "pair", pairs, tx, 0)
            _write_versions(ctx, conn, "pair_tag", links, tx, 0)


def _load_pairs(session: Session, m: Models) -> tuple[list[Any], list[Any]]:
    pairs = session.scalars(
        sa.select(m.Pair).options(selectinload(m.Pair.tags)).order_by(m.Pair.region, m.Pair.code)
    ).all()
    tags = session.scalars(sa.select(m.Tag).order_by(m.Tag.id)).all()
    return list(pairs), list(tags)


def scale_insert(ctx: Context) -> None:
    """One flush inserting N rows keyed by two columns (an integer and a string), each
    with one many-to-many link (a table keyed by three columns)."""
    m, n = ctx.models, ctx.size
    tags = [{"name": f"t{i}"} for i in range(SCALE_TAGS)]
    with ctx.engine.begin() as conn:
        _insert_rows(conn, m.Tag.__table__, tags)
    with Session(ctx.engine) as session:
        tag_objects = session.scalars(sa.select(m.Tag).order_by(m.Tag.id)).all()
        pairs = [m.Pair(region=i % 7, code=f"k{i}", name=f"p{i}") for i in range(n)]
        with ctx.timed():
            for i, pair in enumerate(pairs):
                pair.tags.append(tag_objects[i % SCALE_TAGS])
            session.add_all(pairs)
            session.commit()
    ctx.expect_rows("pair", n)
    ctx.expect_rows("pair_tag", n)
    if ctx.versioned:
        ctx.expect_rows("pair_version", n, "operation_type = 0")
        ctx.expect_rows("pair_tag_version", n, "operation_type = 0")
        ctx.expect_rows("transaction", 1)


def scale_update(ctx: Context) -> None:
    """One flush renaming N rows keyed by two columns and moving each one's many-to-many
    link to another tag (N updates, N link deletes, N link inserts)."""
    m, n = ctx.models, ctx.size
    _seed_pairs(ctx, n)
    with Session(ctx.engine) as session:
        pairs, tags = _load_pairs(session, m)
        with ctx.timed():
            for pair in pairs:
                pair.name = f"{pair.name}+"
                pair.tags.remove(pair.tags[0])
                pair.tags.append(tags[(int(pair.code[1:]) + 1) % SCALE_TAGS])
            session.commit()
    ctx.expect_rows("pair", n, "name LIKE '%+'")
    ctx.expect_rows("pair_tag", n)
    if ctx.versioned:
        ctx.expect_rows("pair_version", 2 * n)
        ctx.expect_rows("pair_version", n, "operation_type = 1")
        ctx.expect_rows("pair_tag_version", 3 * n)
        ctx.expect_rows("pair_tag_version", n, "operation_type = 2")
        ctx.expect_rows("transaction", 2)
        if ctx.closes:
            ctx.expect_rows("pair_version", n, "end_transaction_id IS NOT NULL")
            ctx.expect_rows("pair_tag_version", n, "end_transaction_id IS NOT NULL")


def scale_delete(ctx: Context) -> None:
    """One flush deleting N rows keyed by two columns, with their many-to-many links."""
    m, n = ctx.models, ctx.size
    _seed_pairs(ctx, n)
    with Session(ctx.engine) as session:
        pairs, _ = _load_pairs(session, m)
        with ctx.timed():
            for pair in pairs:
                session.delete(pair)
            session.commit()
    ctx.expect_rows("pair", 0)
    ctx.expect_rows("pair_tag", 0)
    if ctx.versioned:
        ctx.expect_rows("pair_version", n, "operation_type = 2")
        ctx.expect_rows("pair_tag_version", n, "operation_type = 2")
        ctx.expect_rows("transaction", 2)
        if ctx.closes:
            ctx.expect_rows("pair_version", n, "end_transaction_id IS NOT NULL")


for _name, _fn, _verb in (
    ("scale_insert", scale_insert, "inserting"),
    ("scale_update", scale_update, "updating"),
    ("scale_delete", scale_delete, "deleting"),
):
    for _size, _quick in SCALE_SIZES:
        workload(
            f"{_name}_{_size // 1000}k",
            f"One flush {_verb} N composite-key rows and N links",
            "write",
            _size,
            _quick,
            impls=SCALE_IMPLS,
            why_not=SCALE_WHY,
        )(_fn)


# -- memory ----------------------------------------------------------------------------

MEMORY: dict[str, Any] = {
    "metric": "memory",
    "impls": SCALE_IMPLS,
    "max_reps": 1,
    "why_not": SCALE_WHY,
}


@workload(
    "memory_insert", "Peak memory of one flush inserting N rows", "write", 100_000, 2_000, **MEMORY
)
def memory_insert(ctx: Context) -> None:
    """Peak of Python's allocations (tracemalloc) while N new objects are flushed and
    committed; the objects exist before the measured block."""
    m, n = ctx.models, ctx.size
    objects = _articles(m, n)
    with Session(ctx.engine) as session:
        session.add_all(objects)
        with ctx.timed(memory=True):
            session.commit()
    ctx.expect_rows("article", n)
    if ctx.versioned:
        ctx.expect_rows("article_version", n)


@workload(
    "memory_update", "Peak memory of one flush updating N rows", "write", 100_000, 2_000, **MEMORY
)
def memory_update(ctx: Context) -> None:
    """Peak of Python's allocations (tracemalloc) while N changed objects are flushed and
    committed; the objects are loaded and changed before the measured block."""
    m, n = ctx.models, ctx.size
    _seed(ctx, m.Article, n)
    with Session(ctx.engine) as session:
        objects = session.scalars(sa.select(m.Article)).all()
        for obj in objects:
            obj.name = obj.name + " (edited)"
        with ctx.timed(memory=True):
            session.commit()
    ctx.expect_rows("article", n, "name LIKE '% (edited)'")
    if ctx.versioned:
        ctx.expect_rows("article_version", 2 * n)


# -- concurrent writers ----------------------------------------------------------------

#: Seconds each concurrent run lasts (``--quick``: the quick size is the seconds too).
CONCURRENT_SECONDS = 20
HOT_ROWS = 8


def _retryable(exc: BaseException) -> Optional[str]:
    """'deadlock', 'serialization' or 'lock timeout' when ``exc`` means "retry", else None."""
    error: Optional[BaseException] = exc
    while error is not None:
        message = str(getattr(error, "orig", error)).lower()
        if "deadlock" in message:
            return "deadlock"
        if "could not serialize" in message or "serialization" in message:
            return "serialization"
        if "lock wait timeout" in message or "database is locked" in message:
            return "lock timeout"
        if "savepoint" in message and "does not exist" in message:
            return "deadlock"  # MariaDB ended the transaction inside a savepoint
        error = error.__cause__ or error.__context__
    return None


def _concurrent(ctx: Context, contended: bool) -> None:
    m, writers = ctx.models, ctx.size
    seconds = CONCURRENT_SECONDS if writers >= 8 else max(1, writers // 2)
    rows = HOT_ROWS if contended else 2 * writers
    _seed(ctx, m.Article, rows)
    with ctx.engine.connect() as conn:
        ids = conn.scalars(sa.select(m.Article.id).order_by(m.Article.id)).all()
    engine = sa.create_engine(
        ctx.engine.url, pool_size=writers, max_overflow=2, connect_args=ctx.connect_args
    )
    counted = Context(engine, ctx.models, writers)  # counts statements on the writers' engine
    commits: list[int] = [0] * writers
    changes: dict[Any, int] = {i: 0 for i in ids}
    retries: dict[str, int] = {}
    errors: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def write(number: int) -> None:
        rng = random.Random(number)
        own = ids[2 * number : 2 * number + 2]
        counter = 0
        while not stop.is_set():
            chosen = rng.sample(ids, 2) if contended else list(own)
            counter += 1
            try:
                with Session(engine) as session:
                    for id_ in chosen:
                        article = session.get(m.Article, id_)
                        article.name = f"w{number}-{counter}"
                    session.commit()
            except Exception as exc:
                kind = _retryable(exc)
                with lock:
                    if kind is None:
                        errors.append(f"writer {number}: {type(exc).__name__}: {exc}"[:500])
                        stop.set()
                    else:
                        retries[kind] = retries.get(kind, 0) + 1
                continue
            with lock:
                commits[number] += 1
                for id_ in chosen:
                    changes[id_] += 1

    threads = [threading.Thread(target=write, args=(i,), daemon=True) for i in range(writers)]
    with counted.timed():
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join(120)
    counted.close()
    engine.dispose()
    if errors:
        raise CheckFailed(f"a writer failed with an error that is not a retry: {errors[0]}")
    total = sum(commits)
    assert counted.seconds is not None
    ctx.seconds = counted.seconds / max(total, 1)  # seconds per commit: lower is better
    ctx.statements = counted.statements
    ctx.extra = {
        "commits": total,
        "commits_per_s": round(total / counted.seconds, 1),
        "retries": dict(sorted(retries.items())),
        "writers": writers,
        "duration_s": round(counted.seconds, 2),
    }
    if total == 0:
        raise CheckFailed("no writer committed anything")
    if ctx.versioned:
        version = ctx.models.metadata.tables["article_version"]
        with ctx.engine.connect() as conn:
            counts = dict(
                conn.execute(sa.select(version.c.id, sa.func.count()).group_by(version.c.id)).all()
            )
            for id_ in ids:
                ctx.expect(f"versions of article {id_}", counts.get(id_, 0), 1 + changes[id_])
            if ctx.closes:
                article = m.Article.__table__
                open_rows = conn.execute(
                    sa.select(version.c.id, version.c.name, article.c.name)
                    .join(article, article.c.id == version.c.id)
                    .where(version.c.end_transaction_id.is_(None))
                ).all()
                ctx.expect("articles with one open version", len(open_rows), len(ids))
                for id_, recorded, live in open_rows:
                    ctx.expect(f"open version of article {id_}", recorded, live)


CONCURRENT = {
    "unit": "writers",
    "metric": "throughput",
    "databases": ("postgresql", "mysql"),
    "max_reps": 1,
}


@workload("concurrent_contended", "N writer threads on 8 shared rows", "write", 16, 4, **CONCURRENT)
def concurrent_contended(ctx: Context) -> None:
    """Writer threads commit for 20 s, each commit renaming 2 of 8 shared articles picked
    at random (in no fixed order, so deadlocks happen; each is retried and counted). Then
    the history is checked against the writers' log: every row has one version per
    committed change plus its insert and, where the implementation closes versions,
    exactly one open version, equal to the row."""
    _concurrent(ctx, contended=True)


@workload(
    "concurrent_disjoint", "N writer threads on rows of their own", "write", 16, 4, **CONCURRENT
)
def concurrent_disjoint(ctx: Context) -> None:
    """Writer threads commit for 20 s, each commit renaming the writer's own 2 articles;
    checked against the writers' log as in the contended workload."""
    _concurrent(ctx, contended=False)


# -- reads ---------------------------------------------------------------------------


@workload(
    "deep_history",
    "Read a deep history: versions, walk previous, changesets",
    "read",
    300,
    20,
    plain=False,
    unit="versions",
)
def deep_history(ctx: Context) -> None:
    ctx.require_reads()
    m, n = ctx.models, ctx.size
    with Session(ctx.engine) as session:
        article = m.Article(name="v0", content="deep")
        session.add(article)
        session.commit()
        for i in range(1, n):
            article.name = f"v{i}"
            session.commit()
        article_id = article.id
    with ctx.timed(), Session(ctx.engine) as session:
        article = session.get(m.Article, article_id)
        versions = article.versions.all()
        walked, version = 1, versions[-1]
        while True:
            version = version.previous
            if version is None:
                break
            walked += 1
        changesets = [v.changeset for v in versions]
    ctx.expect("versions loaded", len(versions), n)
    ctx.expect("versions walked through previous", walked, n)
    for i, changes in enumerate(changesets):
        ctx.expect(
            f"changeset of version {i}", changes.get("name"), [f"v{i - 1}" if i else None, f"v{i}"]
        )
    ctx.expect_rows("transaction", n)


def _temporal_setup(ctx: Context) -> int:
    """Write the history of 10 categories and N/2 articles over two transactions, with Core.

    Transaction 1 inserts category k named "c<k>-1" and article i in category i % 10;
    transaction 2 renames every category to "c<k>-2", renames every article and moves it to
    category (i + 1) % 10. The rows are what the libraries write for that (versions of
    transaction 1 closed by transaction 2 under the validity strategy), written directly so
    that the slow peers' writes stay out of a read benchmark. Returns the article versions.
    """
    m = ctx.models
    half = ctx.size // 2
    with ctx.engine.begin() as conn:
        tx1, tx2 = _new_transaction(ctx, conn), _new_transaction(ctx, conn)
        categories = [{"name": f"c{k}-2"} for k in range(10)]
        _insert_rows(conn, m.Category.__table__, categories)
        ids = [c["id"] for c in categories]
        second = [
            {"name": f"a{i}-2", "content": f"content of a{i}", "category_id": ids[(i + 1) % 10]}
            for i in range(half)
        ]
        _insert_rows(conn, m.Article.__table__, second)
        first = [
            {**row, "name": f"a{i}", "category_id": ids[i % 10]} for i, row in enumerate(second)
        ]
        renamed = [{**c, "name": f"c{k}-1"} for k, c in enumerate(categories)]
        _write_versions(ctx, conn, "category", renamed, tx1, 0, end=tx2)
        _write_versions(ctx, conn, "category", categories, tx2, 1)
        _write_versions(ctx, conn, "article", first, tx1, 0, end=tx2)
        _write_versions(ctx, conn, "article", second, tx2, 1)
    return 2 * half


def _expected_category(name: str) -> str:
    """The category name an article version should see as of its own transaction."""
    base, _, second = name.partition("-")
    i = int(base[1:])
    return f"c{(i + 1) % 10}-2" if second else f"c{i % 10}-1"


def _temporal(ctx: Context, loader: Optional[Callable[[Any], Any]]) -> None:
    m = ctx.models
    if not ctx.versioned:
        # Plain SQLAlchemy: the same number of live rows with their category.
        half = ctx.size // 2
        categories = [m.Category(name=f"c{k}-1") for k in range(10)]
        articles = _articles(m, 2 * half)
        for i, article in enumerate(articles):
            article.category = categories[i % 10]
        _insert(ctx, categories + articles)
        statement = sa.select(m.Article).order_by(m.Article.id)
        if loader is not None:
            statement = statement.options(loader(m.Article.category))
        with ctx.timed(), Session(ctx.engine) as session:
            seen = [(a.name, a.category.name) for a in session.scalars(statement)]
        ctx.expect("rows read", len(seen), 2 * half)
        for name, category in seen:
            ctx.expect(f"category of {name}", category, f"c{int(name[1:]) % 10}-1")
        return
    article_version = ctx.version_class(m.Article)
    relation = getattr(article_version, "category", None)
    if relation is None:
        raise Unsupported(
            f"{article_version.__name__} has no temporal relationship 'category' "
            f"(the version class does not reflect Article.category)"
        )
    if loader is not None and "category" not in sa.inspect(article_version).relationships:
        raise Unsupported(
            f"{article_version.__name__}.category is not a mapped relationship, so "
            f"{loader.__name__}() cannot load it"
        )
    expected = _temporal_setup(ctx)
    statement = sa.select(article_version).order_by(
        article_version.id, article_version.transaction_id
    )
    if loader is not None:
        statement = statement.options(loader(relation))
    with ctx.timed(), Session(ctx.engine) as session:
        seen = [
            (v.name, v.category.name if v.category is not None else None)
            for v in session.scalars(statement)
        ]
    ctx.expect("versions read", len(seen), expected)
    for name, category in seen:
        ctx.expect(
            f"category of version {name!r} as of its transaction",
            category,
            _expected_category(name),
        )


@workload(
    "temporal_lazy",
    "Temporal relationship of N versions, lazy loads",
    "read",
    2000,
    100,
    unit="versions",
)
def temporal_lazy(ctx: Context) -> None:
    _temporal(ctx, None)


@workload(
    "temporal_eager",
    "Temporal relationship of N versions, selectinload",
    "read",
    2000,
    100,
    unit="versions",
)
def temporal_eager(ctx: Context) -> None:
    _temporal(ctx, selectinload)


@workload(
    "temporal_joined",
    "Temporal relationship of N versions, joinedload",
    "read",
    2000,
    100,
    unit="versions",
)
def temporal_joined(ctx: Context) -> None:
    """The same read with ``joinedload()``: one query, the temporal join in its FROM."""
    _temporal(ctx, joinedload)


@workload(
    "revert",
    "Revert N objects with their one-to-many relation",
    "read",
    200,
    10,
    plain=False,
    unit="objects",
)
def revert_relations(ctx: Context) -> None:
    """Each category had 3 articles; then it was renamed, one article renamed, one removed
    from it and a new one added. Reverting to the first version with relations=["articles"]
    must restore the name and exactly the 3 original articles with their names."""
    ctx.require_reads()
    m, n = ctx.models, ctx.size
    with Session(ctx.engine) as session:
        categories = [
            m.Category(name=f"c{i}", articles=_articles(m, 3, f"c{i}a")) for i in range(n)
        ]
        session.add_all(categories)
        session.commit()
        original = {c.id: sorted((a.id, a.name) for a in c.articles) for c in categories}
        names = {c.id: c.name for c in categories}
        category_version = ctx.version_class(m.Category)
        first_tx = session.scalar(sa.select(sa.func.min(category_version.transaction_id)))
        for category in categories:
            category.name = f"{category.name} renamed"
            category.articles[0].name = "renamed"
            category.articles.remove(category.articles[1])
            category.articles.append(m.Article(name="new", content="added later"))
        session.commit()
    with Session(ctx.engine) as session:
        versions = session.scalars(
            sa.select(category_version)
            .where(category_version.transaction_id == first_tx)
            .order_by(category_version.id)
        ).all()
        ctx.expect("versions to revert", len(versions), n)
        with ctx.timed():
            try:
                for version in versions:
                    version.revert(relations=["articles"])
            except Exception as exc:
                if isinstance(exc, NotImplementedError) or "not implemented" in str(exc):
                    raise Unsupported(f"revert(relations=['articles']): {exc}") from exc
                raise
            session.commit()
    with Session(ctx.engine) as session:
        for category in session.scalars(sa.select(m.Category).order_by(m.Category.id)):
            ctx.expect(f"name of category {category.id}", category.name, names[category.id])
            articles = session.execute(
                sa.select(m.Article.id, m.Article.name)
                .where(m.Article.category_id == category.id)
                .order_by(m.Article.id)
            ).all()
            ctx.expect(
                f"articles of category {category.id}",
                [tuple(r) for r in articles],
                original[category.id],
            )
    ctx.expect_rows("category", n)
    ctx.expect_rows("category", 0, "name LIKE '% renamed'")
    ctx.expect_rows("transaction", 3)
    ctx.expect_rows("category_version", 3 * n)
    ctx.expect_rows("article_version", 9 * n)
