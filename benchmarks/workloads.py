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
import time
from collections.abc import Iterator
from typing import Any, Callable, Optional

import sqlalchemy as sa
from models import Models
from sqlalchemy.orm import Session, selectinload


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
        #: A ``cProfile.Profile`` enabled during the timed block (``worker.py --profile``).
        self.profiler: Any = None
        sa.event.listen(engine, "before_cursor_execute", self._count)

    def close(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._count)

    def _count(self, *args: Any) -> None:
        if self._counting:
            self.statements += 1

    @property
    def versioned(self) -> bool:
        return self.models.versioned

    def version_class(self, model: type) -> Any:
        assert self.models.version_class is not None
        return self.models.version_class(model)

    @contextlib.contextmanager
    def timed(self) -> Iterator[None]:
        """Time the block and count the statements it sends to the database (once per run)."""
        if self.seconds is not None:
            raise RuntimeError("a workload times exactly one block")
        gc.collect()
        self._counting = True
        if self.profiler is not None:
            self.profiler.enable()
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds = time.perf_counter() - start
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
        if found == 0 and expected and self.models.impl in ("history", "continuum"):
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


WORKLOADS: dict[str, Workload] = {}


def workload(
    name: str,
    title: str,
    kind: str,
    default_size: int,
    quick_size: int,
    plain: bool = True,
    unit: str = "rows",
) -> Callable[[Callable[[Context], None]], Callable[[Context], None]]:
    def register(fn: Callable[[Context], None]) -> Callable[[Context], None]:
        WORKLOADS[name] = Workload(name, title, kind, default_size, quick_size, fn, plain, unit)
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
        if validity:
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


def _temporal(ctx: Context, eager: bool) -> None:
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
        if eager:
            statement = statement.options(selectinload(m.Article.category))
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
    if eager and "category" not in sa.inspect(article_version).relationships:
        raise Unsupported(
            f"{article_version.__name__}.category is not a mapped relationship, so "
            f"selectinload() cannot load it"
        )
    expected = _temporal_setup(ctx)
    statement = sa.select(article_version).order_by(
        article_version.id, article_version.transaction_id
    )
    if eager:
        statement = statement.options(selectinload(relation))
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
    _temporal(ctx, eager=False)


@workload(
    "temporal_eager",
    "Temporal relationship of N versions, selectinload",
    "read",
    2000,
    100,
    unit="versions",
)
def temporal_eager(ctx: Context) -> None:
    _temporal(ctx, eager=True)


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
