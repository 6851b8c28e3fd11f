"""The simulator knobs added for issue 11: file slots, category filters, country-matched rotation, card reuse,
per-account jitter, standby chains and retirement, resellers with end users, exchanges-only worlds."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from distillguard.errors import ConfigError
from distillguard.sim.config import parse_world
from distillguard.sim.content import read_prompt_file
from distillguard.sim.identity import asn_countries
from distillguard.sim.run import simulate
from distillguard.sim.world import World

TINY = Path(__file__).parent / "tiny.yaml"
RAW = yaml.safe_load(TINY.read_text())


def _raw(**kw):
    raw = copy.deepcopy(RAW)
    raw.update(kw)
    return raw


def _run(raw, tmp_path, name="w"):
    out = tmp_path / name
    simulate(parse_world(raw), TINY.parent, out, workers=1)
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    con.sql(f"CREATE VIEW x AS SELECT * FROM read_parquet('{out}/exchanges/**/*.parquet')")
    con.sql(f"CREATE VIEW e AS SELECT * FROM x JOIN '{out}/labels.parquet' USING (account_id)")
    return con, out


def test_category_filter(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text("\n".join(json.dumps({"text": f"item {i}", "category": "a" if i % 3 else "b"}) for i in range(30)))
    assert read_prompt_file(f, ("b",)) == [f"item {i}" for i in range(0, 30, 3)]
    with pytest.raises(ConfigError, match="no line has category"):
        read_prompt_file(f, ("zzz",))
    raw = _raw()
    raw["prompt_files"]["code_tasks"] = {"path": "corpora/tasks_code.jsonl", "categories": ["sql"]}
    raw["campaigns"] = []
    raw["personas"] = [{"name": "sql_people", "accounts": 10, "rate": {"per_account_day": 20},
                        "content": {"chat_code": 1.0}}]
    sql = set(read_prompt_file(Path(__file__).parents[2] / "distillguard/sim/data/corpora/tasks_code.jsonl", ("sql",)))
    w = World(parse_world(raw), TINY.parent)
    tasks = w.pools["chat_code"].tasks.to_pylist()  # code_tasks then arena_hard (typos added to a few)
    arena = read_prompt_file(Path(__file__).parents[2] / "distillguard/sim/data/corpora/benign_arena_hard.jsonl")
    assert len(tasks) == len(sql) + len(arena)
    assert sum(t in sql for t in tasks[: len(sql)]) > 0.8 * len(sql)


def test_several_file_slots_per_template(tmp_path):
    (tmp_path / "ctx.txt").write_text("\n".join(f"CONTEXT-{i}" for i in range(50)))
    (tmp_path / "who.txt").write_text("\n".join(f"PERSONA-{i}" for i in range(50)))
    (tmp_path / "prof.yaml").write_text(yaml.safe_dump({"profiles": [{
        "name": "multi", "tasks": ["gsm8k_train"], "file_slots": {"context": ["ctx"], "who": ["who"]},
        "templates": {"en": ["As {who}: {context}\n\n{task}", "{context} | {who} | {context}"]}, "typo_rate": 0.5}]}))
    raw = _raw(campaigns=[], content_files=[*RAW["content_files"], str(tmp_path / "prof.yaml")])
    raw["prompt_files"].update(ctx=str(tmp_path / "ctx.txt"), who=str(tmp_path / "who.txt"))
    raw["personas"] = [{"name": "m", "accounts": 10, "rate": {"per_account_day": 30}, "content": {"multi": 1.0}}]
    con, _ = _run(raw, tmp_path)
    prompts = [r[0] for r in con.sql("SELECT prompt FROM e").fetchall()]
    assert len(prompts) > 200
    assert not any("{" + k + "}" in p for p in prompts for k in ("context", "who", "task"))
    assert all("CONTEXT-" in p and "PERSONA-" in p for p in prompts)
    ctx = {p.split("CONTEXT-")[1].split()[0].strip("|") for p in prompts}
    assert len(ctx) > 30  # drawn per request, not fixed per wrapper
    two = [p for p in prompts if p.count("CONTEXT-") == 2]
    assert two and any(p.split(" | ")[0] != p.split(" | ")[2] for p in two)  # each occurrence drawn on its own


def test_match_country_rotation_reuse_and_account_jitter(tmp_path):
    raw = _raw(campaigns=[], proxy_pools={"resi": {"kind": "residential", "size": 4000}})
    raw["personas"] = [{
        "name": "q", "accounts": 60, "rate": {"per_account_day": 25}, "content": {"chat_general": 1.0},
        "identity": {"countries": {"US": 0.5, "DE": 0.3, "JP": 0.2},
                     "payment": {"mode": "pool", "instruments": 2, "reuse_share": 0.1}},
        "network": {"pool": "resi", "match_country": True, "rotation": "per_request", "ips_per_account": 8},
        "timing": {"mode": "synchronized", "windows_per_day": 2, "window_minutes": 10, "account_jitter_minutes": 120}}]
    con, out = _run(raw, tmp_path)
    acc = pq.read_table(out / "accounts").to_pydict()
    country = dict(zip(acc["account_id"], acc["signup_country"], strict=True))
    rows = con.sql("SELECT account_id, client_asn FROM e").fetchall()
    ip_c = asn_countries(np.array([r[1] for r in rows]))
    assert all(c == country[r[0]] for r, c in zip(rows, ip_c, strict=True))
    k = [r[0] for r in con.sql("SELECT count(DISTINCT client_ip) FROM e GROUP BY account_id").fetchall()]
    assert max(k) > 3 and max(k) <= 8
    fp = [f for f in acc["payment_fingerprint"] if f is not None]
    reused = sum(fp.count(f) > 1 for f in fp)
    assert 0 < reused <= 0.3 * len(fp)  # rare card reuse
    # two shared 10-minute windows, each account on its own offset: spread over hours, not two clusters
    spans = [r[0] for r in con.sql("SELECT max(epoch(ts) % 86400) - min(epoch(ts) % 86400) FROM e "
                                   "GROUP BY ts::DATE").fetchall()]
    assert min(spans) > 4 * 3600


def test_standby_chain_and_retirement(tmp_path):
    raw = _raw()
    raw["campaigns"] = [{"id": "c", "accounts": 40, "exchanges": 20000, "content": {"cot_elicit": 1.0},
                         "identity": {"rpd_limit": 5000, "created": {"from_day": -5, "to_day": -1}},
                         "ban_evasion": {"banned_share": 0.4, "retire_share": 0.3, "ban_from_day": 0.2,
                                         "ban_to_day": 2.8, "standby_accounts": 20, "generations": 3,
                                         "takeover_hours": 1}}]
    raw["days"] = 3
    spec = parse_world(raw)
    w = World(spec, TINY.parent)
    keys = [g.key for g in w.groups if g.campaign_id == "c"]
    assert keys == ["c", "c:standby", "c:standby2", "c:standby3"]
    main = w.groups[[g.key for g in w.groups].index("c")].acc
    banned = sum(s == "banned" for s in main["status"])
    stopped = int((main["to_ms"] < w.start_ms + 3 * 86_400_000).sum())
    assert banned == 16 and stopped == 28  # 40% banned, a further 30% retired with status active
    sb2 = w.groups[[g.key for g in w.groups].index("c:standby2")].acc
    assert (sb2["lam"] > 0).any()  # the second pool took over from the first
    with pytest.raises(ConfigError, match="banned_share \\+ retire_share"):
        raw["campaigns"][0]["ban_evasion"]["retire_share"] = 0.7
        parse_world(raw)


def test_reseller_end_users(tmp_path):
    raw = _raw(campaigns=[])
    raw["personas"] = [
        {"name": "plat", "kind": "reseller", "accounts": 2, "exchanges": 6000, "content": {"chat_general": 1.0},
         "end_users": {"count": 300, "count_scale": "fixed", "countries": {"US": 0.5, "JP": 0.5}},
         "identity": {"rpd_limit": 100000, "keys_per_account": 5, "orgs": "single"},
         "network": {"kind": "datacenter", "size": 4, "rotation": "per_request"}},
        {"name": "chat_users", "accounts": 20, "rate": {"per_account_day": 5}, "content": {"chat_general": 1.0}}]
    con, out = _run(raw, tmp_path)
    labels = pq.read_table(out / "labels.parquet").to_pydict()
    assert labels["persona"].count("plat") == 2
    assert pq.read_table(out / "accounts").num_rows == 22
    n_acc, n_users, n_keys, n_ips, n = con.sql(
        """SELECT count(DISTINCT account_id), count(DISTINCT json_extract_string(extra, '$.user')),
                  count(DISTINCT api_key_id), count(DISTINCT client_ip), count(*) FROM e WHERE persona = 'plat'""").fetchall()[0]
    assert n_acc == 2 and n_users > 250 and n_keys <= 10 and n_ips <= 4 and n > 4000
    assert con.sql("SELECT count(*) FROM e WHERE persona <> 'plat' AND extra IS NOT NULL").fetchall()[0][0] == 0
    summary = json.loads((out / "world.json").read_text())
    assert summary["accounts"] == 22


def test_exchanges_only_world(tmp_path):
    raw = _raw(account_facts=False, edge_fingerprints=False)
    con, out = _run(raw, tmp_path)
    assert not list((out / "accounts").glob("*.parquet"))
    nulls = con.sql("SELECT count(org_id), count(tls_ja4), count(client_asn), count(header_order_fp), count(*) "
                    "FROM x").fetchall()[0]
    assert nulls[:4] == (0, 0, 0, 0) and nulls[4] > 0
