"""The console's commands through the real CLI entry point."""

from __future__ import annotations

import json
import subprocess
import sys

from distillguard.console.config import verify_secret
from distillguard.testing.console_fixture import write_console_fixture


def _dg(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "distillguard", *args], capture_output=True, text=True, input=stdin,
                          timeout=120)


def test_build_aggregates_command(tmp_path):
    write_console_fixture(tmp_path / "s")
    r = _dg("console", "--store", str(tmp_path / "s"), "--build-aggregates", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["n_exchanges"] > 1000 and out["counts"]["console_campaign_daily"] > 0


def test_console_hash_command():
    r = _dg("console-hash", "--stdin", stdin="pa55word\n")
    assert r.returncode == 0 and verify_secret("pa55word", r.stdout.strip())


def test_bad_config_exits_2(tmp_path):
    write_console_fixture(tmp_path / "s")
    (tmp_path / "c.yaml").write_text("users: [{name: a, role: analyst, password_hash: plain}]\n")
    r = _dg("console", "--store", str(tmp_path / "s"), "--config", str(tmp_path / "c.yaml"))
    assert r.returncode == 2 and "password_hash" in r.stderr


def test_serve_prints_one_time_token_and_serves(tmp_path):
    import re
    import socket
    import time

    import httpx

    write_console_fixture(tmp_path / "s")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "distillguard", "console", "--store", str(tmp_path / "s"),
                             "--port", str(port)], stderr=subprocess.PIPE, text=True, env={**__import__("os").environ,
                                                                                          "COLUMNS": "200"})
    try:
        token, lines = None, []
        deadline = time.time() + 60
        while token is None and time.time() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            m = re.search(r"^\s*token: (\S+)", line)
            if m:
                token = m.group(1)
        assert token, "".join(lines)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, follow_redirects=True, timeout=10) as c:
            for _ in range(100):
                try:
                    if c.get("/healthz").text == "ok":
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            page = c.get("/login")
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
            r = c.post("/login", data={"csrf": csrf, "username": "", "secret": token})
            assert r.status_code == 200 and "Chain-of-thought harvesting" in r.text
        # Start-up built the aggregates because there were none.
        assert (tmp_path / "s" / "tables" / "console_meta").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
