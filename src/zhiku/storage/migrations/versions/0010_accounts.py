"""accounts, login sessions, the audit log, and who created knowledge bases, documents, jobs and keys

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 13:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_CREATED_BY = ("knowledge_bases", "documents", "jobs")


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("login", sa.String(254), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(80), nullable=True),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_accounts_tenant_id", "accounts", ["tenant_id"])
    op.create_table(
        "login_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
    )
    op.create_index("ix_login_sessions_account_id", "login_sessions", ["account_id"])
    op.create_index("ix_login_sessions_expires_at", "login_sessions", ["expires_at"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("target", sa.String(100), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
    )
    op.create_index("ix_audit_log_tenant_id_id", "audit_log", ["tenant_id", "id"])
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("account_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("created_by", sa.String(80), nullable=True))
        batch.create_foreign_key("fk_api_keys_account_id", "accounts", ["account_id"], ["id"], ondelete="CASCADE")
        batch.create_index("ix_api_keys_account_id", ["account_id"])
    for table in _CREATED_BY:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("created_by", sa.String(80), nullable=True))


def downgrade() -> None:
    for table in _CREATED_BY:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("created_by")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_index("ix_api_keys_account_id")
        batch.drop_constraint("fk_api_keys_account_id", type_="foreignkey")
        batch.drop_column("created_by")
        batch.drop_column("account_id")
    op.drop_table("audit_log")
    op.drop_table("login_sessions")
    op.drop_table("accounts")
