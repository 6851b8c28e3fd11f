"""The console mounts the TAXII app under a prefix; every URL the app hands out must carry it."""

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from distillguard.intel.taxii import DEFAULT_COLLECTION, TaxiiConfig, build_taxii_app


def test_mounted_under_a_prefix(two, monkeypatch):
    monkeypatch.setenv("DG_TEST_TAXII_TOKEN", "t0k-mounted-1234")
    taxii = build_taxii_app(two.store_a, TaxiiConfig(tokens=["${DG_TEST_TAXII_TOKEN}"]))
    console = Starlette(routes=[Mount("/taxii", app=taxii)])
    client = TestClient(console, base_url="https://console.example")
    h = {"Authorization": "Bearer t0k-mounted-1234"}
    d = client.get("/taxii/taxii2/", headers=h).json()
    assert d["api_roots"] == ["https://console.example/taxii/intel/"]
    assert client.get("/taxii/intel/collections/", headers=h).json()["collections"][0]["id"] == DEFAULT_COLLECTION
    assert client.get("/taxii/taxii2/").status_code == 401
