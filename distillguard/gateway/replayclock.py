"""The replay clock: exchange times taken from a request header, for replaying a simulated world.

A simulated world spans weeks; replayed through the gateway at accelerated speed, the wall clock
would squeeze it into minutes and change what detection sees (hour of day, synchrony, creation
bursts). With ``replay_clock.enabled`` the gateway records the time a trusted replay driver sends
in ``replay_clock.header`` (epoch milliseconds) instead of its own clock.

Off by default, and never for clients: an attacker who could set the recorded time would spread a
burst over weeks or stack it onto a benign account's hours. So the header is honoured only when the
option is on *and* the socket peer (not X-Forwarded-For, which a client writes) is in
``replay_clock.trusted_peers``; otherwise the gateway's own clock stands. When the option is on the
header is removed before fingerprinting and before the request goes upstream, so the replay does not
change the client fingerprint the store records.
"""

from __future__ import annotations

import ipaddress

#: Accepted range of a replayed time (2000-01-01 .. 2100-01-01, epoch ms): a typo is refused, not recorded.
_MIN_MS, _MAX_MS = 946_684_800_000, 4_102_444_800_000


class ReplayClock:
    def __init__(self, header: str, trusted_peers: list[str]):
        self.header = header.lower().encode()
        self.nets = [ipaddress.ip_network(n, strict=False) for n in trusted_peers]

    def _trusted(self, scope) -> bool:
        peer = scope.get("client")
        if not peer:
            return False
        try:
            a = ipaddress.ip_address(peer[0])
        except ValueError:
            return False
        return any(a in n for n in self.nets)

    def take(self, scope, raw_headers, ts_ms: int) -> tuple[int, list]:
        """(recorded time, headers without the replay header). Untrusted peers keep ``ts_ms``."""
        found = None
        rest = []
        for k, v in raw_headers:
            if k == self.header:
                found = v
            else:
                rest.append((k, v))
        if found is None:
            return ts_ms, raw_headers
        if self._trusted(scope):
            try:
                t = int(found)
            except ValueError:
                t = None
            if t is not None and _MIN_MS <= t < _MAX_MS:
                ts_ms = t
        return ts_ms, rest
