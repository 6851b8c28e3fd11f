"""Webhook alerts: posted to a real local HTTP receiver, Slack-shaped, once per campaign, retried when undelivered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from distillguard.alerts import SENT, AlertsConfig, alert_store
from distillguard.scan.config import ScanConfig
from distillguard.scan.run import run_scan, write_tables
from distillguard.store import Store
from distillguard.testing.net import free_port
from distillguard.testing.worlds import build_tiny_world


class Receiver:
    """A webhook endpoint on a free port; ``fail_first`` answers that many requests with 500."""

    def __init__(self, fail_first: int = 0):
        self.posts: list[dict] = []
        self.fail_first = fail_first
        rec = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                if rec.fail_first > 0:
                    rec.fail_first -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                rec.posts.append({"path": self.path, "ctype": self.headers["content-type"], "json": json.loads(body)})
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a):
                pass

        self.port = free_port()
        self.srv = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/T000/B000/secret"

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    st = Store(tmp_path_factory.mktemp("alerts") / "store", create=True)
    build_tiny_world(st, seed=3)
    res = run_scan(st, ScanConfig(), signals="never")
    write_tables(st, res, ScanConfig())
    return st, res


def _fresh(scanned, tmp_path):
    import shutil

    shutil.copytree(scanned[0].path, tmp_path / "store")
    return Store(tmp_path / "store")


def test_one_slack_shaped_alert_per_campaign_with_evidence_and_link(scanned, tmp_path):
    st, res = _fresh(scanned, tmp_path), scanned[1]
    rx = Receiver()
    try:
        cfg = AlertsConfig(console_url="https://console.example/")
        sent = alert_store(st, cfg, url=rx.url)
        assert sorted(sent) == sorted(c["campaign_id"] for c in res.campaigns) and len(rx.posts) == len(sent)
        for p in rx.posts:
            body, cid = p["json"], p["json"]["distillguard"]["campaign_id"]
            c = next(x for x in res.campaigns if x["campaign_id"] == cid)
            assert p["ctype"] == "application/json" and p["path"] == "/hooks/T000/B000/secret"
            assert body["text"].startswith(f"New distillation campaign {cid}")
            assert f"https://console.example/campaigns/{cid}" in body["text"]
            assert body["blocks"][0]["type"] == "section" and body["blocks"][1]["elements"][0]["url"].endswith(cid)
            assert c["evidence"][0] in body["blocks"][0]["text"]["text"]
            assert body["distillguard"]["n_accounts"] == c["n_accounts"]
            assert "awaiting review" in body["blocks"][0]["text"]["text"] or body["distillguard"]["applied"]
        # deduplicated: a second run (or watch after scan) sends nothing new
        assert alert_store(st, cfg, url=rx.url) == [] and len(rx.posts) == len(sent)
        assert st.read_table(SENT).num_rows == len(sent)
    finally:
        rx.close()


def test_a_campaign_renumbered_by_the_next_detection_does_not_alert_again(scanned, tmp_path):
    """watch detects every interval and a campaign's id is its head cluster's rank by size in that detection: the
    same operation comes back as another id (its pieces regrouped) and an alerted id can name another group."""
    import pyarrow as pa

    from distillguard.alerts import send_alerts

    st, res = _fresh(scanned, tmp_path), scanned[1]
    members: dict[str, set[str]] = {}
    for a, cid in res.campaign_members.items():
        members.setdefault(cid, set()).add(a)
    rx = Receiver()
    try:
        cfg = AlertsConfig()
        sent = alert_store(st, cfg, url=rx.url)
        assert sent and all(r["members"] for r in st.read_table(SENT).to_pylist())
        first, n = res.campaigns[0], len(rx.posts)
        # the next detection: the first campaign under a new id, with one member fewer and one new account
        m = sorted(members[first["campaign_id"]])
        again = {**first, "campaign_id": "camp-9-0009"}
        regrouped = {again["campaign_id"]: set(m[1:]) | {"acct-new"}}
        assert send_alerts(st, [again], cfg, url=rx.url, members=regrouped) == [] and len(rx.posts) == n
        # the first campaign's id now names a group of other accounts: a new operation, alerted
        other = {first["campaign_id"]: {"acct-x1", "acct-x2", "acct-x3"}}
        assert send_alerts(st, [first], cfg, url=rx.url, members=other) == [first["campaign_id"]]
        assert len(rx.posts) == n + 1
        # with the rule off (ids alone) the renumbered campaign alerts again
        off = AlertsConfig(same_campaign_overlap=None)
        assert send_alerts(st, [again], off, url=rx.url, members=regrouped) == ["camp-9-0009"]
        # alerts recorded before members were (no members column): their ids still count
        old = Store(tmp_path / "old", create=True)
        old.append_table(SENT, pa.table({"campaign_id": [first["campaign_id"]], "sink": ["webhook"]}))
        assert send_alerts(old, [first], cfg, url=rx.url, members=members) == []
    finally:
        rx.close()


def test_undelivered_alerts_are_retried_next_run(scanned, tmp_path):
    st = _fresh(scanned, tmp_path)
    n = len(scanned[1].campaigns)
    dead = f"http://127.0.0.1:{free_port()}/hook"
    cfg = AlertsConfig(attempts=1, timeout_s=1)
    assert alert_store(st, cfg, url=dead) == [] and not st.has_table(SENT)  # nothing recorded as sent
    rx = Receiver(fail_first=1)  # the first attempt gets a 500, the retry goes through
    try:
        assert len(alert_store(st, AlertsConfig(attempts=2), url=rx.url)) == n and len(rx.posts) == n
    finally:
        rx.close()


def test_scan_cli_alerts_when_the_webhook_variable_is_set(tmp_path):
    st = Store(tmp_path / "store", create=True)
    build_tiny_world(st, seed=3)
    rx = Receiver()
    try:
        env = {**os.environ, "DISTILLGUARD_ALERT_WEBHOOK": rx.url, "PYTHONPATH": os.getcwd()}
        r = subprocess.run([sys.executable, "-m", "distillguard", "scan", "--store", str(st.path), "--out",
                            str(tmp_path / "r"), "--signals", "never", "--no-report", "--json"],
                           capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 0, r.stderr
        assert rx.posts and len(rx.posts) == json.loads(r.stdout)["campaigns"]
        assert rx.url not in r.stderr and rx.url not in r.stdout  # the secret URL is never printed
    finally:
        rx.close()
