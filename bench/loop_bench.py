"""The protection loop's costs on a simulated world: watch ticks, publish → every replica, the sign-up door.

    python bench/loop_bench.py --store WORLD_DIR [--replicas 2] [--reload 2] [--publishes 5] [--assess 300]

WORLD_DIR is copied first (watch writes into the store). Measures, on real Redis and real gateway
replicas (uvicorn in threads) in front of the bundled mock upstream:

* watch tick 1 on the world as simulated (every exchange part scored, then detection);
* watch tick 2 after one new part of N live exchanges arrives (only that part scored, then detection);
* publish → applied: seconds from `watch`'s publish until every replica's /readyz shows the version
  (the replicas poll Redis every --reload seconds, the gateway default being 2);
* the sign-up door: latency of POST /v1/accounts/assess (p50/p99) on an index built from the world.

Prints one JSON document (the numbers docs/benchmarks.md quotes) and the peak RSS of this process.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import redis
import uvicorn

REDIS = "redis://127.0.0.1:6379/0"


class Server:
    def __init__(self, app):
        from distillguard.testing.net import free_port

        self.port = free_port()
        self.app = app
        self.srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                 lifespan="on", access_log=False))
        self.t = threading.Thread(target=self.srv.run, daemon=True)
        self.t.start()
        while not self.srv.started:
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.srv.should_exit = True
        self.t.join(15)


def _live_part(st, n: int) -> int:
    """N exchanges of the world again as new live traffic an hour after its end (new ids)."""
    con = st.connect(threads=2)
    t = con.execute(f"SELECT * FROM exchanges ORDER BY ts DESC LIMIT {int(n)}").to_arrow_table()
    con.close()
    t = t.set_column(t.schema.get_field_index("exchange_id"), "exchange_id",
                     pc.binary_join_element_wise(pa.scalar("live-"), t["exchange_id"], ""))
    ts = t["ts"]
    t = t.set_column(t.schema.get_field_index("ts"), "ts", pc.add(ts, pa.scalar(timedelta(hours=1), pa.duration("ms"))
                                                                     ).cast(ts.type))
    st.write_exchanges(t, key="live-bench")
    return t.num_rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True)
    ap.add_argument("--work", default="/tmp/loop-bench")
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--reload", type=float, default=2.0)
    ap.add_argument("--publishes", type=int, default=5)
    ap.add_argument("--assess", type=int, default=300)
    ap.add_argument("--live", type=int, default=2000)
    a = ap.parse_args()
    os.environ.setdefault("DISTILLGUARD_REASONING_SECRET", "bench-secret")
    os.environ["DISTILLGUARD_ASSESS_TOKEN"] = token = "bench-assess-token"
    from distillguard.gateway import build_app
    from distillguard.gateway.config import GatewayConfig
    from distillguard.gateway.mock_upstream import MockUpstream
    from distillguard.scan.config import ScanConfig
    from distillguard.store import Store
    from distillguard.watch import WatchOptions, load_state, publish, tick

    work = Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(a.store, work / "store")
    st = Store(work / "store")
    prefix = f"dg-bench:{uuid.uuid4().hex[:8]}:enforcement"
    out: dict = {"machine": f"{os.cpu_count()} cores, {platform.platform()}", "date": datetime.now(UTC).isoformat(),
                 "load_before": os.getloadavg()}
    n_ex = st.connect().execute("SELECT count(*) FROM exchanges").fetchall()[0][0]
    out["exchanges"] = n_ex
    opts = WatchOptions(interval_seconds=0, publish_url=REDIS, publish_prefix=prefix)
    cfg = ScanConfig()
    state = load_state(st)
    t0 = time.perf_counter()
    r1 = tick(st, opts, state, cfg, force_detect=True)
    out["tick1"] = {"seconds": round(time.perf_counter() - t0, 1), "scored": r1.scored, "campaigns": r1.campaigns,
                    "stages": {k: round(v, 2) for k, v in r1.seconds.items()}, "version": r1.published_version}
    out["tick1"]["applied_by_label"] = _applied_by_label(st, Path(a.store) / "labels.parquet")
    n_live = _live_part(st, a.live)
    t0 = time.perf_counter()
    r2 = tick(st, opts, state, cfg, force_detect=True)
    out["tick2"] = {"new_exchanges": n_live, "seconds": round(time.perf_counter() - t0, 1), "scored": r2.scored,
                    "stages": {k: round(v, 2) for k, v in r2.seconds.items()}}

    up = Server(MockUpstream(reasoning_words=50, answer_words=20))
    gws = []
    for i in range(a.replicas):
        c = {"upstream": {"url": up.url + "/v1"}, "identity": {"allow_no_keys": True},
             "recorder": {"enabled": False}, "enforcement_redis_url": REDIS, "enforcement_redis_prefix": prefix,
             "reload_seconds": a.reload}
        if i == 0:
            c["store"] = str(st.path)  # the door's index comes from the store
        gws.append(Server(build_app(GatewayConfig.model_validate(c))))
    lags = []
    for k in range(a.publishes):
        st.append_table("enforcement", _row(k))
        v, state["published"] = publish(st, REDIS, prefix, state.get("published"))
        t_pub = time.monotonic()
        pending = set(range(len(gws)))
        while pending:
            for i in list(pending):
                if httpx.get(gws[i].url + "/readyz").json().get("enforcement_version") == v:
                    pending.discard(i)
            time.sleep(0.02)
        lags.append(time.monotonic() - t_pub)
        time.sleep(a.reload * 0.37)  # de-phase from the replicas' polling
    out["publish_to_all_replicas_s"] = {"replicas": a.replicas, "reload_seconds": a.reload,
                                        "each": [round(x, 2) for x in lags], "max": round(max(lags), 2)}

    lat = []
    with httpx.Client(base_url=gws[0].url, headers={"authorization": f"Bearer {token}"}) as c:
        for i in range(a.assess):
            body = {"account_id": f"new-{i}", "email": f"user{i}x@example.org", "payment_fingerprint": f"pay-new-{i}",
                    "client_ip": f"10.{i % 250}.{i // 250}.7", "signup_pathway": "education" if i % 3 else "standard",
                    "verification_level": 1}
            t0 = time.perf_counter()
            r = c.post("/v1/accounts/assess", json=body)
            lat.append(time.perf_counter() - t0)
            assert r.status_code == 200, r.text
    lat.sort()
    idx = gws[0].app.gateway.signup.index
    out["assess"] = {"n": a.assess, "p50_ms": round(statistics.median(lat) * 1000, 2),
                     "p99_ms": round(lat[int(0.99 * (len(lat) - 1))] * 1000, 2), "bad_accounts_indexed": idx.n_bad,
                     "fingerprints": {k: len(v) for k, v in idx.bad.items()}}
    for s in gws + [up]:
        s.stop()
    rc = redis.Redis.from_url(REDIS)
    for key in rc.scan_iter(prefix + ":*"):
        rc.delete(key)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    out["load_after"] = os.getloadavg()
    print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())


def _applied_by_label(st, labels: Path) -> dict:
    """Accounts under an automatically applied decision (account rows, and cluster rows through
    account_clusters), split by the simulator's labels: measurement only, never detection input."""
    if not labels.exists():
        return {}
    con = st.connect()
    con.execute(f"CREATE VIEW labels AS SELECT * FROM read_parquet('{labels}')")
    rows = con.execute("""
        WITH cur AS (SELECT * FROM enforcement WHERE source = 'scan'),
        acc AS (SELECT subject_id AS account_id, action FROM cur WHERE subject_type = 'account'
                UNION ALL SELECT ac.account_id, cur.action FROM cur JOIN account_clusters ac
                          ON cur.subject_type = 'cluster' AND ac.cluster_id = cur.subject_id)
        SELECT action, CASE WHEN l.campaign_id IS NULL THEN 'benign' ELSE 'attacker' END, count(DISTINCT account_id)
        FROM acc LEFT JOIN labels l USING (account_id) GROUP BY 1, 2 ORDER BY 1, 2""").fetchall()
    n_att = con.execute("SELECT count(*) FROM labels WHERE campaign_id IS NOT NULL").fetchall()[0][0]
    con.close()
    return {"attacker_accounts": n_att, **{f"{a}/{who}": n for a, who, n in rows}}


def _row(k: int) -> pa.Table:
    from distillguard.campaigns.enforcement import ENFORCEMENT_SCHEMA

    return pa.Table.from_pylist([{"subject_type": "account", "subject_id": f"bench-{k}", "action": "allow",
                                  "reason": "bench", "source": "analyst", "created_at": datetime.now(UTC),
                                  "expires_at": None, "campaign_id": None, "actor": "bench"}],
                                schema=ENFORCEMENT_SCHEMA)


if __name__ == "__main__":
    main()
