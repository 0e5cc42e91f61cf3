"""Advice logged once per client, not once per request: a client that keeps sending over-long inputs is told
once (per process), and a flood of distinct clients cannot grow the memory it takes."""

from __future__ import annotations

import threading
from collections import OrderedDict

from starlette.requests import Request

from zhiku.keys import Principal


class OncePerClient:
    """Remembers the most recent ``capacity`` clients told something; :meth:`first` is True the first time."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def first(self, client: str) -> bool:
        """True when ``client`` has not been seen (or was forgotten); marks it seen."""
        with self._lock:
            if client in self._seen:
                self._seen.move_to_end(client)
                return False
            self._seen[client] = None
            if len(self._seen) > self._capacity:
                self._seen.popitem(last=False)
            return True


def client_label(request: Request, principal: Principal) -> str:
    """Who sent a request, for logs: its API key or account id, or (auth off) its address and user agent."""
    if principal.key_id:
        return f"key {principal.key_id}"
    if principal.account_id:
        return f"account {principal.account_id}"
    host = request.client.host if request.client else "unknown"
    agent = request.headers.get("user-agent", "")[:80]
    return f"{host} ({agent or 'no user agent'})"
