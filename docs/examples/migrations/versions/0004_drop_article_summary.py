"""Drop a column of a versioned model: ``Article.summary``.

Autogenerate drops it from both tables, and the old values of that column go with the
version table's copy. To keep them, delete the version table's ``drop_column``: the column
then stays in the database, nullable, outside the models (``alembic check`` reports it as
a table column the models do not know until you drop it).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: Union[str, Sequence[str], None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("article_version") as batch_op:
        batch_op.drop_column("summary")
    with op.batch_alter_table("article") as batch_op:
        batch_op.drop_column("summary")


def downgrade() -> None:
    with op.batch_alter_table("article") as batch_op:
        batch_op.add_column(
            sa.Column("summary", sa.Unicode(length=500), server_default="", nullable=False)
        )
    with op.batch_alter_table("article_version") as batch_op:
        batch_op.add_column(sa.Column("summary", sa.Unicode(length=500), nullable=True))
