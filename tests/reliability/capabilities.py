"""What the test's database can do, asked of the database (tests skip by capability).

``Capabilities(engine)`` answers the questions the reliability tests depend on: whether two
connections can hold write transactions at once, whether plain reads come from a snapshot
older than what locking reads see, how the database compares string keys, which
constraints can be deferred to COMMIT, and how to kill another connection.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any, Optional

import sqlalchemy as sa


class Capabilities:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    @property
    def concurrent_write_transactions(self) -> bool:
        """Two connections can hold open write transactions at the same time.

        SQLite locks the whole database for the first writer.
        """
        return self.dialect != "sqlite"

    @functools.cached_property
    def isolation_level(self) -> str:
        with self.engine.connect() as conn:
            return str(conn.get_isolation_level())

    @functools.cached_property
    def snapshot_reads_behind_locking_reads(self) -> bool:
        """A plain SELECT reads the snapshot taken at the transaction's first read, while
        ``SELECT ... FOR UPDATE`` and UPDATE see rows committed after it, without error.

        InnoDB's REPEATABLE READ (MySQL/MariaDB's default). PostgreSQL's REPEATABLE READ
        raises a serialization failure instead; READ COMMITTED reads are never behind.
        """
        return self.dialect in ("mysql", "mariadb") and self.isolation_level == "REPEATABLE READ"

    @functools.cached_property
    def key_comparison(self) -> tuple[bool, bool]:
        """(case-insensitive, trailing spaces ignored) for a ``String`` primary key of a
        table created with the database's defaults, found by trying it."""
        meta = sa.MetaData()
        probe = sa.Table(
            f"probe_{uuid.uuid4().hex[:8]}", meta, sa.Column("k", sa.String(20), primary_key=True)
        )
        meta.create_all(self.engine)
        try:
            with self.engine.begin() as conn:
                conn.execute(probe.insert(), [{"k": "Ab"}, {"k": "q"}])
                case = conn.scalar(sa.select(sa.func.count()).where(probe.c.k == "AB"))
                space = conn.scalar(sa.select(sa.func.count()).where(probe.c.k == "q "))
            return bool(case), bool(space)
        finally:
            meta.drop_all(self.engine)

    @property
    def deferrable_constraints(self) -> bool:
        """Foreign keys can be checked at COMMIT (``DEFERRABLE INITIALLY DEFERRED``)."""
        return self.dialect in ("postgresql", "sqlite")

    @property
    def serializable_snapshot_isolation(self) -> bool:
        """SERIALIZABLE detects write skew and may fail a transaction at COMMIT."""
        return self.dialect == "postgresql"

    def backend_id(self, conn: sa.Connection) -> Optional[Any]:
        """Return what ``kill`` needs to end ``conn``'s server session (None for SQLite)."""
        if self.dialect == "postgresql":
            return conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        if self.dialect in ("mysql", "mariadb"):
            return conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar()
        return None

    def kill(self, conn: sa.Connection, backend_id: Optional[Any]) -> None:
        """End ``conn``'s database session from outside, as a crash or an admin would.

        PostgreSQL: ``pg_terminate_backend`` from another connection; MySQL/MariaDB:
        ``KILL``; SQLite (in-process): close the driver connection under SQLAlchemy's feet.
        """
        if self.dialect == "sqlite":
            conn.connection.dbapi_connection.close()  # type: ignore[union-attr]
            return
        with self.engine.connect() as admin:
            if self.dialect == "postgresql":
                admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": backend_id})
            else:
                admin.exec_driver_sql(f"KILL {int(backend_id)}")
