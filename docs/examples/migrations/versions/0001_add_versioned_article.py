"""Add a versioned model: article, its history and the transaction table.

What ``alembic revision --autogenerate`` writes for a new ``Article`` with
``__versioned__ = {}`` (plus the ``tag`` table, not versioned yet).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "article",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("title", sa.Unicode(length=200), nullable=False),
        sa.Column("body", sa.UnicodeText(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    # The version table: the parent's columns (nullable, no defaults) plus bookkeeping.
    op.create_table(
        "article_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("title", sa.Unicode(length=200), autoincrement=False, nullable=True),
        sa.Column("body", sa.UnicodeText(), autoincrement=False, nullable=True),
        sa.Column("transaction_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("end_transaction_id", sa.BigInteger(), nullable=True),
        sa.Column("operation_type", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", "transaction_id"),
        comment="History of article (sqlalchemy_history)",
    )
    with op.batch_alter_table("article_version") as batch_op:
        batch_op.create_index("ix_article_version_end_transaction_id", ["end_transaction_id"])
        batch_op.create_index("ix_article_version_operation_type", ["operation_type"])
        batch_op.create_index("ix_article_version_transaction_id", ["transaction_id"])
    # One row per database transaction that wrote history (created once, with the first
    # versioned model).
    op.create_table(
        "transaction",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(always=False),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("issued_at", sa.DateTime(), nullable=True),
        sa.Column("remote_addr", sa.String(length=50), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "tag",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.Unicode(length=50), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("tag")
    op.drop_table("transaction")
    op.drop_table("article_version")  # drops its indexes too
    op.drop_table("article")
