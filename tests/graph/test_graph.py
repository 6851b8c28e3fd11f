from datetime import timedelta

import numpy as np
import pyarrow as pa

from distillguard.graph import communities, dense_blocks
from distillguard.scan.config import GraphConfig, ScanConfig
from distillguard.scan.engine import detect_step, prepare
from distillguard.testing.factory import BASE_TS, make_account, make_exchange, write_world


def test_large_shared_entity_is_ring_linked_not_a_clique(store):
    # 300 accounts behind one NAT address: 300 ring edges, never 44,850 clique edges
    ex = [make_exchange(account_id=f"a{i}", client_ip="192.0.2.1", ts=BASE_TS + timedelta(minutes=i), prompt=f"p{i} {j}")
          for i in range(300) for j in range(3)]
    ex += [make_exchange(account_id=f"b{i}", client_ip=f"10.{i}.0.1", prompt=f"q{i}") for i in range(50)]
    write_world(store, ex, [make_account(f"a{i}", payment_fingerprint=f"p{i}") for i in range(300)])
    cfg = ScanConfig()
    cfg.graph.max_entity_share = 1.0
    con, sigs = prepare(store, cfg)
    r = detect_step(con, sigs, cfg)
    kinds = r.edges.filter(pa.compute.equal(r.edges["kind"], "ip24"))
    assert kinds.num_rows == 300
    # every member keeps the same total strength from the entity
    w = kinds["weight"].to_numpy()
    assert np.allclose(w, w[0])


def test_rare_entity_weighs_more_than_common_one(store):
    ex, accts = [], []
    for i in range(60):
        ex += [make_exchange(account_id=f"u{i}", user_agent="OpenAI/Python 1.40.0", prompt=f"x{i}{j}") for j in range(3)]
        accts.append(make_account(f"u{i}", payment_fingerprint="shared-card" if i < 2 else f"card{i}",
                                  email_domain="gmail.com"))
    write_world(store, ex, accts)
    cfg = ScanConfig()
    cfg.graph.max_entity_share = 1.0
    con, sigs = prepare(store, cfg)
    r = detect_step(con, sigs, cfg)
    e = r.edges.to_pylist()
    pay = [x for x in e if x["kind"] == "payment"]
    ua = [x for x in e if x["kind"] == "user_agent" and {x["src_account"], x["dst_account"]} == {"u0", "u1"}]
    assert len(pay) == 1 and {pay[0]["src_account"], pay[0]["dst_account"]} == {"u0", "u1"}
    assert pay[0]["weight"] > 20 * sum(x["weight"] for x in ua)


def test_dense_block_survives_camouflage():
    rng = np.random.default_rng(0)
    rows = []
    # 15 fraud accounts share 6 rare entities and also touch popular ones (camouflage)
    for i in range(15):
        rows += [(f"f{i}", "k", f"rare{j}", 1.0) for j in range(6)]
        rows += [(f"f{i}", "k", f"pop{j}", 0.1) for j in rng.choice(20, 5, replace=False)]
    for i in range(300):
        rows += [(f"b{i}", "k", f"pop{j}", 0.1) for j in rng.choice(20, 3, replace=False)]
    t = pa.table({"account_id": [r[0] for r in rows], "kind": [r[1] for r in rows], "entity": [r[2] for r in rows],
                  "w": [r[3] for r in rows]})
    blocks = dense_blocks(t, k=2)
    assert set(blocks[0].accounts) == {f"f{i}" for i in range(15)}


def test_leiden_separates_two_groups():
    src, dst, w = [], [], []
    for g in ("x", "y"):
        for i in range(10):
            for j in range(i + 1, 10):
                src.append(f"{g}{i}")
                dst.append(f"{g}{j}")
                w.append(1.0)
    src.append("x0")
    dst.append("y0")
    w.append(0.05)
    m = communities(pa.table({"src": src, "dst": dst, "weight": w}), GraphConfig())
    assert len({m[f"x{i}"] for i in range(10)}) == 1 and len({m[f"y{i}"] for i in range(10)}) == 1
    assert m["x0"] != m["y0"]
