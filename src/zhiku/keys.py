"""API keys: create (shown once), list, revoke, verify. Only a SHA-256 of each key is stored."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from zhiku.audit import record
from zhiku.core import Zhiku
from zhiku.errors import InvalidInputError
from zhiku.storage.lookup import find_by_id
from zhiku.storage.models import Account, ApiKey, utcnow

SCOPES = ("read", "write", "admin")
"""Each scope includes the ones before it: admin > write > read."""
ROLE_SCOPES = {"reader": "read", "editor": "write", "admin": "admin"}
"""A person's role and the key scope it equals."""
KEY_PREFIX = "zk-"
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
TENANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: an API key (``key_id``), a logged-in person (``account_id``), or both (a person's
    key), or neither (the bootstrap key of the settings, or ``auth=off``)."""

    tenant_id: str
    scope: str
    key_id: str | None = None
    account_id: str | None = None

    def allows(self, needed: str) -> bool:
        """True when this principal's scope includes ``needed``."""
        return SCOPES.index(self.scope) >= SCOPES.index(needed)

    @property
    def actor(self) -> str:
        """Who, as recorded in ``created_by`` columns and the audit log: ``key:<id>`` for any key (a person's key
        included: the key is what acted), else ``account:<id>`` for a session, else ``bootstrap`` (the admin key of
        the settings, or ``auth=off``)."""
        if self.key_id == "bootstrap":  # the admin key of the settings (ZHIKU_ADMIN_API_KEY)
            return "bootstrap"
        if self.key_id is not None:
            return f"key:{self.key_id}"
        if self.account_id is not None:
            return f"account:{self.account_id}"
        return "bootstrap"


def narrower(scope: str, other: str) -> str:
    """The lesser of two scopes."""
    return min(scope, other, key=SCOPES.index)


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


def create_api_key(
    zhiku: Zhiku,
    tenant_id: str,
    scope: str,
    name: str = "",
    *,
    account_id: str | None = None,
    created_by: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key (owned by ``account_id``, or the tenant's); returns its row and the secret, which is not stored
    and cannot be shown again."""
    if scope not in SCOPES:
        raise InvalidInputError(f"scope must be one of {', '.join(SCOPES)}; got {scope!r}", param="scope")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        tenant_id=check_tenant(tenant_id),
        name=name[:200],
        prefix=secret[:10],
        key_hash=hash_key(secret),
        scopes=[scope],
        account_id=account_id,
        created_by=created_by,
    )
    with zhiku.db.session() as session:
        session.add(row)
        record(session, row.tenant_id, created_by or "cli", "key.create", row.id, scope=scope, name=row.name)
    return row, secret


def list_api_keys(zhiku: Zhiku, tenant_id: str | None = None, *, account_id: str | None = None) -> list[ApiKey]:
    """Keys (of one tenant, or all; of one person when ``account_id`` is given), newest first, revoked ones
    included."""
    query = select(ApiKey).order_by(ApiKey.created_at.desc())
    if tenant_id is not None:
        query = query.where(ApiKey.tenant_id == tenant_id)
    if account_id is not None:
        query = query.where(ApiKey.account_id == account_id)
    with zhiku.db.session() as session:
        return list(session.scalars(query))


def revoke_api_key(
    zhiku: Zhiku,
    key_id: str,
    tenant_id: str | None = None,
    *,
    account_id: str | None = None,
    revoked_by: str | None = None,
) -> ApiKey:
    """Revoke a key by id (or unique id prefix); ``tenant_id`` (and ``account_id``: a person's own keys)
    restrict which keys may be named."""
    with zhiku.db.session() as session:
        query = select(ApiKey)
        if tenant_id is not None:
            query = query.where(ApiKey.tenant_id == tenant_id)
        if account_id is not None:
            query = query.where(ApiKey.account_id == account_id)
        row = find_by_id(session, query, ApiKey.id, key_id, what="API key")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            record(session, row.tenant_id, revoked_by or "cli", "key.revoke", row.id, name=row.name)
        return row


def verify_api_key(zhiku: Zhiku, secret: str) -> Principal | None:
    """The principal of a valid, unrevoked key, or ``None``. A person's key acts with the lesser of its scope and
    the person's current role, and not at all while the person is disabled."""
    with zhiku.db.session() as session:
        found = session.execute(
            select(ApiKey, Account)
            .outerjoin(Account, Account.id == ApiKey.account_id)
            .where(ApiKey.key_hash == hash_key(secret))
        ).first()
        if found is None:
            return None
        row, owner = found
        if row.revoked_at is not None or (owner is not None and owner.disabled_at is not None):
            return None
        now = utcnow()
        last = row.last_used_at
        if last is None or now - (last if last.tzinfo else last.replace(tzinfo=dt.UTC)) > LAST_USED_RESOLUTION:
            row.last_used_at = now  # at most one write per key per minute
        scope = str(row.scopes[0])
        if owner is not None:
            scope = narrower(scope, ROLE_SCOPES[owner.role])
        return Principal(row.tenant_id, scope, row.id, row.account_id)


@contextlib.contextmanager
def bootstrap_session(zhiku: Zhiku) -> Iterator[Session]:
    """A session in which processes starting together (``zhiku serve --workers N``, API replicas) take turns, so
    that what the first start creates (the admin key, the admin account) is created once between them: a file lock
    in the home serialises the processes of one machine, a PostgreSQL advisory lock (held to the end of the
    transaction) those of several."""
    lock_path = zhiku.settings.ensure_home() / ".bootstrap.lock"
    with lock_path.open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        with zhiku.db.session() as session:
            if session.get_bind().dialect.name == "postgresql":
                session.execute(text("SELECT pg_advisory_xact_lock(7262533)"))
            yield session


def create_bootstrap_key(zhiku: Zhiku) -> str | None:
    """Create the first admin key of the ``default`` tenant if no unrevoked key exists, and return its secret;
    ``None`` when keys exist (one key between processes starting together: :func:`bootstrap_session`)."""
    with bootstrap_session(zhiku) as session:
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
                created_by="bootstrap",
            )
        )
    return secret
