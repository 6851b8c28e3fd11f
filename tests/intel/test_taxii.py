"""The TAXII 2.1 server and the taxii2-client poller, against each other over real HTTP."""

import base64
import os
import socket
import threading
import time
from datetime import UTC, datetime

import httpx
import pytest
import uvicorn

from distillguard.errors import ConfigError, DistillguardError
from distillguard.intel.export import export_bundle
from distillguard.intel.keys import parse_key
from distillguard.intel.poll import poll_collection
from distillguard.intel.taxii import (
    DEFAULT_COLLECTION,
    MEDIA_TYPE,
    TaxiiConfig,
    build_taxii_app,
    publish_bundle,
)
from distillguard.testing.intel_fixture import make_two_providers

from .conftest import make_cfg


def _cfg(world, collection=DEFAULT_COLLECTION):
    """Provider A serves this collection under both the discovery URL and the API root URL."""
    return make_cfg(taxii=[{"url": world["base"] + "/taxii2/", "collection": collection},
                           {"url": world["base"] + "/intel/", "collection": collection}])

KEY = parse_key("8f1c2b7d9e0a4c6b3d5e7f9a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e", "t")
NOW = datetime(2026, 2, 14, 12, 0, tzinfo=UTC)
TOKEN = "tok-3b9f1c0e7a2d4c58"
USER, PASSWORD = "partner-b", "correct horse battery staple"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("taxii")
    two = make_two_providers(root)
    hashed = root / "hashed.json"
    export_bundle(two.store_a, hashed, campaign_id=two.campaign_id, key=KEY, now=NOW)
    n1 = publish_bundle(two.store_a, hashed.read_text(), now=datetime(2026, 2, 14, 12, 0, tzinfo=UTC))
    os.environ["DG_TEST_TAXII_PASSWORD"], os.environ["DG_TEST_TAXII_TOKEN"] = PASSWORD, TOKEN  # secrets by reference
    app = build_taxii_app(two.store_a, TaxiiConfig(users={USER: "${DG_TEST_TAXII_PASSWORD}"},
                                                   tokens=["${DG_TEST_TAXII_TOKEN}"], max_page_size=50))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    deadline = time.time() + 20
    while not server.started:
        assert time.time() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield {"two": two, "base": f"http://127.0.0.1:{port}", "n1": n1, "root": root}
    server.should_exit = True
    th.join(timeout=10)


def _get(world, path, auth=True, **kw):
    headers = kw.pop("headers", {})
    if auth:
        headers.setdefault("Authorization", f"Bearer {TOKEN}")
    return httpx.get(world["base"] + path, headers=headers, timeout=10, **kw)


def _ts(v: str) -> datetime:
    return datetime.fromisoformat(v.replace("Z", "+00:00"))


def _objects_path(suffix="objects/"):
    return f"/intel/collections/{DEFAULT_COLLECTION}/{suffix}"


def test_discovery_api_root_and_collections(world):
    r = _get(world, "/taxii2/")
    assert r.status_code == 200 and r.headers["content-type"] == MEDIA_TYPE
    d = r.json()
    assert d["api_roots"] == [world["base"] + "/intel/"] and d["default"] == d["api_roots"][0]
    root = _get(world, "/intel/").json()
    assert root["versions"] == [MEDIA_TYPE] and root["max_content_length"] > 0
    cols = _get(world, "/intel/collections/").json()["collections"]
    assert [c["id"] for c in cols] == [DEFAULT_COLLECTION]
    assert cols[0]["can_read"] is True and cols[0]["can_write"] is False
    assert _get(world, f"/intel/collections/{DEFAULT_COLLECTION}/").json()["id"] == DEFAULT_COLLECTION
    assert _get(world, "/intel/collections/00000000-0000-4000-8000-000000000000/").status_code == 404
    assert _get(world, "/other-root/").status_code == 404


def test_auth_is_enforced(world):
    r = _get(world, "/taxii2/", auth=False)
    assert r.status_code == 401 and "Basic" in r.headers["www-authenticate"]
    assert r.headers["content-type"] == MEDIA_TYPE and r.json()["http_status"] == "401"
    assert _get(world, "/taxii2/", headers={"Authorization": "Bearer wrong-token"}).status_code == 401
    bad = base64.b64encode(f"{USER}:nope".encode()).decode()
    assert _get(world, "/taxii2/", headers={"Authorization": f"Basic {bad}"}).status_code == 401
    assert _get(world, "/taxii2/", headers={"Authorization": "Basic !!!notbase64"}).status_code == 401
    assert _get(world, _objects_path(), auth=False).status_code == 401
    good = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert _get(world, "/taxii2/", headers={"Authorization": f"Basic {good}"}).status_code == 200
    assert _get(world, "/taxii2/", headers={"Authorization": f"Token {TOKEN}"}).status_code == 200


def test_media_type_negotiation(world):
    assert _get(world, "/taxii2/", headers={"Accept": "application/json"}).status_code == 406
    assert _get(world, "/taxii2/", headers={"Accept": "application/taxii+json;version=2.0"}).status_code == 406
    assert _get(world, "/taxii2/", headers={"Accept": "application/taxii+json"}).status_code == 200


def test_pagination_walks_every_object_once(world):
    seen, pages, params = [], 0, {"limit": 10}
    while True:
        r = _get(world, _objects_path(), params=params)
        d = r.json()
        pages += 1
        seen += [o["id"] for o in d["objects"]]
        assert len(d["objects"]) <= 10
        assert r.headers["X-TAXII-Date-Added-First"] <= r.headers["X-TAXII-Date-Added-Last"]
        if not d["more"]:
            assert "next" not in d
            break
        params = {"limit": 10, "next": d["next"]}
    assert len(seen) == len(set(seen)) == world["n1"]
    assert pages == -(-world["n1"] // 10)
    # The server caps limit at max_page_size.
    assert len(_get(world, _objects_path(), params={"limit": 10_000}).json()["objects"]) == 50
    assert _get(world, _objects_path(), params={"limit": "x"}).status_code == 400
    assert _get(world, _objects_path(), params={"next": "garbage"}).status_code == 400


def test_filters_object_and_manifest(world):
    d = _get(world, _objects_path(), params={"match[type]": "campaign,intrusion-set"}).json()
    assert sorted(o["type"] for o in d["objects"]) == ["campaign", "intrusion-set"]
    camp = next(o for o in d["objects"] if o["type"] == "campaign")
    one = _get(world, _objects_path(f"objects/{camp['id']}/")).json()
    assert [o["id"] for o in one["objects"]] == [camp["id"]]
    versions = _get(world, _objects_path(f"objects/{camp['id']}/versions/")).json()["versions"]
    assert [_ts(v) for v in versions] == [_ts(camp["modified"])]
    assert _get(world, _objects_path("objects/campaign--00000000-0000-4000-8000-000000000000/")).status_code == 404
    man = _get(world, _objects_path("manifest/"), params={"limit": 5}).json()
    assert man["more"] is True and len(man["objects"]) == 5
    assert {"id", "date_added", "version", "media_type"} <= set(man["objects"][0])


def test_added_after_and_incremental_poll_round_trip(world):
    two = world["two"]
    # First poll pulls everything, through taxii2-client, with a bearer token, 25 objects per page.
    rep = poll_collection(world["base"] + "/taxii2/", DEFAULT_COLLECTION, two.store_b, _cfg(world), token=TOKEN,
                          per_request=25)
    assert rep.objects == world["n1"] and rep.pages == -(-world["n1"] // 25) and rep.indicators > 0
    stored = two.store_b.read_table("intel_indicators").num_rows
    assert stored == rep.indicators
    # Nothing new: the next poll (basic auth this time) resumes after the last object and pulls nothing.
    again = poll_collection(world["base"] + "/taxii2/", DEFAULT_COLLECTION, two.store_b, _cfg(world), user=USER,
                            password=PASSWORD)
    assert again.objects == 0 and again.added_after == rep.last_added
    # The exporter publishes a raw export for a closer partner; only the new objects are served after T.
    raw = world["root"] / "raw.json"
    export_bundle(two.store_a, raw, campaign_id=two.campaign_id, raw=True, now=NOW)
    n2 = publish_bundle(two.store_a, raw.read_text(), now=datetime(2026, 2, 15, tzinfo=UTC))
    d = _get(world, _objects_path(), params={"added_after": rep.last_added, "limit": 50}).json()
    ids_after = {o["id"] for o in d["objects"]}
    assert 0 < n2 and len(ids_after) == min(n2, 50)
    assert not _get(world, _objects_path(), params={"added_after": "2030-01-01T00:00:00Z"}).json().get("objects")
    assert _get(world, _objects_path(), params={"added_after": "yesterday"}).status_code == 400
    third = poll_collection(world["base"] + "/intel/", DEFAULT_COLLECTION, two.store_b, _cfg(world), token=TOKEN,
                            per_request=40)
    assert third.objects == n2 and third.added_after == rep.last_added
    assert two.store_b.read_table("intel_indicators").num_rows > stored


def test_poll_reports_refusals_clearly(world, tmp_path):
    two = world["two"]
    with pytest.raises(DistillguardError, match="HTTP 401"):
        poll_collection(world["base"] + "/taxii2/", DEFAULT_COLLECTION, two.store_b, _cfg(world), token="wrong")
    missing = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(DistillguardError, match="no collection"):
        poll_collection(world["base"] + "/taxii2/", missing, two.store_b, _cfg(world, missing), token=TOKEN)
    # A collection no configured partner serves is not polled at all: there would be no one to attribute it to.
    with pytest.raises(DistillguardError, match="no partner in intel.partners serves"):
        poll_collection(world["base"] + "/taxii2/", missing, two.store_b, _cfg(world), token=TOKEN)


def test_server_refuses_to_start_without_credentials(tmp_path):
    two = make_two_providers(tmp_path)
    with pytest.raises(ConfigError, match="no users or tokens"):
        build_taxii_app(two.store_a, TaxiiConfig())
    with pytest.raises(ConfigError, match="DG_TEST_UNSET_VAR"):
        build_taxii_app(two.store_a, TaxiiConfig(tokens=["${DG_TEST_UNSET_VAR}"]))


@pytest.mark.slow
def test_serve_taxii_command_runs_standalone(tmp_path):
    """`distillguard intel serve-taxii` as an operator starts it: its own process, token from the environment."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    two = make_two_providers(tmp_path)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    env = dict(os.environ, DG_TEST_TAXII_TOKEN="standalone-token-42", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.Popen([sys.executable, "-m", "distillguard", "intel", "serve-taxii", "--store",
                             str(two.store_a.path), "--port", str(port), "--token-env", "DG_TEST_TAXII_TOKEN"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/taxii2/", headers={"Authorization": "Bearer standalone-token-42"})
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.time() < deadline, "serve-taxii did not come up"
                time.sleep(0.2)
        assert r.status_code == 200 and r.json()["api_roots"] == [f"http://127.0.0.1:{port}/intel/"]
        assert httpx.get(f"http://127.0.0.1:{port}/taxii2/").status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=20)
