"""Refused attempts per client address: a missing, unknown or revoked bearer token, an altered link token.
Beyond the limit in a minute (`POS_EXPORTS_API_AUTH_FAILURES_PER_MINUTE`), 429 until the oldest is a minute old,
so neither a token nor a link signature can be guessed by trying."""

from __future__ import annotations

import collections
import threading
import time

from fastapi import Request

WINDOW = 60.0  # seconds


class FailedAttempts:
    """Refused attempts of each client address in the last WINDOW seconds."""

    def __init__(self, limit: int) -> None:
        self.limit, self.lock, self.seen = limit, threading.Lock(), collections.defaultdict(collections.deque)

    def blocked(self, client: str) -> bool:
        with self.lock:
            q = self.seen[client]
            while q and q[0] < time.monotonic() - WINDOW:
                q.popleft()
            if not q:
                del self.seen[client]  # no memory kept for clients that stopped failing
            return len(q) >= self.limit

    def add(self, client: str) -> None:
        with self.lock:
            self.seen[client].append(time.monotonic())


def client_address(request: Request) -> str:
    """The client's address (behind a reverse proxy with `--proxy-headers`: the one it forwarded)."""
    return request.client.host if request.client else "?"
