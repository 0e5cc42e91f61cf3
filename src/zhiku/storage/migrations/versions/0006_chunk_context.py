"""chunk context: a table's header row(s), embedded and indexed with the chunk's rows

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing chunks have no context: their embedded text is their text, as before.
    with op.batch_alter_table("chunks") as batch:
        batch.add_column(sa.Column("context", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("chunks") as batch:
        batch.drop_column("context")
