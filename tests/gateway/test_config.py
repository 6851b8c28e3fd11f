import pytest

from distillguard.errors import ConfigError
from distillguard.gateway.config import load_config
from distillguard.gateway.identity import add_key, hash_key, load_keys_file


def test_config_errors_name_the_key(tmp_path):
    f = tmp_path / "gw.yaml"
    f.write_text("limits:\n  acount: {}\n  ip24: {requests: {rate: -1}}\n")
    with pytest.raises(ConfigError) as e:
        load_config(f)
    assert "limits.acount" in str(e.value) and "limits.ip24.requests.rate" in str(e.value)
    cfg = load_config(None, **{"upstream.url": "http://h:1/v1/", "server.port": 9})
    assert cfg.upstream.url == "http://h:1/v1" and cfg.server.port == 9


def test_keys_file_is_hashed_and_validated(tmp_path):
    f = tmp_path / "keys.yaml"
    key, kid = add_key(f, "acct-9", "org-9", b"pep")
    assert key not in f.read_text() and hash_key(key, b"pep") in f.read_text()
    assert load_keys_file(f)[hash_key(key, b"pep")].account_id == "acct-9"
    f.write_text("keys:\n  - {key_hash: abc, account_id: a}\n")
    with pytest.raises(ConfigError) as e:
        load_keys_file(f)
    assert "keys.0.key_hash" in str(e.value)


def test_client_ip_trusts_only_configured_proxies_and_fingerprint():
    from distillguard.gateway.config import IdentityConfig
    from distillguard.gateway.identity import ClientIP, fingerprint

    xff = {b"x-forwarded-for": b"203.0.113.9, 10.0.0.7"}
    plain = ClientIP(IdentityConfig())
    assert plain({"client": ("10.0.0.5", 1)}, xff) == "10.0.0.5"  # nobody trusted: the socket peer
    trusting = ClientIP(IdentityConfig(trusted_proxies=["10.0.0.0/8"]))
    assert trusting({"client": ("10.0.0.5", 1)}, xff) == "203.0.113.9"  # right-most untrusted hop
    assert trusting({"client": ("198.51.100.1", 1)}, xff) == "198.51.100.1"  # untrusted peer: header ignored
    raw = [(b"host", b"x"), (b"user-agent", b"Anthropic/Python 0.40.0"), (b"x-stainless-lang", b"python")]
    fp, sdk, ver = fingerprint(raw, dict(raw))
    assert (sdk, ver) == ("anthropic-python", "0.40.0")
    assert fingerprint(list(reversed(raw)), dict(raw))[0] != fp  # header order is part of the fingerprint
