"""Add a column to a versioned model: ``Article.summary``.

Autogenerate adds it to both tables. The version table's copy is always nullable and has
no default: old versions did not have the column.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("article") as batch_op:
        batch_op.add_column(
            sa.Column("summary", sa.Unicode(length=500), server_default="", nullable=False)
        )
    with op.batch_alter_table("article_version") as batch_op:
        batch_op.add_column(sa.Column("summary", sa.Unicode(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("article_version") as batch_op:
        batch_op.drop_column("summary")
    with op.batch_alter_table("article") as batch_op:
        batch_op.drop_column("summary")
