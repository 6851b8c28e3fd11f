"""Who is logged in, who may try to log in, and from where: the console's server-side security state.

Sessions live in the console's SQLite file beside the store, not only in the signed cookie: the
cookie carries a random session id, and logging out (or an expiry, or an idle timeout) revokes
the id on the server, so a copied cookie stops working too. Only a hash of the id is stored.

Login throttling is charged *before* the password is checked, under one lock: sixty parallel
guesses cannot all slip past a limit of ten because the check and the count are one step. It
counts per client address and per user name; the address is the connecting peer, or — only when
that peer is a configured trusted proxy — the first address left of the proxies in
``X-Forwarded-For``, so an office behind one reverse proxy is not one address.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import threading
import time
from collections import deque
from pathlib import Path

from distillguard.console.audit import connect


def _h(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


class SessionStore:
    """Server-side sessions with absolute and idle expiry, and revocation."""

    def __init__(self, path: Path, max_age_s: float, idle_s: float):
        self.path, self.max_age, self.idle = path, max_age_s, idle_s
        connect(path).close()  # create the tables now, not on the first request

    def create(self, user: str, client: str) -> str:
        sid = secrets.token_urlsafe(32)
        now = time.time()
        con = connect(self.path)
        try:
            con.execute("INSERT INTO sessions (sid_hash, user, created, last_seen, client) VALUES (?, ?, ?, ?, ?)",
                        [_h(sid), user, now, now, client])
            # Forget sessions that can no longer be valid, so the file does not grow without end.
            con.execute("DELETE FROM sessions WHERE created < ?", [now - self.max_age - 86400])
        finally:
            con.close()
        return sid

    def user(self, sid: str | None) -> str | None:
        """The user of a live session (and mark it used), or None for an unknown, revoked or expired one."""
        if not sid or not isinstance(sid, str):
            return None
        now = time.time()
        con = connect(self.path)
        try:
            r = con.execute("SELECT user, created, last_seen, revoked FROM sessions WHERE sid_hash = ?",
                            [_h(sid)]).fetchone()
            if r is None or r[3] is not None or now - r[1] > self.max_age or now - r[2] > self.idle:
                return None
            if now - r[2] > 30:  # write at most every 30 s per session
                con.execute("UPDATE sessions SET last_seen = ? WHERE sid_hash = ?", [now, _h(sid)])
            return r[0]
        finally:
            con.close()

    def revoke(self, sid: str | None) -> bool:
        if not sid or not isinstance(sid, str):
            return False
        con = connect(self.path)
        try:
            cur = con.execute("UPDATE sessions SET revoked = ? WHERE sid_hash = ? AND revoked IS NULL",
                              [time.time(), _h(sid)])
            return cur.rowcount > 0
        finally:
            con.close()


class LoginThrottle:
    """Login attempts per key (``addr:…``, ``user:…``) in a sliding window, charged before the check."""

    def __init__(self, window_s: float):
        self.window = window_s
        self._seen: dict[str, deque[float]] = {}
        self._refused_logged: dict[str, float] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._seen.setdefault(key, deque())
        while q and now - q[0] > self.window:
            q.popleft()
        return q

    def begin(self, limits: dict[str, int]) -> tuple[str | None, bool]:
        """Charge one attempt to every key, atomically, unless one is at its limit.

        Returns (the key that refused or None, whether this is that key's first refusal in the window,
        which is the one worth an audit row)."""
        with self._lock:
            now = time.monotonic()
            if len(self._seen) > 10_000:  # bounded memory under a spray from many addresses and names
                self._seen = {k: v for k, v in self._seen.items() if v and now - v[-1] <= self.window}
                self._refused_logged = {k: t for k, t in self._refused_logged.items() if now - t <= self.window}
            for key, limit in limits.items():
                if len(self._recent(key, now)) >= limit:
                    first = now - self._refused_logged.get(key, -1e18) > self.window
                    if first:
                        self._refused_logged[key] = now
                    return key, first
            for key in limits:
                self._recent(key, now).append(now)
            return None, False

    def succeeded(self, keys) -> None:
        """A correct login takes back its own charge (failed ones stay counted)."""
        with self._lock:
            for key in keys:
                q = self._seen.get(key)
                if q:
                    q.pop()


def parse_networks(items: list[str]) -> list:
    return [ipaddress.ip_network(x, strict=False) for x in items]


def client_address(peer: str | None, forwarded_for: str | None, trusted: list) -> str:
    """The client's address: the peer, unless the peer is a trusted proxy that says who it forwards for."""
    peer = peer or "?"

    def is_trusted(a: str) -> bool:
        try:
            ip = ipaddress.ip_address(a)
        except ValueError:
            return False
        return any(ip in n for n in trusted)

    if not trusted or not forwarded_for or not is_trusted(peer):
        return peer
    # Right to left: each trusted proxy appended the address it saw; the first untrusted one is the client.
    for part in reversed([p.strip() for p in forwarded_for.split(",")][-20:]):
        if is_trusted(part):
            continue
        try:
            return str(ipaddress.ip_address(part))
        except ValueError:
            return peer  # garbage where an address should be: fall back to what we know
    return peer
