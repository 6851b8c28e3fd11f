"""Console speed on a large synthetic store: aggregate build time and per-page latency.

    python bench/console_bench.py --exchanges 16000000 --dir /tmp/dg-console-bench [--keep]

Writes N exchanges (30 days, N/160 accounts, 20% of them in 10 campaigns, the largest ~N/800 accounts)
plus exchange_signals (one row per exchange), coordination_edges, account_risk, cluster_members,
campaigns and campaign_members, then times `build_aggregates` and each page through the real app
(starlette TestClient, logged in), median of --repeat runs. Prints a markdown table for
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.events.schema import EXCHANGE_SCHEMA
from distillguard.store import Store

DAYS = 30
T0 = datetime(2026, 1, 1, tzinfo=UTC)
PROMPTS = ["Solve step by step, showing every thought: problem ", "Use the tools to complete task ",
           "Summarise this email: ", "Translate to French: note ", "Grade this answer 1-10: essay "]


def _ids(prefix: str, ints: np.ndarray, width: int = 7) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(pa.array(ints).cast(pa.string()), width, "0"), "")


def make_store(path: Path, n: int, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    st = Store(path, create=True)
    n_acc = max(n // 160, 100)
    n_camp = 10
    camp_of = np.full(n_acc, -1)
    in_camp = rng.choice(n_acc, size=n_acc // 5, replace=False)
    # Campaign sizes follow a rough power law: the biggest holds about a quarter of the attackers.
    weights = 1.0 / np.arange(1, n_camp + 1)
    camp_of[in_camp] = rng.choice(n_camp, size=in_camp.size, p=weights / weights.sum())
    per_day = n // DAYS
    eid = 0
    for d in range(DAYS):
        m = per_day if d < DAYS - 1 else n - per_day * (DAYS - 1)
        acc = rng.integers(0, n_acc, m)
        ts = pa.array((np.datetime64(T0.replace(tzinfo=None) + timedelta(days=d), "ms")
                       + rng.integers(0, 86_400_000, m).astype("timedelta64[ms]")), pa.timestamp("ms")).cast(
            pa.timestamp("ms", tz="UTC"))
        camp = camp_of[acc]
        kind = np.where(camp >= 0, camp % 2, 2 + rng.integers(0, 3, m))
        prompt = pc.binary_join_element_wise(pa.array(np.array(PROMPTS)[kind]),
                                             pa.array(rng.integers(0, 10**6, m)).cast(pa.string()), "")
        model = np.where((camp >= 0) & (d >= 20), "model-b", np.where(rng.random(m) < 0.3, "model-b", "model-a"))
        ip = pc.binary_join_element_wise(
            "10.", pa.array(acc // 65536 % 256).cast(pa.string()), ".", pa.array(acc // 256 % 256).cast(pa.string()), ".",
            pa.array(rng.integers(1, 255, m)).cast(pa.string()), "")
        cols = {"exchange_id": _ids("e", np.arange(eid, eid + m), 9), "ts": ts, "account_id": _ids("a", acc),
                "model": pa.array(model), "endpoint": pa.array(["chat.completions"] * m), "client_ip": ip,
                "prompt": prompt, "source_format": pa.array(["native"] * m)}
        arrays = [cols[f.name] if f.name in cols else pa.nulls(m, f.type) for f in EXCHANGE_SCHEMA]
        table = pa.Table.from_arrays(arrays, schema=EXCHANGE_SCHEMA)
        st.write_exchanges(table, key=f"bench-{d:02d}")
        sig = pa.table({
            "exchange_id": cols["exchange_id"], "account_id": cols["account_id"], "ts": ts,
            "sig_cot_elicitation": pa.array(np.where(kind == 0, 0.9, 0.1) + rng.random(m) * 0.1, pa.float32()),
            "sig_tool_harvest": pa.array(np.where(kind == 1, 0.9, 0.05) + rng.random(m) * 0.1, pa.float32()),
            "template_key": pa.array(np.where(camp >= 0, np.char.add("tpl-", camp.astype(str)), None)),
            "task_item_key": pa.nulls(m, pa.string())})
        st.append_table("exchange_signals", sig, key=f"{d:02d}")
        eid += m
    accs = np.arange(n_acc)
    aid = _ids("a", accs).to_pylist()
    members = [(f"camp-{camp_of[i]}", aid[i]) for i in in_camp]
    st.write_table("campaign_members", pa.table({"campaign_id": [c for c, _ in members],
                                                 "account_id": [a for _, a in members]}))
    st.write_table("cluster_members", pa.table({"cluster_id": [c.replace("camp", "cl") for c, _ in members],
                                                "account_id": [a for _, a in members],
                                                "org_key": pa.nulls(len(members), pa.string())}))
    risk = np.where(camp_of >= 0, 0.9, 0.05)
    st.write_table("account_risk", pa.table({
        "account_id": aid, "risk": risk, "flagged": risk > 0.5,
        "first_flagged_at": pa.nulls(n_acc, pa.timestamp("ms", tz="UTC")),
        "cluster_id": [f"cl-{c}" if c >= 0 else None for c in camp_of],
        "campaign_id": [f"camp-{c}" if c >= 0 else None for c in camp_of],
        "reasons": [["coordinated"] if c >= 0 else [] for c in camp_of]}))
    src, dst, kinds, ents = [], [], [], []
    by_camp: dict[int, list[int]] = {}
    for i in in_camp:
        by_camp.setdefault(int(camp_of[i]), []).append(int(i))
    for c, accts in by_camp.items():
        accts.sort()
        for a, b in zip(accts, accts[1:], strict=False):
            for k, e in (("ip24", f"10.{a // 65536 % 256}.{a // 256 % 256}.0/24"), ("ja4", f"ja4-{c}"),
                         ("payment", f"pf-{c}-{a % 7}")):
                src.append(aid[a])
                dst.append(aid[b])
                kinds.append(k)
                ents.append(e)
    st.write_table("coordination_edges", pa.table({"src_account": src, "dst_account": dst, "kind": kinds,
                                                   "entity": ents, "weight": np.full(len(src), 0.7)}))
    sizes = {c: len(a) for c, a in by_camp.items()}
    st.write_table("campaigns", pa.Table.from_pylist([{
        "campaign_id": f"camp-{c}", "title": f"Synthetic campaign {c}", "n_accounts": sizes[c],
        "n_exchanges": sizes[c] * 160, "first_seen": T0, "last_seen": T0 + timedelta(days=DAYS),
        "capability_mix": json.dumps({"reasoning": 0.8, "coding": 0.2}), "models": ["model-a", "model-b"],
        "pivot_model": "model-b", "pivot_delay_hours": 6.0, "infrastructure": "{}", "confidence": 0.5 + c / 25,
        "recommended_action": "block", "status": "detected", "evidence": ["synthetic"], "org_key": None}
        for c in sorted(by_camp)]))
    biggest = max(sizes, key=sizes.get)
    return {"accounts": n_acc, "campaign_accounts": int(in_camp.size), "biggest": f"camp-{biggest}",
            "biggest_size": sizes[biggest], "member": aid[by_camp[biggest][0]], "edges": len(src)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--exchanges", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/dg-console-bench"))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="reuse an existing store in --dir")
    args = ap.parse_args()
    from starlette.testclient import TestClient

    from distillguard.console.aggregates import aggregates_fresh, build_aggregates
    from distillguard.console.app import create_app
    from distillguard.console.config import hash_secret, load_settings

    path = args.dir / "store"
    info_file = args.dir / "info.json"
    if args.keep and info_file.exists():
        info = json.loads(info_file.read_text())
        gen_s = None
    else:
        shutil.rmtree(args.dir, ignore_errors=True)
        t = time.perf_counter()
        info = make_store(path, args.exchanges)
        gen_s = time.perf_counter() - t
        info_file.write_text(json.dumps(info))
    st = Store(path)
    if args.keep and aggregates_fresh(st):
        meta = st.read_table("console_meta").to_pylist()[-1]
        res, build_s = {"n_exchanges": meta["n_exchanges"]}, meta["build_seconds"]
        print(f"aggregates fresh: reusing the build from {meta['built_at']}")
    else:
        t = time.perf_counter()
        res = build_aggregates(st)
        build_s = time.perf_counter() - t
    settings = load_settings(None, users=[{"name": "b", "role": "analyst", "password_hash": hash_secret("pw")}])
    c = TestClient(create_app(st, settings))
    page = c.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    c.post("/login", data={"csrf": csrf, "username": "b", "secret": "pw"})
    pages = {
        "campaigns list": "/campaigns",
        f"campaign ({info['biggest_size']:,} accounts)": f"/campaigns/{info['biggest']}",
        "account": f"/accounts/{info['member']}",
        "search account": "/search?q=a00012&kind=account",
        "search IP /24": "/search?q=10.0.5.0/24&kind=ip",
        "search template": f"/search?q=tpl-{info['biggest'].split('-')[1]}&kind=template",
        "search all": "/search?q=a0001",
        f"search text (bounded, {settings.text_scan_rows:,} rows)": "/search?q=grade+this&kind=text",
        "audit log": "/audit",
    }
    rows = []
    for name, url in pages.items():
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            r = c.get(url)
            times.append(time.perf_counter() - t)
            assert r.status_code == 200, (url, r.status_code)
        rows.append((name, statistics.median(times), max(times)))
    # One campaign-wide action on the biggest campaign: enforcement rows for every member.
    page = c.get(f"/campaigns/{info['biggest']}")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    t = time.perf_counter()
    r = c.post("/act", data={"csrf": csrf, "subject_type": "campaign", "subject_id": info["biggest"],
                             "action": "confirm", "reason": "bench"})
    act_s = time.perf_counter() - t
    assert "recorded in the audit log" in r.text
    t = time.perf_counter()
    c.get(f"/campaigns/{info['biggest']}")
    after_s = time.perf_counter() - t

    print(f"machine: {platform.node()} {platform.machine()} python {platform.python_version()}; "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"store: {res['n_exchanges']:,} exchanges, {info['accounts']:,} accounts, "
          f"{info['campaign_accounts']:,} in campaigns, {info['edges']:,} coordination edges"
          + (f"; generated in {gen_s:.0f}s" if gen_s else ""))
    print(f"build_aggregates: {build_s:.1f}s\n")
    print("| page | median (s) | max (s) |\n|---|---|---|")
    for name, med, mx in rows:
        print(f"| {name} | {med:.3f} | {mx:.3f} |")
    print(f"| confirm biggest campaign (POST, writes {info['biggest_size']:,}+ rows) | {act_s:.3f} | — |")
    print(f"| campaign page after confirm | {after_s:.3f} | — |")


if __name__ == "__main__":
    main()
