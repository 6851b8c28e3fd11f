from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from distillguard.console.aggregates import build_aggregates
from distillguard.console.app import create_app
from distillguard.console.config import hash_secret, load_settings
from distillguard.store import Store
from distillguard.testing.console_fixture import write_console_fixture

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"

#: One password per role; hashed into the settings exactly as console.yaml would hold them.
PASSWORDS = {"vera": ("viewer", "vera-pass-1"), "ana": ("analyst", "ana-pass-1"), "adam": ("admin", "adam-pass-1")}
TOKEN = "tok-analyst-0123456789"


def make_settings(**kw):
    users = [{"name": n, "role": r, "password_hash": hash_secret(p)} for n, (r, p) in PASSWORDS.items()]
    tokens = [{"name": "bot", "role": "analyst", "token_hash": hash_secret(TOKEN)}]
    return load_settings(None, users=users, tokens=tokens, secret_key="test-secret-key-0123456789", **kw)


@pytest.fixture(scope="session")
def _settings():
    return make_settings()


@pytest.fixture(scope="session")
def _template_store(tmp_path_factory):
    st = write_console_fixture(tmp_path_factory.mktemp("console-template") / "store")
    build_aggregates(st)
    return st.path


@pytest.fixture
def console_store(tmp_path, _template_store):
    """A fresh copy per test (tests append audit and enforcement rows), built once per worker."""
    shutil.copytree(_template_store, tmp_path / "store")
    return Store(tmp_path / "store")


@pytest.fixture
def app(console_store, _settings):
    return create_app(console_store, _settings)


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "page has no CSRF field"
    return m.group(1)


def login(client, user: str) -> None:
    r = client.get("/login")
    role, pw = PASSWORDS[user]
    r = client.post("/login", data={"csrf": csrf_of(r.text), "username": user, "secret": pw, "next": "/campaigns"})
    assert r.status_code == 200 and "Campaigns" in r.text, r.text[:500]


# ---------------------------------------------------------------------------------------- browser
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live_server(app):
    """The real app under uvicorn on a free port, in a thread (what `distillguard console` runs)."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.time() + 20
    while not server.started:
        if time.time() > deadline:
            raise RuntimeError("console server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    t.join(timeout=10)


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} missing in CI: .ci/run installs Debian's chromium package")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1360, "height": 900})
    pg = ctx.new_page()
    pg.dialogs = []  # every alert/confirm a payload might open
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    pg.console_errors = []
    pg.on("console", lambda m: pg.console_errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.console_errors.append(str(e)))
    yield pg
    ctx.close()


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def browser_login(page, base: str, user: str, screenshot: str | None = None) -> None:
    page.goto(f"{base}/campaigns")
    assert "/login" in page.url
    if screenshot:
        shot(page, screenshot)
    page.fill("input[name=username]", user)
    page.fill("input[name=secret]", PASSWORDS[user][1])
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/campaigns")
