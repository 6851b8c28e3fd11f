"""Time the intel path on two simulated providers: export (A), import + match + apply (B), TAXII paging.

    PYTHONPATH=. python bench/intel_bench.py --benign 5000

Prints one JSON line; docs/benchmarks.md records runs under "Intel".
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import UTC, datetime

from starlette.testclient import TestClient

from distillguard.intel.apply import apply_intel
from distillguard.intel.config import IntelConfig
from distillguard.intel.export import export_bundle
from distillguard.intel.importer import import_bundle
from distillguard.intel.keys import parse_key
from distillguard.intel.match import match_store
from distillguard.intel.taxii import DEFAULT_COLLECTION, TaxiiConfig, build_taxii_app, publish_bundle
from distillguard.testing.intel_fixture import make_two_providers


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--benign", type=int, default=5000, help="legitimate accounts per provider")
    ap.add_argument("--attack", type=int, default=60, help="campaign accounts at provider A")
    args = ap.parse_args()
    key = parse_key("8f1c2b7d9e0a4c6b3d5e7f9a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e", "bench")
    now = datetime(2026, 2, 14, 12, 0, tzinfo=UTC)
    cfg = IntelConfig.model_validate({"partners": [{"name": "Provider A", "trust": 1.0}]})
    res: dict = {"machine": f"{platform.node()} {platform.processor() or platform.machine()}",
                 "date": time.strftime("%Y-%m-%d"), "benign_per_provider": args.benign, "attack_a": args.attack}
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        two = make_two_providers(d, n_a_attack=args.attack, n_benign=args.benign)
        res["fixture_s"] = round(time.perf_counter() - t, 2)
        con = two.store_b.connect()
        res["b_exchanges"] = con.sql("SELECT count(*) FROM exchanges").fetchall()[0][0]
        res["b_accounts"] = con.sql("SELECT count(DISTINCT account_id) FROM exchanges").fetchall()[0][0]
        res["a_exchanges"] = two.store_a.connect().sql("SELECT count(*) FROM exchanges").fetchall()[0][0]

        bundle = f"{d}/a.json"
        t = time.perf_counter()
        rep = export_bundle(two.store_a, bundle, campaign_id=two.campaign_id, key=key, now=now)
        res["export_s"] = round(time.perf_counter() - t, 2)
        res["indicators"] = sum(rep.indicators.values())

        t = time.perf_counter()
        import_bundle(bundle, two.store_b, "Provider A", cfg)
        res["import_s"] = round(time.perf_counter() - t, 2)

        t = time.perf_counter()
        m = match_store(two.store_b, key, cfg, now=now)
        res["match_s"] = round(time.perf_counter() - t, 2)
        res["matched_accounts"] = m.accounts

        t = time.perf_counter()
        a = apply_intel(two.store_b, cfg, now=now)
        res["apply_s"] = round(time.perf_counter() - t, 2)
        res["newly_flagged"] = len(a.newly_flagged)

        publish_bundle(two.store_a, open(bundle).read())
        client = TestClient(build_taxii_app(two.store_a, TaxiiConfig(tokens=["bench-token-123456"])))
        h = {"Authorization": "Bearer bench-token-123456"}
        t = time.perf_counter()
        n, params = 0, {"limit": 25}
        while True:
            body = client.get(f"/intel/collections/{DEFAULT_COLLECTION}/objects/", params=params, headers=h).json()
            n += len(body.get("objects", []))
            if not body["more"]:
                break
            params = {"limit": 25, "next": body["next"]}
        dt = time.perf_counter() - t
        res["taxii_objects"] = n
        res["taxii_objects_per_s"] = round(n / dt, 1)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
