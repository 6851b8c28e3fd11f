"""Real servers on free ports: the bundled mock upstream and gateways built from a config dict."""

from __future__ import annotations

import os
import secrets
import threading
import time
from pathlib import Path

import pytest
import uvicorn
import yaml

from distillguard.gateway import build_app
from distillguard.gateway.config import GatewayConfig
from distillguard.gateway.identity import add_key, hash_key, pepper_from_env
from distillguard.gateway.mock_upstream import MockUpstream
from distillguard.gateway.server import uvicorn_config
from distillguard.testing.net import free_port

os.environ.setdefault("DISTILLGUARD_KEY_PEPPER", "test-pepper")
os.environ.setdefault("DISTILLGUARD_REASONING_SECRET", "test-binding-secret")




class ServerThread:
    def __init__(self, app, port: int | None = None):
        self.port = port or free_port()
        self.app = app
        gw = getattr(app, "gateway", None)
        if gw is not None:  # a gateway runs with the server settings the CLI uses (limits, timeouts)
            cfg = uvicorn_config(app, gw.cfg.server, host="127.0.0.1", port=self.port, loop="asyncio",
                                 timeout_graceful_shutdown=5)
        else:
            cfg = uvicorn.Config(app, host="127.0.0.1", port=self.port, loop="asyncio", http="httptools",
                                 lifespan="on", log_level="warning", access_log=False, timeout_graceful_shutdown=5,
                                 proxy_headers=False)
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> ServerThread:
        self.thread.start()
        t0 = time.monotonic()
        while not self.server.started:
            if time.monotonic() - t0 > 15 or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def mock_upstream():
    srv = ServerThread(MockUpstream(reasoning_words=120, answer_words=40)).start()
    yield srv
    srv.stop()


class GW:
    """A running gateway plus the keys made for it."""

    def __init__(self, srv: ServerThread, keys: dict[str, str], tmp: Path):
        self.srv = srv
        self.keys = keys
        self.tmp = tmp
        self.gateway = srv.app.gateway

    @property
    def url(self) -> str:
        return self.srv.url + "/v1"

    def flush(self) -> None:
        assert self.gateway.recorder.flush_wait(10)


@pytest.fixture
def make_gateway(tmp_path, mock_upstream):
    started = []

    def make(accounts=("acct-1",), org="org-1", **cfg) -> GW:
        keys_file = tmp_path / "keys.yaml"
        keys = {}
        pepper = pepper_from_env("DISTILLGUARD_KEY_PEPPER")
        if len(accounts) <= 3:
            for a in accounts:
                keys[a], _ = add_key(keys_file, a, org, pepper)
        else:  # bulk: same file format, written once
            entries = []
            for a in accounts:
                keys[a] = f"sk-test-{a}-{secrets.token_hex(8)}"
                entries.append({"key_hash": hash_key(keys[a], pepper), "key_id": f"k-{a}", "account_id": a,
                                "org_id": org})
            keys_file.write_text(yaml.safe_dump({"keys": entries}, sort_keys=False))
        data = {"upstream": {"url": mock_upstream.url + "/v1"}, "identity": {"keys_file": str(keys_file)},
                "store": str(tmp_path / "store"), "reload_seconds": 0.2,
                "recorder": {"flush_interval_ms": 5, "segment_max_seconds": 3600}}
        for k, v in cfg.items():
            if isinstance(v, dict) and isinstance(data.get(k), dict):
                data[k] = {**data[k], **v}
            else:
                data[k] = v
        app = build_app(GatewayConfig.model_validate(data))
        srv = ServerThread(app).start()
        started.append(srv)
        return GW(srv, keys, tmp_path)

    yield make
    for s in started:
        s.stop()


def read_exchanges(store_path: Path):
    from distillguard.store import Store

    st = Store(store_path)
    return st.exchanges().to_arrow_table().to_pylist()


@pytest.fixture(scope="session")
def hostile_upstream():
    from distillguard.testing.hostile_upstream import HostileUpstream

    up = HostileUpstream().start()
    yield up
    up.stop()
