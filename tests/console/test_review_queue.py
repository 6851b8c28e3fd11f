"""The review queue over HTTP: what detection recommended, what already acts by itself, and confirm → status."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from distillguard.console.app import create_app
from distillguard.scan.config import ScanConfig
from distillguard.scan.run import run_scan, write_tables
from distillguard.store import Store
from distillguard.testing.worlds import build_tiny_world

from .helpers import csrf_of, login, make_settings


@pytest.fixture
def scanned_client(tmp_path):
    st = Store(tmp_path / "store", create=True)
    build_tiny_world(st, seed=3)
    res = run_scan(st, ScanConfig(), signals="never")
    write_tables(st, res, ScanConfig())
    client = TestClient(create_app(st, make_settings()), follow_redirects=True)
    login(client, "ana")
    return client, st, res


def test_queue_shows_recommendations_and_confirm_sets_the_status(scanned_client):
    client, st, res = scanned_client
    c = next(x for x in res.campaigns if x["recommended_action"] == "block")
    page = client.get("/campaigns").text
    assert "applied now:" in page and "awaiting review" in page
    detail = client.get(f"/campaigns/{c['campaign_id']}").text
    assert 'id="recommendation-rows"' in detail and "awaiting review" in detail and "applied" in detail
    r = client.post("/act", data={"csrf": csrf_of(detail), "subject_type": "campaign", "subject_id": c["campaign_id"],
                                  "action": "confirm", "reason": "clear extraction"})
    assert r.status_code == 200
    status = {x["campaign_id"]: x["status"] for x in st.read_table("campaigns").to_pylist()}
    assert status[c["campaign_id"]] == "confirmed"
    detail = client.get(f"/campaigns/{c['campaign_id']}").text
    assert 'id="campaign-status">confirmed' in detail and "confirmed</span>" in detail
