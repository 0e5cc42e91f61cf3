"""API keys: create (shown once), list, revoke, verify. Only a SHA-256 of each key is stored."""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select, text

from zhiku.core import Zhiku
from zhiku.errors import InvalidInputError
from zhiku.storage.lookup import find_by_id
from zhiku.storage.models import ApiKey, utcnow

SCOPES = ("read", "write", "admin")
"""Each scope includes the ones before it: admin > write > read."""
KEY_PREFIX = "zk-"
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
TENANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Principal:
    """Who a request acts as."""

    tenant_id: str
    scope: str
    key_id: str | None = None

    def allows(self, needed: str) -> bool:
        """True when this principal's scope includes ``needed``."""
        return SCOPES.index(self.scope) >= SCOPES.index(needed)


def hash_key(secret: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def check_tenant(tenant: str) -> str:
    """A valid tenant id or ``InvalidInputError``."""
    if not TENANT_PATTERN.match(tenant):
        raise InvalidInputError(
            f"invalid tenant {tenant!r}: 1-64 letters, digits, '_', '.', '-', starting with a letter or digit",
            param="tenant",
        )
    return tenant


def create_api_key(zhiku: Zhiku, tenant_id: str, scope: str, name: str = "") -> tuple[ApiKey, str]:
    """Create a key; returns its row and the secret, which is not stored and cannot be shown again."""
    if scope not in SCOPES:
        raise InvalidInputError(f"scope must be one of {', '.join(SCOPES)}; got {scope!r}", param="scope")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        tenant_id=check_tenant(tenant_id),
        name=name[:200],
        prefix=secret[:10],
        key_hash=hash_key(secret),
        scopes=[scope],
    )
    with zhiku.db.session() as session:
        session.add(row)
    return row, secret


def list_api_keys(zhiku: Zhiku, tenant_id: str | None = None) -> list[ApiKey]:
    """Keys (of one tenant, or all), newest first, revoked ones included."""
    query = select(ApiKey).order_by(ApiKey.created_at.desc())
    if tenant_id is not None:
        query = query.where(ApiKey.tenant_id == tenant_id)
    with zhiku.db.session() as session:
        return list(session.scalars(query))


def revoke_api_key(zhiku: Zhiku, key_id: str, tenant_id: str | None = None) -> ApiKey:
    """Revoke a key by id (or unique id prefix); ``tenant_id`` restricts which keys may be named."""
    with zhiku.db.session() as session:
        query = select(ApiKey)
        if tenant_id is not None:
            query = query.where(ApiKey.tenant_id == tenant_id)
        row = find_by_id(session, query, ApiKey.id, key_id, what="API key")
        row.revoked_at = row.revoked_at or utcnow()
        return row


def verify_api_key(zhiku: Zhiku, secret: str) -> Principal | None:
    """The principal of a valid, unrevoked key, or ``None``."""
    with zhiku.db.session() as session:
        row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(secret)))
        if row is None or row.revoked_at is not None:
            return None
        now = utcnow()
        last = row.last_used_at
        if last is None or now - (last if last.tzinfo else last.replace(tzinfo=dt.UTC)) > LAST_USED_RESOLUTION:
            row.last_used_at = now  # at most one write per key per minute
        return Principal(row.tenant_id, str(row.scopes[0]), row.id)


def create_bootstrap_key(zhiku: Zhiku) -> str | None:
    """Create the first admin key of the ``default`` tenant if no unrevoked key exists, and return its secret;
    ``None`` when keys exist. Processes starting together (``zhiku serve --workers N``, API replicas) create one key
    between them: a file lock in the home serialises the processes of one machine, a PostgreSQL advisory lock
    those of several."""
    lock_path = zhiku.settings.ensure_home() / ".bootstrap.lock"
    with lock_path.open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        with zhiku.db.session() as session:
            if session.get_bind().dialect.name == "postgresql":
                session.execute(text("SELECT pg_advisory_xact_lock(7262533)"))
            if session.scalar(select(ApiKey.id).where(ApiKey.revoked_at.is_(None)).limit(1)) is not None:
                return None
            secret = KEY_PREFIX + secrets.token_urlsafe(32)
            session.add(
                ApiKey(
                    tenant_id="default",
                    name="bootstrap admin key",
                    prefix=secret[:10],
                    key_hash=hash_key(secret),
                    scopes=["admin"],
                )
            )
        return secret
