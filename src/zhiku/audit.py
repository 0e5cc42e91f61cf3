"""The audit log: administrative actions (knowledge bases created and deleted, keys created and revoked, accounts
created, their roles changed, disabled, passwords reset), each with who did it, readable by a tenant's admins."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from zhiku.storage.models import AuditEntry


def record(session: Session, tenant_id: str, actor: str, action: str, target: str = "", **details: Any) -> None:
    """Add one entry in ``session``'s transaction, so it is written if and only if the action is."""
    session.add(AuditEntry(tenant_id=tenant_id, actor=actor, action=action, target=target, details=details))


def read_audit_log(
    session: Session,
    tenant_id: str,
    *,
    limit: int = 100,
    before: int | None = None,
    action: str | None = None,
    since: dt.datetime | None = None,
) -> list[AuditEntry]:
    """A tenant's entries, newest first: at most ``limit``, with ids below ``before`` (the next page),
    of one ``action``, at or after ``since``."""
    query = select(AuditEntry).where(AuditEntry.tenant_id == tenant_id)
    if before is not None:
        query = query.where(AuditEntry.id < before)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    return list(session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit)))
