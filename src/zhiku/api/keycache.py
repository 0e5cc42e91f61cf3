"""Recently verified API keys, so that a busy key costs no database read per request (see :mod:`zhiku.api.auth`)."""

from __future__ import annotations

import threading
import time

from zhiku.keys import Principal

CACHE_SECONDS = 10.0
"""How long a verification outcome is reused; a key revoked on another process stops working within this time."""


class KeyCache:
    """Recently verified keys: hash -> (principal or None, expiry)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[Principal | None, float]] = {}
        self._revoked: set[str] = set()  # ids revoked here: a verification that raced the revocation stays out

    def get(self, key_hash: str) -> tuple[bool, Principal | None]:
        """(known, principal) for a hash seen within :data:`CACHE_SECONDS`."""
        with self._lock:
            entry = self._entries.get(key_hash)
        if entry is None or entry[1] < time.monotonic():
            return False, None
        return True, entry[0]

    def put(self, key_hash: str, principal: Principal | None) -> None:
        """Remember a verification outcome."""
        with self._lock:
            if principal is not None and principal.key_id in self._revoked:
                principal = None
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[key_hash] = (principal, time.monotonic() + CACHE_SECONDS)

    def forget_account(self, account_id: str) -> None:
        """Drop the keys of this person (just disabled, enabled again, or given another role), so their next request
        is checked against the database. Refusals go too: a refused key may be theirs (its hash does not say whose
        it is)."""
        with self._lock:
            for key_hash in [h for h, (p, _) in self._entries.items() if p is None or p.account_id == account_id]:
                del self._entries[key_hash]

    def forget(self, key_id: str) -> None:
        """Drop the key with this id (just revoked), so its next request is checked against the database."""
        with self._lock:
            self._revoked.add(key_id)
            for key_hash in [h for h, (p, _) in self._entries.items() if p is not None and p.key_id == key_id]:
                del self._entries[key_hash]
