"""`--json` on the commands scripts call: baseline, gateway-keys, gateway-writer (one JSON document on stdout)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest

DATA = Path(__file__).parents[1] / "data"


def _dg(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DISTILLGUARD_KEY_PEPPER": "test-pepper"}
    return subprocess.run([sys.executable, "-m", "distillguard", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_baseline_json(tmp_path):
    assert _dg("ingest", str(DATA), "--store", str(tmp_path / "s")).returncode in (0, 3)
    r = _dg("baseline", "--store", str(tmp_path / "s"), "--out", str(tmp_path / "b"), "--json")
    assert r.returncode == 0, r.stderr
    rep = orjson.loads(r.stdout)
    assert rep["accounts"] > 0 and 0 <= rep["flagged_accounts"] <= rep["accounts"] and rep["daily_threshold"] >= 1


def test_gateway_keys_json(tmp_path):
    keys = tmp_path / "keys.yaml"
    r = _dg("gateway-keys", "--keys-file", str(keys), "--account", "acct-1", "--org", "o", "--json")
    assert r.returncode == 0, r.stderr
    rep = orjson.loads(r.stdout)
    assert rep["account"] == "acct-1" and rep["key"].startswith("sk-dg-") and rep["key"] not in keys.read_text()
    r = _dg("gateway-keys", "--keys-file", str(keys), "--account", "acct-2", "--key", "sk-existing-1", "--json")
    rep = orjson.loads(r.stdout)
    assert rep["key"] is None and rep["key_id"]  # a key given on the command line is not echoed


@pytest.mark.redis
def test_gateway_writer_json(tmp_path):
    redis = pytest.importorskip("redis")
    stream = f"dg-test-{uuid.uuid4().hex}"
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis at 127.0.0.1:6379")
    try:
        r = _dg("gateway-writer", "--store", str(tmp_path / "s"), "--stream", stream, "--once", "--json")
        assert r.returncode == 0, r.stderr
        assert orjson.loads(r.stdout) == {"exchanges": 0, "store": str(tmp_path / "s")}
    finally:
        client.delete(stream)
