"""The replay clock (bench only): off by default, and even when on, only a trusted socket peer sets the time."""

from __future__ import annotations

import time

from openai import OpenAI

from distillguard.gateway.config import GatewayConfig
from distillguard.gateway.replayclock import ReplayClock
from tests.gateway.conftest import read_exchanges

MSG = [{"role": "user", "content": "hello there"}]
SIM_MS = 1_768_176_000_000  # 2026-01-12T00:00:00Z


def _send(gw, headers):
    c = OpenAI(base_url=gw.url, api_key=gw.keys["acct-1"], max_retries=0)
    c.chat.completions.create(model="m", messages=MSG, extra_headers=headers)
    gw.flush()


def _recorded_ts_ms(gw) -> list[int]:
    gw.srv.stop()  # compacts the spool into the store
    return sorted(int(r["ts"].timestamp() * 1000) for r in read_exchanges(gw.tmp / "store"))


def test_off_by_default_header_ignored(make_gateway):
    assert GatewayConfig().replay_clock.enabled is False
    gw = make_gateway()
    before = time.time() * 1000
    _send(gw, {"x-distillguard-replay-ts": str(SIM_MS)})
    (ts,) = _recorded_ts_ms(gw)
    assert ts >= before - 1000  # the gateway's own clock, not the header's January


def test_on_trusted_peer_sets_time_and_header_not_forwarded(make_gateway):
    gw = make_gateway(replay_clock={"enabled": True})
    _send(gw, {"x-distillguard-replay-ts": str(SIM_MS)})
    _send(gw, {"x-distillguard-replay-ts": "not-a-number"})
    ts = _recorded_ts_ms(gw)
    assert ts[0] == SIM_MS and ts[1] > SIM_MS + 86_400_000  # a bad value falls back to the gateway clock


def test_on_untrusted_peer_keeps_gateway_clock(make_gateway):
    # the client is 127.0.0.1, which this configuration does not trust; a forwarded address cannot help
    gw = make_gateway(replay_clock={"enabled": True, "trusted_peers": ["10.0.0.0/8"]},
                      identity={"trusted_proxies": ["127.0.0.1/32"]})
    _send(gw, {"x-distillguard-replay-ts": str(SIM_MS), "x-forwarded-for": "10.1.2.3"})
    (ts,) = _recorded_ts_ms(gw)
    assert ts > SIM_MS + 86_400_000


def test_header_removed_when_on():
    rc = ReplayClock("x-distillguard-replay-ts", ["127.0.0.1/32"])
    hdrs = [(b"x-distillguard-replay-ts", str(SIM_MS).encode()), (b"user-agent", b"x")]
    ts, rest = rc.take({"client": ("127.0.0.1", 5)}, hdrs, 1)
    assert ts == SIM_MS and rest == [(b"user-agent", b"x")]
    ts, rest = rc.take({"client": ("192.0.2.1", 5)}, hdrs, 1)
    assert ts == 1 and rest == [(b"user-agent", b"x")]
    ts, _ = rc.take({"client": ("127.0.0.1", 5)}, [(b"x-distillguard-replay-ts", b"99")], 7)
    assert ts == 7  # out of range: refused
