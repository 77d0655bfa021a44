"""Time as_of, the audit log, prune and purge on a large history (this tree only).

Usage::

    python benchmarks/queries.py                       # SQLite, plus databases whose URL is set
    python benchmarks/queries.py --articles 2000       # a smaller history

The history is written with Core (what the library's write path would have written, built
fast): 10 transactions; ``--articles`` articles (default 10,000) inserted by the first and
updated by each of the 9 others (so 100,000 article versions), each in one of 100
categories renamed at transaction 5, each linked to 2 of 50 tags at transaction 1, half of
those links removed at transaction 6. Then 50 small transactions through the ORM, each
editing 3 articles (the audit log's usual page). Retention runs inside a transaction that is rolled
back, so every measurement starts from the same history. Both strategies.

Prints one Markdown table per database: the statements each operation sent and its time
(best of ``--repeat`` runs).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Session, configure_mappers, relationship, selectinload

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy_history import (
    as_of,
    changes,
    make_versioned,
    prune,
    purge,
    remove_versioning,
    version_class,
    versioning_manager,
)

URLS = {
    "postgresql": "SQLALCHEMY_HISTORY_POSTGRESQL_URL",
    "mysql": "SQLALCHEMY_HISTORY_MYSQL_URL",
}
TRANSACTIONS = 10
CATEGORIES = 100
TAGS = 50
SMALL_TRANSACTIONS = 50


def define(strategy: str) -> dict[str, Any]:
    make_versioned(user_cls=None, options={"strategy": strategy})

    class Base(DeclarativeBase):
        pass

    article_tag = sa.Table(
        "bench_article_tag",
        Base.metadata,
        sa.Column("article_id", sa.ForeignKey("bench_article.id"), primary_key=True),
        sa.Column("tag_id", sa.ForeignKey("bench_tag.id"), primary_key=True),
    )

    class Category(Base):
        __versioned__ = {}
        __tablename__ = "bench_category"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
        name = sa.Column(sa.Unicode(100))

    class Tag(Base):
        __versioned__ = {}
        __tablename__ = "bench_tag"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
        name = sa.Column(sa.Unicode(100))

    class Article(Base):
        __versioned__ = {}
        __tablename__ = "bench_article"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
        name = sa.Column(sa.Unicode(100))
        body = sa.Column(sa.Unicode(200))
        category_id = sa.Column(sa.ForeignKey("bench_category.id"))
        category = relationship(Category)
        tags = relationship(Tag, secondary=article_tag)

    configure_mappers()
    return {"Base": Base, "Article": Article, "Category": Category, "Tag": Tag}


def _version_rows(rows: list[dict[str, Any]], key: str, validity: bool) -> list[dict[str, Any]]:
    """Give each row (``transaction_id`` set) its ``end_transaction_id``."""
    if not validity:
        return rows
    rows.sort(key=lambda r: (r[key], r["transaction_id"]))
    for current, following in zip(rows, [*rows[1:], None]):
        same = following is not None and following[key] == current[key]
        current["end_transaction_id"] = following["transaction_id"] if same else None
    return rows


def populate(engine: sa.Engine, models: dict[str, Any], articles: int, validity: bool) -> None:
    meta = models["Base"].metadata
    t = meta.tables
    base = datetime.datetime(2030, 1, 1)
    with engine.begin() as conn:
        # Ids from the identity column (a fresh table: 1 to 10), so that the ORM's later
        # transactions continue after them on PostgreSQL too.
        for i in range(1, TRANSACTIONS + 1):
            row = {"issued_at": base + datetime.timedelta(hours=i)}
            new_id = conn.execute(t["transaction"].insert().values(row)).inserted_primary_key
            assert new_id is not None and new_id[0] == i, new_id
        conn.execute(
            t["bench_category"].insert(),
            [{"id": i, "name": f"c{i}!"} for i in range(1, CATEGORIES + 1)],
        )
        categories = [
            {"id": i, "name": f"c{i}", "transaction_id": 1, "operation_type": 0}
            for i in range(1, CATEGORIES + 1)
        ] + [
            {"id": i, "name": f"c{i}!", "transaction_id": 5, "operation_type": 1}
            for i in range(1, CATEGORIES + 1)
        ]
        conn.execute(
            t["bench_category_version"].insert(), _version_rows(categories, "id", validity)
        )
        conn.execute(
            t["bench_tag"].insert(), [{"id": i, "name": f"t{i}"} for i in range(1, TAGS + 1)]
        )
        conn.execute(
            t["bench_tag_version"].insert(),
            _version_rows(
                [
                    {"id": i, "name": f"t{i}", "transaction_id": 1, "operation_type": 0}
                    for i in range(1, TAGS + 1)
                ],
                "id",
                validity,
            ),
        )
        last = TRANSACTIONS
        conn.execute(
            t["bench_article"].insert(),
            [
                {
                    "id": i,
                    "name": f"a{i} v{last}",
                    "body": "x" * 100,
                    "category_id": i % CATEGORIES + 1,
                }
                for i in range(1, articles + 1)
            ],
        )
        versions = [
            {
                "id": i,
                "name": f"a{i} v{tx}",
                "body": "x" * 100,
                "category_id": i % CATEGORIES + 1,
                "transaction_id": tx,
                "operation_type": 0 if tx == 1 else 1,
            }
            for i in range(1, articles + 1)
            for tx in range(1, TRANSACTIONS + 1)
        ]
        conn.execute(t["bench_article_version"].insert(), _version_rows(versions, "id", validity))
        links = [
            {"article_id": i, "tag_id": (i + k) % TAGS + 1}
            for i in range(1, articles + 1)
            for k in (0, 1)
        ]
        conn.execute(t["bench_article_tag"].insert(), [x for x in links if x["article_id"] % 2])
        link_versions = [{**x, "transaction_id": 1, "operation_type": 0} for x in links] + [
            {**x, "transaction_id": 6, "operation_type": 2}
            for x in links
            if not x["article_id"] % 2
        ]
        for row in link_versions:
            row["_key"] = (row["article_id"], row["tag_id"])
        link_versions = _version_rows(link_versions, "_key", validity)
        for row in link_versions:
            del row["_key"]
        conn.execute(t["bench_article_tag_version"].insert(), link_versions)
    analyze(engine, meta)
    # Then SMALL_TRANSACTIONS ordinary edits through the ORM (the library writes them):
    # each renames 3 of the last articles; what an audit log page usually shows.
    Article = models["Article"]
    with Session(engine) as session:
        for n in range(SMALL_TRANSACTIONS):
            for offset in range(3):
                article = session.get(Article, articles - 3 * n - offset)
                assert article is not None
                article.name = f"{article.name} (edit {n})"
            session.commit()


def analyze(engine: sa.Engine, meta: sa.MetaData) -> None:
    """Refresh the planner statistics, as a database that has lived with this history has
    them (MariaDB guessed thousands of rows per primary key value on a fresh table and
    scanned the transaction index instead)."""
    with engine.begin() as conn:
        name = engine.dialect.name
        if name == "sqlite":
            conn.exec_driver_sql("ANALYZE")
            return
        for table in meta.sorted_tables:
            quoted = engine.dialect.identifier_preparer.format_table(table)
            conn.exec_driver_sql(
                f"ANALYZE {'TABLE ' if name in ('mysql', 'mariadb') else ''}{quoted}"
            )


@contextmanager
def counting(engine: sa.Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)


def measure(
    engine: sa.Engine, repeat: int, work: Callable[[Session], Any], rollback: bool = False
) -> tuple[float, int, Any]:
    best, statements, result = float("inf"), 0, None
    for _ in range(repeat):
        with Session(engine) as session:
            session.connection()  # the transaction begins outside the timing
            with counting(engine) as seen:
                start = time.perf_counter()
                result = work(session)
                elapsed = time.perf_counter() - start
            if rollback:
                session.rollback()
        best, statements = min(best, elapsed), len(seen)
    return best, statements, result


def run(name: str, url: str, strategy: str, articles: int, repeat: int) -> list[tuple[str, ...]]:
    models = define(strategy)
    engine = sa.create_engine(url)
    meta = models["Base"].metadata
    try:
        meta.drop_all(engine)
        meta.create_all(engine)
        start = time.perf_counter()
        populate(engine, models, articles, strategy == "validity")
        built = time.perf_counter() - start
        Article = models["Article"]
        AV = version_class(Article)
        history = articles * TRANSACTIONS
        rows: list[tuple[str, ...]] = []

        def add(label: str, work: Callable[[Session], Any], rollback: bool = False) -> Any:
            seconds, statements, result = measure(engine, repeat, work, rollback)
            rows.append((name, strategy, label, str(statements), f"{seconds * 1000:.1f} ms"))
            return result

        count = add(
            f"as_of: count the {articles:,} articles at tx 5 ({history:,} versions)",
            lambda s: s.scalar(
                sa.select(sa.func.count()).select_from(as_of(Article, 5).subquery())
            ),
        )
        assert count == articles, count
        loaded = add(
            f"as_of: load all {articles:,} versions at tx 5 (ORM objects)",
            lambda s: len(s.scalars(as_of(Article, 5)).all()),
        )
        assert loaded == articles
        page = as_of(Article, 5).options(selectinload(AV.category), selectinload(AV.tags))
        page = page.order_by(AV.id).limit(50).offset(articles // 2)

        def read_page(s: Session) -> int:
            found = s.scalars(page).all()
            assert all(r.category.name.endswith("!") for r in found)  # renamed at tx 5
            return sum(len(r.tags) for r in found)

        add("as_of: a page of 50 with category and tags (selectinload)", read_page)
        moment = datetime.datetime(2030, 1, 1, 5, 30)  # tx 5 was issued at 05:00
        at_moment = as_of(Article, moment).options(selectinload(AV.category), selectinload(AV.tags))
        at_moment = at_moment.order_by(AV.id).limit(50).offset(articles // 2)
        add("as_of: the same page at a datetime", lambda s: len(s.scalars(at_moment).all()))
        add(
            f"changes: the last {SMALL_TRANSACTIONS} transactions (3 versions each)",
            lambda s: changes(s, limit=SMALL_TRANSACTIONS, newest_first=True),
        )
        add(
            f"changes: the first 5 transactions ({articles * 7:,} versions)",
            lambda s: changes(s, limit=5),
        )
        add(
            f"prune: before tx 2 (removes {articles:,} versions)",
            lambda s: prune(s, Article, before=2).total,
            rollback=True,
        )
        add(
            f"prune: before tx 3, keep_last=2 (removes {articles:,} versions)",
            lambda s: prune(s, Article, before=3, keep_last=2).total,
            rollback=True,
        )
        keys = list(range(1, articles // 10 + 1))
        add(
            f"purge: {len(keys):,} articles ({len(keys) * TRANSACTIONS:,} versions + links)",
            lambda s: purge(s, Article, keys).total,
            rollback=True,
        )
        every = list(range(1, articles + 1))
        total = history + 3 * SMALL_TRANSACTIONS
        add(
            f"purge: all {articles:,} articles ({total:,} versions + links)",
            lambda s: purge(s, Article, every).total,
            rollback=True,
        )
        rows.append((name, strategy, "(building the history with Core)", "", f"{built:.1f} s"))
        return rows
    finally:
        meta.drop_all(engine)
        engine.dispose()
        remove_versioning()
        models["Base"].registry.dispose()
        versioning_manager.reset()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sqlite", default=str(Path(".bench") / "queries.db"))
    parser.add_argument("--db", help="comma-separated: sqlite,postgresql,mysql (default: all)")
    args = parser.parse_args()
    Path(args.sqlite).parent.mkdir(parents=True, exist_ok=True)
    databases = {"sqlite": f"sqlite:///{args.sqlite}"}
    databases.update({n: os.environ[v] for n, v in URLS.items() if os.environ.get(v)})
    if args.db:
        databases = {n: u for n, u in databases.items() if n in args.db.split(",")}
    print("| database | strategy | operation | statements | time |")
    print("| --- | --- | --- | --- | --- |")
    for name, url in databases.items():
        for strategy in ("validity", "subquery"):
            for row in run(name, url, strategy, args.articles, args.repeat):
                print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
