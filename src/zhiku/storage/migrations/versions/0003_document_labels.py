"""document tags, metadata and date (search filters)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 00:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("metadata", sa.JSON(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("document_date", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "document_tags",
        sa.Column("document_id", sa.String(32), sa.ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tag", sa.String(100), primary_key=True),
    )
    op.create_index("ix_document_tags_tag", "document_tags", ["tag"])


def downgrade() -> None:
    op.drop_index("ix_document_tags_tag", table_name="document_tags")
    op.drop_table("document_tags")
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("document_date")
        batch.drop_column("metadata")
