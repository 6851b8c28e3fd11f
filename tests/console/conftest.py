from __future__ import annotations

import os
import shutil

import pytest

from distillguard.console.aggregates import build_aggregates
from distillguard.console.app import create_app
from distillguard.store import Store
from distillguard.testing.console_fixture import write_console_fixture
from distillguard.testing.net import serving

from .helpers import CHROMIUM, CHROMIUM_ARGS, make_settings


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


# ---------------------------------------------------------------------------------------- browser


@pytest.fixture
def live_server(app):
    """The real app under uvicorn on a free port, in a thread (what `distillguard console` runs)."""
    with serving(app) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    """Module-scoped: Playwright's sync API keeps an event loop running in this thread while it is open, which
    would break `asyncio.run()` in any later test that lands on the same xdist worker."""
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
