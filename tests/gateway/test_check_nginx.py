"""The check service behind a real NGINX (`auth_request`) in front of the bundled mock upstream, and its
Envoy ext_authz HTTP shape; the official openai SDK is the client.

NGINX is the Debian package (`apt-get install nginx-light`); `make test` / .ci install it. Without the
binary the NGINX test skips and says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import openai
import orjson
import pytest

from distillguard.events.record import Account, accounts_to_table
from distillguard.gateway.check import build_check_app
from distillguard.gateway.config import GatewayConfig
from distillguard.gateway.identity import add_key, pepper_from_env
from distillguard.store import Store
from distillguard.testing.net import free_port
from tests.gateway.conftest import ServerThread

CONF = Path(__file__).parents[2] / "examples" / "nginx" / "distillguard.conf"
MSG = [{"role": "user", "content": "how do tides work?"}]
POLICY = ("rules:\n  - name: banned\n    when: {account_status_in: [banned]}\n    action: block\n"
          "    reason: banned account\n")


@pytest.fixture
def check_service(tmp_path):
    """A check service with keys for ok / banned / slow accounts; 'slow' has a 2-requests-a-minute limit."""
    st = Store(tmp_path / "store", create=True)
    now = datetime.now(UTC)
    st.write_accounts(accounts_to_table([
        Account(account_id="ok", created_at=now - timedelta(days=300), status="active"),
        Account(account_id="banned", created_at=now - timedelta(days=3), status="banned"),
        Account(account_id="slow", org_id="o2", created_at=now - timedelta(days=300), status="active")]))
    keys_file = tmp_path / "keys.yaml"
    pepper = pepper_from_env("DISTILLGUARD_KEY_PEPPER")
    keys = {a: add_key(keys_file, a, None, pepper)[0] for a in ("ok", "banned", "slow")}
    (tmp_path / "policy.yaml").write_text(POLICY)
    cfg = GatewayConfig.model_validate({
        "store": str(tmp_path / "store"), "policy": str(tmp_path / "policy.yaml"),
        "identity": {"keys_file": str(keys_file), "trusted_proxies": ["127.0.0.1/32"]},
        "recorder": {"enabled": False},
        "limits": {"org": {"requests": {"rate": 2, "per_seconds": 60, "burst": 2}}}})
    srv = ServerThread(build_check_app(cfg)).start()
    yield srv, keys
    srv.stop()


@pytest.fixture
def nginx(tmp_path, check_service, mock_upstream):
    exe = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)
    if exe is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx-light); make test installs it")
    srv, keys = check_service
    port = free_port()
    run = tmp_path / "nginx"
    run.mkdir()
    os.chmod(run, 0o777)
    site = CONF.read_text().replace("@CHECK@", f"127.0.0.1:{srv.port}") \
        .replace("@UPSTREAM@", f"127.0.0.1:{mock_upstream.port}").replace("@LISTEN@", f"127.0.0.1:{port}")
    temps = "".join(f"    {k}_temp_path {run}/{k};\n" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (run / "nginx.conf").write_text(
        f"worker_processes 1;\nerror_log {run}/error.log warn;\npid {run}/nginx.pid;\n"
        "events { worker_connections 128; }\n"
        f"http {{\n    access_log off;\n{temps}{site}\n}}\n")
    proc = subprocess.Popen([exe, "-p", str(run), "-c", str(run / "nginx.conf"), "-g", "daemon off;"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    t0 = time.monotonic()
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            break
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() - t0 > 10:
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"nginx did not start: {out} {(run / 'error.log').read_text() if (run / 'error.log').exists() else ''}")
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1", keys
    proc.terminate()
    proc.wait(10)


def _client(url, key):
    return openai.OpenAI(base_url=url, api_key=key, max_retries=0)


def test_nginx_allow_deny_rate_limited(nginx):
    url, keys = nginx
    r = _client(url, keys["ok"]).chat.completions.create(model="m", messages=MSG)
    assert r.choices[0].message.content  # went through NGINX to the mock upstream
    chunks = list(_client(url, keys["ok"]).chat.completions.create(model="m", messages=MSG, stream=True))
    assert any(c.choices and c.choices[0].delta.content for c in chunks)

    with pytest.raises(openai.AuthenticationError) as e:
        _client(url, "sk-not-a-key").chat.completions.create(model="m", messages=MSG)
    assert e.value.code == "invalid_api_key"

    with pytest.raises(openai.PermissionDeniedError) as e:
        _client(url, keys["banned"]).chat.completions.create(model="m", messages=MSG)
    assert e.value.code == "account_blocked"
    assert "x-distillguard-action" not in e.value.response.headers  # silent by default: only the error code

    slow = _client(url, keys["slow"])
    for _ in range(2):
        assert slow.chat.completions.create(model="m", messages=MSG).choices
    with pytest.raises(openai.RateLimitError) as e:
        slow.chat.completions.create(model="m", messages=MSG)
    assert e.value.code == "rate_limit_exceeded"
    assert int(e.value.response.headers["retry-after"]) >= 1
    # The other accounts are not affected by one org's limit.
    assert _client(url, keys["ok"]).chat.completions.create(model="m", messages=MSG).choices


def test_envoy_ext_authz_shape(check_service):
    """Envoy's HTTP ext_authz: original path under the prefix, headers, and the body when configured."""
    srv, keys = check_service
    base = f"{srv.url}/envoy/v1/chat/completions"
    body = orjson.dumps({"model": "m", "messages": MSG})
    with httpx.Client(timeout=5) as c:
        ok = c.post(base, content=body, headers={"authorization": f"Bearer {keys['ok']}"})
        assert ok.status_code == 200 and ok.headers["x-distillguard-account"] == "ok"
        assert ok.headers["x-distillguard-action"] == "allow"
        bad = c.post(base, content=b"{not json", headers={"authorization": f"Bearer {keys['ok']}"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
        denied = c.post(base, content=body, headers={"authorization": f"Bearer {keys['banned']}"})
        assert denied.status_code == 403 and denied.json()["error"]["code"] == "account_blocked"
        assert "x-distillguard-action" not in denied.headers  # Envoy passes a denial's headers to the client
        ant = c.post(f"{srv.url}/envoy/v1/messages", content=body, headers={"x-api-key": keys["banned"]})
        assert ant.status_code == 403 and ant.json()["type"] == "error"  # Anthropic's error shape for /messages
        codes = [c.post(base, content=body, headers={"authorization": f"Bearer {keys['slow']}"}).status_code
                 for _ in range(3)]
        assert codes == [200, 200, 429]
        assert c.post(base, content=body).status_code == 401
        # a blocked key beside a clean one is not judged by the clean one: two credentials are refused
        two = c.post(base, content=body, headers={"authorization": f"Bearer {keys['ok']}", "x-api-key": keys["banned"]})
        assert two.status_code == 400 and two.json()["error"]["code"] == "multiple_credentials"


def test_gateway_check_command_serves_with_the_hardened_server(tmp_path):
    """`distillguard gateway-check` runs on the gateway's own server: oversized headers are cut (431)."""
    import sys

    keys = tmp_path / "keys.yaml"
    r = subprocess.run([sys.executable, "-m", "distillguard.cli", "gateway-keys", "--keys-file", str(keys),
                        "--account", "a1", "--json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    key = orjson.loads(r.stdout)["key"]
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "distillguard.cli", "gateway-check", "--keys-file", str(keys),
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/nginx/auth"
        t0 = time.monotonic()
        while True:
            try:
                ok = httpx.get(url, headers={"authorization": f"Bearer {key}",
                                             "x-original-uri": "/v1/chat/completions"}, timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() - t0 < 30, "gateway-check did not start"
                time.sleep(0.1)
        assert ok.status_code == 200
        big = httpx.get(url, headers={"authorization": f"Bearer {key}", "x-pad": "a" * 40_000}, timeout=5)
        assert big.status_code == 431
    finally:
        proc.terminate()
        proc.wait(10)
