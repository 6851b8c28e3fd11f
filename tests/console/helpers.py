"""Shared helpers for the console tests: logins, CSRF tokens, screenshots, settings with hashed passwords."""

from __future__ import annotations

import functools
import re
from pathlib import Path

from distillguard.console.config import hash_secret, load_settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"

#: One password per role; hashed into the settings exactly as console.yaml would hold them.
PASSWORDS = {"vera": ("viewer", "vera-pass-1"), "ana": ("analyst", "ana-pass-1"), "adam": ("admin", "adam-pass-1")}
TOKEN = "tok-analyst-0123456789"


@functools.cache
def _hashed() -> tuple[list[dict], list[dict]]:
    """scrypt is slow on purpose: hash the test logins once per worker, not once per app."""
    users = [{"name": n, "role": r, "password_hash": hash_secret(p)} for n, (r, p) in PASSWORDS.items()]
    tokens = [{"name": "bot", "role": "analyst", "token_hash": hash_secret(TOKEN)}]
    return users, tokens


def make_settings(**kw):
    users, tokens = _hashed()
    return load_settings(None, users=[dict(u) for u in users], tokens=[dict(t) for t in tokens],
                         secret_key="test-secret-key-0123456789", **kw)


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "page has no CSRF field"
    return m.group(1)


def login(client, user: str) -> None:
    r = client.get("/login")
    role, pw = PASSWORDS[user]
    r = client.post("/login", data={"csrf": csrf_of(r.text), "username": user, "secret": pw, "next": "/campaigns"})
    assert r.status_code == 200 and "Campaigns" in r.text, r.text[:500]


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
