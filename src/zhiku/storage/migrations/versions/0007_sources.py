"""Sources: git repositories and folders a knowledge base keeps in sync

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 23:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kb_id", sa.String(32), sa.ForeignKey("knowledge_bases.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("location", sa.String(2000), nullable=False),
        sa.Column("ref", sa.String(200), nullable=True),
        sa.Column("synced_commit", sa.String(64), nullable=True),  # "commit" is an SQL keyword
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_sources_kb_id", "sources", ["kb_id"])


def downgrade() -> None:
    op.drop_index("ix_sources_kb_id", table_name="sources")
    op.drop_table("sources")
