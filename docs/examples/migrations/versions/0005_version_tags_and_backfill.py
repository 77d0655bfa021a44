"""Switch versioning on for a populated table, ``tag``, and backfill its history.

Autogenerate writes the ``create_table`` of ``tag_version`` (``__versioned__ = {}`` was
added to ``Tag``). The ``backfill`` line is added by hand: it gives every existing tag an
INSERT version, all in ONE new transaction row, with one ``INSERT ... SELECT``, so that
``tag.versions`` is complete from day one. It names the table instead of importing the
model: the migration keeps working when the models change later.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import sqlalchemy as sa
from alembic import op

from sqlalchemy_history.alembic import backfill

revision: str = "0005"
down_revision: Union[str, Sequence[str], None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "tag_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.Unicode(length=50), autoincrement=False, nullable=True),
        sa.Column("transaction_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("end_transaction_id", sa.BigInteger(), nullable=True),
        sa.Column("operation_type", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", "transaction_id"),
        comment="History of tag (sqlalchemy_history)",
    )
    with op.batch_alter_table("tag_version") as batch_op:
        batch_op.create_index("ix_tag_version_end_transaction_id", ["end_transaction_id"])
        batch_op.create_index("ix_tag_version_operation_type", ["operation_type"])
        batch_op.create_index("ix_tag_version_transaction_id", ["transaction_id"])
    backfill(op, "tag")


def downgrade() -> None:
    op.drop_table("tag_version")
