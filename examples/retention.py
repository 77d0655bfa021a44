"""Retention: keep history valid while removing what policy says must go, on in-memory SQLite.

Run it with ``python examples/retention.py`` (or ``python3 -m nox -s demo``). A year of
customer history is recorded; then

1. ``prune`` drops what is older than 90 days, except what reads from then on need;
2. ``purge`` erases one customer's history (right to erasure);
3. ``redact`` blanks the e-mail addresses left in history;

and after each step the history of every customer is checked: reads as of any moment from
the pruning point on answer as before, and each remaining chain of versions is contiguous.
"""

from __future__ import annotations

import datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Session, configure_mappers

from sqlalchemy_history import (
    as_of,
    make_versioned,
    prune,
    purge,
    redact,
    version_class,
    versioning_manager,
)

make_versioned(user_cls=None)


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __versioned__ = {}
    __tablename__ = "customer"
    id = sa.Column(sa.Integer, primary_key=True)
    name = sa.Column(sa.Unicode(100))
    email = sa.Column(sa.Unicode(100))
    plan = sa.Column(sa.Unicode(20))


configure_mappers()
CustomerVersion = version_class(Customer)
engine = sa.create_engine("sqlite://")
Base.metadata.create_all(engine)
transactions = versioning_manager.transaction_table
START = datetime.datetime(2025, 1, 1)


def on_day(session: Session, day: int) -> None:
    """Date the last transaction ``day`` days after 1 January (a year in a second)."""
    last = session.scalar(sa.select(sa.func.max(transactions.c.id)))
    when = START + datetime.timedelta(days=day)
    session.execute(transactions.update().where(transactions.c.id == last).values(issued_at=when))
    session.commit()


def counts(session: Session) -> str:
    versions = session.scalar(sa.select(sa.func.count()).select_from(CustomerVersion))
    txs = session.scalar(sa.select(sa.func.count()).select_from(transactions))
    return f"{versions} versions in {txs} transactions"


def reads(session: Session, days: range) -> dict[int, list[tuple[int, str, str]]]:
    """What as_of answers at the start of each day in ``days``."""
    found = {}
    for day in days:
        rows = session.scalars(as_of(Customer, START + datetime.timedelta(days=day)))
        found[day] = sorted((r.id, r.name, r.plan) for r in rows)
    return found


def check_chains(session: Session) -> None:
    """Each version ends where the next one of the same customer begins; the last is open."""
    rows = session.execute(
        sa.select(
            CustomerVersion.id, CustomerVersion.transaction_id, CustomerVersion.end_transaction_id
        ).order_by(CustomerVersion.id, CustomerVersion.transaction_id)
    ).all()
    for current, following in zip(rows, [*rows[1:], None]):
        same = following is not None and following.id == current.id
        assert current.end_transaction_id == (following.transaction_id if same else None)


with Session(engine) as session:
    customers = [
        Customer(id=i, name=f"customer {i}", email=f"c{i}@example.com", plan="free")
        for i in range(1, 6)
    ]
    session.add_all(customers)
    session.commit()
    on_day(session, 0)
    plans = ["free", "pro", "team"]
    for day in range(30, 365, 30):  # every month, each customer changes plan
        for customer in customers:
            customer.plan = plans[(day // 30 + customer.id) % 3]
        if day == 120:
            session.delete(customers.pop())  # customer 5 leaves in spring
        session.commit()
        on_day(session, day)
    print("recorded:", counts(session))

    cutoff = START + datetime.timedelta(days=365 - 90)
    kept_days = range(365 - 90, 366, 7)
    before = reads(session, kept_days)

    # 1. older than 90 days: only what reads from the cutoff on need stays
    result = prune(session, Customer, before=cutoff)
    session.commit()
    removed = f"removed {result.total} versions, {result.transactions} transactions"
    print(f"prune before {cutoff:%d %b}: {removed};", counts(session))
    assert reads(session, kept_days) == before
    check_chains(session)

    # 2. customer 2 asks to be forgotten
    session.delete(session.get(Customer, 2))
    session.commit()
    result = purge(session, Customer, [2])
    session.commit()
    removed = f"removed {result.total} versions, {result.transactions} transactions"
    print(f"purge customer 2: {removed};", counts(session))
    assert all(2 not in {row[0] for row in rows} for rows in reads(session, kept_days).values())
    check_chains(session)

    # 3. no e-mail address stays in history
    result = redact(session, Customer, ["email"], replacement="[redacted]")
    session.commit()
    print(f"redact e-mail: overwrote {result.total} versions;", counts(session))
    emails = set(session.scalars(sa.select(CustomerVersion.email)))
    assert emails == {"[redacted]"}, emails
    print("live e-mail kept:", session.get(Customer, 1).email)
    print("reads from the cutoff on unchanged, every chain contiguous")
