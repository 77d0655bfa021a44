"""Alembic environment of the worked example (docs/migrations.md).

A standard ``env.py``: the only line that matters to history is
``target_metadata = Base.metadata``. Importing the models is enough for autogenerate to
see every ``*_version`` table and the ``transaction`` table; ``configure_mappers()`` is
not needed. The ``process_revision_directives`` hook is optional (see the docs).
"""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import context
from sqlalchemy import engine_from_config, pool

from sqlalchemy_history.alembic import process_revision_directives

# In an application this is `from myapp.models import Base`.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from blog_models import Base

config = context.config
target_metadata = Base.metadata

OPTIONS = {
    "target_metadata": target_metadata,
    # SQLite cannot ALTER most things; batch mode recreates the table there and emits
    # plain ALTER TABLE elsewhere.
    "render_as_batch": True,
    "process_revision_directives": process_revision_directives,
}


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True, **OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with connectable.connect() as connection:
        context.configure(connection=connection, **OPTIONS)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
