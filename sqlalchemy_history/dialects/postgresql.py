"""SQLAlchemy-Continuum's PostgreSQL trigger helpers, which this library does not have.

Continuum's ``native_versioning`` writes history with PostgreSQL triggers, set up with
``sqlalchemy_continuum.dialects.postgresql.sync_trigger`` and friends. sqlalchemy_history
records history from the ORM (``Session`` flushes) on every database and installs no
trigger, so importing any of those names fails with an ``ImportError`` that says so
instead of a bare "no module named" error.
"""

from __future__ import annotations

from typing import NoReturn


def __getattr__(name: str) -> NoReturn:
    if name.startswith("__"):
        raise AttributeError(name)
    raise ImportError(
        f"cannot import {name!r} from sqlalchemy_history.dialects.postgresql: "
        f"SQLAlchemy-Continuum's PostgreSQL triggers (native_versioning, sync_trigger) are not "
        f"part of sqlalchemy_history, which records history from ORM flushes on every database "
        f"and installs no trigger. Remove the trigger setup (and native_versioning=True); "
        f"docs/migrating.md lists what replaces it.",
        name=name,
    )
