"""A TLS-terminating edge's facts about the client (JA4, ASN) are recorded — only from a trusted peer.

Behind an edge the gateway never sees the client's TLS handshake; without these fields every exchange it records
lacks the client and network evidence an operation rotating its IPs keeps (issue 14: the loop replay's hydras
were tied more weakly than in their own world, which carries both).
"""

from __future__ import annotations

from openai import OpenAI

from distillguard.gateway.identity import edge_client_facts
from tests.gateway.conftest import read_exchanges

MSG = [{"role": "user", "content": "hello there"}]
EDGE = {"ja4_header": "x-client-ja4", "asn_header": "x-client-asn"}
FACTS = {"x-client-ja4": "t13d1516h2_8daaf6152771_e5627efa2ab1", "x-client-asn": "AS64500"}


def _recorded(gw) -> list[dict]:
    c = OpenAI(base_url=gw.url, api_key=gw.keys["acct-1"], max_retries=0)
    c.chat.completions.create(model="m", messages=MSG, extra_headers=FACTS)
    gw.flush()
    gw.srv.stop()  # compacts the spool into the store
    return read_exchanges(gw.tmp / "store")


def test_recorded_from_a_trusted_edge(make_gateway):
    (r,) = _recorded(make_gateway(identity={"trusted_proxies": ["127.0.0.1/32"], **EDGE}))
    assert r["tls_ja4"] == FACTS["x-client-ja4"] and r["client_asn"] == 64500


def test_ignored_from_an_untrusted_peer(make_gateway):
    (r,) = _recorded(make_gateway(identity={"trusted_proxies": ["10.0.0.0/8"], **EDGE}))
    assert r["tls_ja4"] is None and r["client_asn"] is None


def test_off_by_default(make_gateway):
    (r,) = _recorded(make_gateway(identity={"trusted_proxies": ["127.0.0.1/32"]}))
    assert r["tls_ja4"] is None and r["client_asn"] is None


def test_values_are_parsed_or_dropped():
    f = edge_client_facts({b"j": b"  abc ", b"a": b"13335"}, b"j", b"a")
    assert f == {"tls_ja4": "abc", "client_asn": 13335}
    assert edge_client_facts({b"a": b"AS-evil"}, None, b"a") == {}
    assert edge_client_facts({b"j": b"x" * 200}, b"j", None)["tls_ja4"] == "x" * 64
