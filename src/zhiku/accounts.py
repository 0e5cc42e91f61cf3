"""People: accounts of a tenant with Argon2id-hashed passwords and a role, and the login sessions of the web UI.

A session is an opaque random token in an ``HttpOnly`` cookie (see :mod:`zhiku.api.sessions`); only its SHA-256
is stored, so logging out, disabling the account or resetting its password deletes the rows and the session ends
on every server process at once. Each session carries a CSRF token that the UI sends back on writes.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import unicodedata
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from zhiku.audit import record
from zhiku.core import Zhiku
from zhiku.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from zhiku.keys import ROLE_SCOPES, Principal, bootstrap_session, check_tenant, hash_key
from zhiku.storage.lookup import find_by_id, shown
from zhiku.storage.models import Account, LoginSession, utcnow

ROLES = tuple(ROLE_SCOPES)
"""``reader`` searches and reads, ``editor`` also adds and changes documents, ``admin`` also manages the tenant."""
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
"""Characters; longer input is refused before hashing (Argon2 would hash it, but there is no reason to)."""
_LOGIN = re.compile(r"^[^\W_][\w.+@-]{0,253}$")
_HASHER = PasswordHasher()  # argon2-cffi's defaults: Argon2id, RFC 9106's low-memory parameters
# Verified against when the login names no account, so that an unknown login takes as long as a wrong password.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))
WRONG_CREDENTIALS = "wrong login or password"


@dataclass(frozen=True)
class SessionInfo:
    """A verified session: who it acts as and the CSRF token its writes must carry."""

    principal: Principal
    account: Account
    csrf_token: str
    expires_at: dt.datetime


def normalize_login(login: str) -> str:
    """A login as stored: NFKC, trimmed, case-folded; ``InvalidInputError`` unless it is 1-254 letters, digits and
    ``. _ + @ -`` starting with a letter or digit (user names in any script, and e-mail addresses)."""
    folded = unicodedata.normalize("NFKC", login if isinstance(login, str) else "").strip().casefold()
    if not _LOGIN.match(folded):
        raise InvalidInputError(
            "a login is 1-254 letters, digits and '.', '_', '+', '@', '-', starting with a letter or digit "
            "(a user name or an e-mail address)",
            param="login",
        )
    return folded


def check_password(password: str) -> str:
    """``password`` if it is acceptable as a new password, else ``InvalidInputError``."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD or not password.strip():
        raise InvalidInputError(
            f"a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters, not only spaces", param="password"
        )
    return password


def check_role(role: str) -> str:
    """``role`` if it is one of :data:`ROLES`, else ``InvalidInputError``."""
    if role not in ROLES:
        raise InvalidInputError(f"role must be one of {', '.join(ROLES)}; got {role!r}", param="role")
    return role


def _hash(password: str) -> str:
    return _HASHER.hash(password.encode("utf-8", "surrogatepass"))


def _matches(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password.encode("utf-8", "surrogatepass"))
    except (VerificationError, InvalidHashError):
        return False


def new_password() -> str:
    """A generated password (96 random bits), for invitations and resets; shown once."""
    return secrets.token_urlsafe(12)


def create_account(
    zhiku: Zhiku, tenant_id: str, login: str, role: str, password: str | None = None, *, created_by: str = "cli"
) -> tuple[Account, str | None]:
    """Create an account; returns it and the generated password when none was given (shown once)."""
    generated = None
    if password is None:
        password = generated = new_password()
    with zhiku.db.session() as session:
        row = _add_account(session, tenant_id, login, role, password, created_by)
    return row, generated


def _add_account(session: Session, tenant_id: str, login: str, role: str, password: str, created_by: str) -> Account:
    row = Account(
        tenant_id=check_tenant(tenant_id),
        login=normalize_login(login),
        role=check_role(role),
        password_hash=_hash(check_password(password)),
        created_by=created_by,
    )
    if session.scalar(select(Account.id).where(Account.login == row.login)) is not None:
        raise ConflictError(f"the login {row.login!r} is taken", param="login")
    session.add(row)
    session.flush()
    record(session, row.tenant_id, created_by, "account.create", row.id, login=row.login, role=row.role)
    return row


def list_accounts(zhiku: Zhiku, tenant_id: str | None = None) -> list[Account]:
    """Accounts (of one tenant, or all), by login."""
    query = select(Account).order_by(Account.login)
    if tenant_id is not None:
        query = query.where(Account.tenant_id == tenant_id)
    with zhiku.db.session() as session:
        return list(session.scalars(query))


def _find(session: Session, ident: str, tenant_id: str | None) -> Account:
    """An account by id, id prefix or login (of ``tenant_id`` when given)."""
    query = select(Account)
    if tenant_id is not None:
        query = query.where(Account.tenant_id == tenant_id)
    try:
        by_login = session.scalar(query.where(Account.login == normalize_login(ident)))
    except InvalidInputError:
        by_login = None
    if by_login is not None:
        return by_login
    try:
        return find_by_id(session, query, Account.id, ident, what="account")
    except NotFoundError:
        raise NotFoundError(f"no account with the login or id {shown(str(ident))}") from None


def update_account(
    zhiku: Zhiku,
    ident: str,
    *,
    tenant_id: str | None = None,
    role: str | None = None,
    disabled: bool | None = None,
    actor: str = "cli",
    actor_account: str | None = None,
) -> Account:
    """Change an account's role or disable/enable it (its sessions end when disabled). ``actor_account`` (the
    person asking) may not demote or disable themselves, and a tenant keeps at least one enabled admin."""
    with zhiku.db.session() as session:
        row = _find(session, ident, tenant_id)
        changes: dict[str, object] = {}
        if role is not None and role != row.role:
            changes["role"] = [row.role, check_role(role)]
        if disabled is not None and disabled != (row.disabled_at is not None):
            changes["disabled"] = disabled
        if not changes:
            return row
        if row.id == actor_account:
            raise PermissionDeniedError("you cannot change your own role or disable yourself; ask another admin")
        if row.role == "admin" and row.disabled_at is None and _other_admins(session, row) == 0:
            raise ConflictError(f"{row.login!r} is the tenant's last enabled admin; make another admin first")
        if role is not None:
            row.role = role
        if disabled is not None:
            row.disabled_at = utcnow() if disabled else None
            if disabled:
                session.execute(delete(LoginSession).where(LoginSession.account_id == row.id))
        record(session, row.tenant_id, actor, "account.update", row.id, login=row.login, **changes)
        return row


def _other_admins(session: Session, row: Account) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Account)
            .where(
                Account.tenant_id == row.tenant_id,
                Account.role == "admin",
                Account.disabled_at.is_(None),
                Account.id != row.id,
            )
        )
        or 0
    )


def reset_password(
    zhiku: Zhiku, ident: str, *, tenant_id: str | None = None, password: str | None = None, actor: str = "cli"
) -> tuple[Account, str]:
    """Set a new password (generated unless given), ending the account's sessions; returns it (shown once)."""
    password = check_password(password) if password is not None else new_password()
    with zhiku.db.session() as session:
        row = _find(session, ident, tenant_id)
        row.password_hash = _hash(password)
        session.execute(delete(LoginSession).where(LoginSession.account_id == row.id))
        record(session, row.tenant_id, actor, "account.password_reset", row.id, login=row.login)
        return row, password


def change_own_password(zhiku: Zhiku, account_id: str, current: str, new: str, keep_session: str | None) -> None:
    """A person changes their password: the current one must match; their other sessions end."""
    check_password(new)
    with zhiku.db.session() as session:
        row = session.get(Account, account_id)
        if row is None or not _matches(row.password_hash, current):
            raise PermissionDeniedError("the current password is wrong", param="current_password")
        row.password_hash = _hash(new)
        session.execute(
            delete(LoginSession).where(
                LoginSession.account_id == row.id, LoginSession.token_hash != hash_key(keep_session or "")
            )
        )
        record(session, row.tenant_id, f"account:{row.id}", "account.password_change", row.id, login=row.login)


def log_in(zhiku: Zhiku, login: str, password: str, *, address: str, hours: float) -> tuple[str, SessionInfo]:
    """Check a login and password and open a session; returns the cookie's token and the session.

    Raises:
        AuthenticationError: the login or the password is wrong (the message does not say which), or the account
            is disabled (said only to someone who knows the password).
    """
    try:
        normalized = normalize_login(login)
    except InvalidInputError:
        normalized = ""
    with zhiku.db.session() as session:
        row = session.scalar(select(Account).where(Account.login == normalized)) if normalized else None
        if not _matches(row.password_hash if row is not None else _DUMMY_HASH, password) or row is None:
            raise AuthenticationError(WRONG_CREDENTIALS)
        if row.disabled_at is not None:
            raise AuthenticationError("this account is disabled; ask an admin of your team to enable it")
        if _HASHER.check_needs_rehash(row.password_hash):
            row.password_hash = _hash(password)
        now = utcnow()
        token = secrets.token_urlsafe(32)
        entry = LoginSession(
            token_hash=hash_key(token),
            account_id=row.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + dt.timedelta(hours=hours),
            address=address[:64],
        )
        session.add(entry)
        row.last_login_at = now
        session.execute(delete(LoginSession).where(LoginSession.expires_at < now))  # everyone's expired ones
        principal = Principal(row.tenant_id, ROLE_SCOPES[row.role], None, row.id)
        return token, SessionInfo(principal, row, entry.csrf_token, entry.expires_at)


def session_of(zhiku: Zhiku, token: str) -> SessionInfo | None:
    """The live session of a cookie's token (unexpired, account enabled), or ``None``."""
    with zhiku.db.session() as session:
        found = session.execute(
            select(LoginSession, Account)
            .join(Account, Account.id == LoginSession.account_id)
            .where(
                LoginSession.token_hash == hash_key(token),
                LoginSession.expires_at > utcnow(),
                Account.disabled_at.is_(None),
            )
        ).first()
        if found is None:
            return None
        entry, row = found
        principal = Principal(row.tenant_id, ROLE_SCOPES[row.role], None, row.id)
        return SessionInfo(principal, row, entry.csrf_token, entry.expires_at)


def log_out(zhiku: Zhiku, token: str) -> None:
    """End the session of this token (nothing if there is none)."""
    with zhiku.db.session() as session:
        session.execute(delete(LoginSession).where(LoginSession.token_hash == hash_key(token)))


def create_bootstrap_account(zhiku: Zhiku) -> str | None:
    """Create the first admin account, ``admin`` of the ``default`` tenant, if no account exists, and return its
    generated password; ``None`` when accounts exist (one account between processes starting together:
    :func:`zhiku.keys.bootstrap_session`)."""
    with bootstrap_session(zhiku) as session:
        if session.scalar(select(Account.id).limit(1)) is not None:
            return None
        password = new_password()
        _add_account(session, "default", "admin", "admin", password, "bootstrap")
    return password
