"""auto-tags: labels of a knowledge base, and the confidence of a tag given by auto-tagging

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 03:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auto_tag_labels",
        sa.Column("kb_id", sa.String(32), sa.ForeignKey("knowledge_bases.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("position", sa.Integer(), nullable=False, server_default="0"),
    )
    # Existing tags were all given by people: no confidence.
    with op.batch_alter_table("document_tags") as batch:
        batch.add_column(sa.Column("confidence", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("document_tags") as batch:
        batch.drop_column("confidence")
    op.drop_table("auto_tag_labels")
