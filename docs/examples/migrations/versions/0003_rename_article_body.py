"""Rename a column of a versioned model: ``body`` -> ``content``.

Autogenerate cannot tell a rename from a drop plus an add (it would write exactly that,
losing the data of both tables): write the rename by hand, for the parent AND its version
table, so that old versions keep their values under the new name.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: Union[str, Sequence[str], None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    for table in ("article", "article_version"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column("body", new_column_name="content", existing_type=sa.UnicodeText())


def downgrade() -> None:
    for table in ("article_version", "article"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column("content", new_column_name="body", existing_type=sa.UnicodeText())
