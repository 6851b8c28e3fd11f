"""Keys that cannot fail silently: no keys, no pepper, a changed pepper and a dead upstream all say so."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import httpx
import openai
import pytest
import yaml

from distillguard.errors import ConfigError
from distillguard.gateway import build_app
from distillguard.gateway.config import GatewayConfig
from distillguard.testing.net import free_port
from tests.gateway.conftest import ServerThread

ENV = "DISTILLGUARD_KEY_PEPPER"
MSG = [{"role": "user", "content": "hi"}]


def _cli(*args, env=None) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k != ENV}
    e.update(env or {})
    e["PYTHONPATH"] = os.getcwd()
    return subprocess.run([sys.executable, "-m", "distillguard", *args], capture_output=True, text=True, env=e,
                          timeout=120)


def test_no_keys_refuses_to_start_unless_told(tmp_path, mock_upstream):
    cfg = {"upstream": {"url": mock_upstream.url + "/v1"}, "recorder": {"enabled": False}}
    with pytest.raises(ConfigError) as e:
        build_app(GatewayConfig.model_validate(cfg))
    assert "no API keys configured" in str(e.value) and "--allow-no-keys" in str(e.value)
    # the CLI says the same and exits 2 (before binding a port)
    r = _cli("gateway", "--upstream", mock_upstream.url + "/v1", "--port", str(free_port()))
    assert r.returncode == 2 and "no API keys configured" in r.stderr
    # an empty keys file is no better
    empty = tmp_path / "keys.yaml"
    empty.write_text("keys: []\n")
    with pytest.raises(ConfigError):
        build_app(GatewayConfig.model_validate({**cfg, "identity": {"keys_file": str(empty)}}))
    srv = ServerThread(build_app(GatewayConfig.model_validate({**cfg, "identity": {"allow_no_keys": True}}))).start()
    try:
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=srv.url + "/v1", api_key="sk-any", max_retries=0).chat.completions.create(
                model="m", messages=MSG)
        assert httpx.get(srv.url + "/readyz").json()["keys"] == 0
    finally:
        srv.stop()


def test_generated_pepper_file_then_a_later_env_pepper_is_a_clear_error(tmp_path, mock_upstream, monkeypatch):
    keys = tmp_path / "keys.yaml"
    r = _cli("gateway-keys", "--keys-file", str(keys), "--account", "acct-p", "--org", "o")
    assert r.returncode == 0, r.stderr
    key = r.stdout.strip()
    pepper_file = tmp_path / "keys.yaml.pepper"
    assert "generated a key pepper" in r.stderr and stat.S_IMODE(pepper_file.stat().st_mode) == 0o600
    assert key not in keys.read_text() and pepper_file.read_text().strip() not in keys.read_text()
    pid = yaml.safe_load(keys.read_text())["pepper_id"]
    # a second key reuses the same pepper file
    assert _cli("gateway-keys", "--keys-file", str(keys), "--account", "acct-q").returncode == 0
    assert yaml.safe_load(keys.read_text())["pepper_id"] == pid and len(yaml.safe_load(keys.read_text())["keys"]) == 2

    monkeypatch.delenv(ENV, raising=False)
    cfg = {"upstream": {"url": mock_upstream.url + "/v1"}, "identity": {"keys_file": str(keys)},
           "recorder": {"enabled": False}}
    srv = ServerThread(build_app(GatewayConfig.model_validate(cfg))).start()
    try:
        c = openai.OpenAI(base_url=srv.url + "/v1", api_key=key, max_retries=0)
        assert c.chat.completions.create(model="m", messages=MSG).choices
    finally:
        srv.stop()
    # the operator sets the variable later: not 401 for everyone, a start-up error naming both peppers
    monkeypatch.setenv(ENV, "a-new-pepper-set-later")
    with pytest.raises(ConfigError) as e:
        build_app(GatewayConfig.model_validate(cfg))
    assert pid in str(e.value) and f"env {ENV}" in str(e.value) and "refused with 401" in str(e.value)
    # and gateway-keys refuses to mix peppers in one file
    r = _cli("gateway-keys", "--keys-file", str(keys), "--account", "acct-r", env={ENV: "a-new-pepper-set-later"})
    assert r.returncode == 2 and "hashed with pepper" in r.stderr


def test_pepper_file_readable_by_others_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    p = tmp_path / "keys.yaml.pepper"
    p.write_text("x" * 64)
    os.chmod(p, 0o644)
    (tmp_path / "keys.yaml").write_text("keys: []\n")
    with pytest.raises(ConfigError) as e:
        build_app(GatewayConfig.model_validate({"identity": {"keys_file": str(tmp_path / "keys.yaml")},
                                                "recorder": {"enabled": False}}))
    assert "chmod 600" in str(e.value)
    os.chmod(p, 0o600)
    p.unlink()
    with pytest.raises(ConfigError) as e:  # no env, no file: no silent public constant any more
        build_app(GatewayConfig.model_validate({"identity": {"keys_file": str(tmp_path / "keys.yaml")},
                                                "recorder": {"enabled": False}}))
    assert "no key pepper" in str(e.value)


def test_readyz_checks_the_upstream(make_gateway, mock_upstream):
    gw = make_gateway()
    r = httpx.get(gw.srv.url + "/readyz")
    assert r.status_code == 200 and r.json()["upstream_ok"] is True
    dead = make_gateway(upstream={"url": f"http://127.0.0.1:{free_port()}/v1", "ready_cache_s": 0})
    r = httpx.get(dead.srv.url + "/readyz")
    assert r.status_code == 503 and r.json()["upstream_ok"] is False
    assert "unreachable" in r.json()["upstream_error"]
