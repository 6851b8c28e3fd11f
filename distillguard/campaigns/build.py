"""Campaign records from flagged clusters: who, how much, when, what for, on which models, from where."""

from __future__ import annotations

import math
from collections import Counter

import duckdb
import orjson
import pyarrow as pa

from distillguard.scan.config import CampaignConfig
from distillguard.scoring.risk import ClusterScore, signal_words

CAMPAIGN_SCHEMA = pa.schema([
    ("campaign_id", pa.string()), ("title", pa.string()), ("n_accounts", pa.int64()), ("n_exchanges", pa.int64()),
    ("first_seen", pa.timestamp("ms", tz="UTC")), ("last_seen", pa.timestamp("ms", tz="UTC")),
    ("capability_mix", pa.string()), ("models", pa.list_(pa.string())), ("pivot_model", pa.string()),
    ("pivot_delay_hours", pa.float64()), ("infrastructure", pa.string()), ("confidence", pa.float64()),
    ("recommended_action", pa.string()), ("status", pa.string()), ("evidence", pa.list_(pa.string())),
    ("org_key", pa.string()), ("cluster_ids", pa.list_(pa.string())), ("first_flagged_at", pa.timestamp("ms", tz="UTC")),
])

_TITLE = {"cot_elicitation": "reasoning extraction", "reward_grading": "reward-model grading",
          "policy_rewrite": "'censorship-safe' rewrites", "task_dataset": "task-set harvesting",
          "cot": "reasoning extraction", "grading": "reward-model grading", "rewrite": "'censorship-safe' rewrites",
          "extraction": "reasoning extraction", "cap_coding": "coding", "cap_agentic": "agentic tool use",
          "cap_vision": "vision", "cap_computer_use": "computer use", "cap_data_analysis": "data analysis"}


def _num(v) -> float:
    return 0.0 if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def recommended_action(confidence: float, mix: dict[str, float], low_verif_share: float, cfg: CampaignConfig) -> str:
    """Block what we are sure of; otherwise pick the least disruptive action that stops the harvest."""
    if confidence >= cfg.block_confidence:
        return "block"
    if max((v for k, v in mix.items() if "cot" in k or "reason" in k or "extraction" in k), default=0) >= 0.3:
        return "protect_reasoning"
    if low_verif_share >= 0.5:
        return "require_verification"
    return "throttle"


#: Evidence that two flagged clusters are one operation. Infrastructure an operator reuses (IP /24, client
#: fingerprint, payment, e-mail naming, creation burst), plus *private* content (templates and system prompts
#: nobody outside the two clusters sends) and real co-activity (a sync entity is a shared set of busy
#: buckets, not a template). Not ASNs or e-mail domains, which unrelated operators share.
MERGE_KINDS = ("ip24", "ja4", "header_fp", "payment", "creation_burst", "email_pattern", "template",
               "system_prompt", "sync")


def merge_clusters(con: duckdb.DuckDBPyConnection, groups: dict[str, list[str]], cfg: CampaignConfig,
                   min_weight: float = 0.0) -> dict[str, str]:
    """cluster_id → representative cluster_id: flagged clusters that are one operation split by the
    community detection (a campaign's own datacenter accounts and the residential proxy pool it drives;
    three pools of one operator, one per payment card) are merged when at least ``cfg.merge_min_cover`` of
    the accounts of each hold entities of two or more evidence groups that the other holds, counting only
    entities held mostly inside the two clusters (``cfg.merge_exclusive`` of their holders): what
    unrelated operators also send or use (a public attack template, a free-mail domain) does not merge."""
    from distillguard.graph.edges import KIND_GROUP

    parent = {c: c for c in groups}
    if len(groups) < 2:
        return parent
    rows = [(a, c) for c, ms in groups.items() for a in ms]
    con.execute("CREATE OR REPLACE TEMP TABLE _fm(account_id VARCHAR, cl VARCHAR)")
    con.executemany("INSERT INTO _fm VALUES (?, ?)", rows)
    kinds = ", ".join(f"'{k}'" for k in MERGE_KINDS)
    links = con.execute(f"""
        WITH ce AS (SELECT fm.cl, i.account_id, i.kind, i.entity, i.df FROM inc i JOIN _fm fm USING (account_id)
                    WHERE i.w >= {float(min_weight)} AND i.kind IN ({kinds})),
        pair AS (SELECT a.cl AS c1, b.cl AS c2, a.kind, a.entity, any_value(a.df) AS df,
                        count(DISTINCT a.account_id) AS h1, count(DISTINCT b.account_id) AS h2
                 FROM ce a JOIN ce b ON a.kind = b.kind AND a.entity = b.entity AND a.cl < b.cl GROUP BY 1, 2, 3, 4),
        ex AS (SELECT * FROM pair WHERE h1 + h2 >= {float(cfg.merge_exclusive)} * df),
        cov AS (SELECT ex.c1, ex.c2, ex.kind, count(DISTINCT a.account_id) FILTER (WHERE a.cl = ex.c1) AS n1,
                       count(DISTINCT a.account_id) FILTER (WHERE a.cl = ex.c2) AS n2
                FROM ex JOIN ce a ON a.kind = ex.kind AND a.entity = ex.entity AND a.cl IN (ex.c1, ex.c2)
                GROUP BY 1, 2, 3)
        SELECT c1, c2, kind, n1, n2 FROM cov""").fetchall()

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    # per cluster pair and evidence group: how many accounts of each side hold an exclusive shared entity
    held: dict[tuple[str, str], dict[str, tuple[int, int]]] = {}
    for c1, c2, kind, n1, n2 in links:
        g = held.setdefault((c1, c2), {})
        o1, o2 = g.get(KIND_GROUP.get(kind, kind), (0, 0))
        g[KIND_GROUP.get(kind, kind)] = (max(o1, n1), max(o2, n2))
    mc = cfg.merge_min_cover
    for (c1, c2), g in held.items():
        s1, s2 = len(groups[c1]), len(groups[c2])
        both = {k for k, (n1, n2) in g.items() if n1 >= mc * s1 and n2 >= mc * s2}
        # a small piece (a pool the community detection cut off) joins a bigger cluster when most of the
        # piece holds the evidence and the bigger side holds it at least as often as the piece is large
        small, big = ((0, 1) if s1 <= s2 else (1, 0))
        sizes = (s1, s2)
        piece = {k for k, n in g.items() if n[small] >= mc * sizes[small] and n[big] >= min(mc * sizes[big], sizes[small])}
        # private content that most accounts on both sides send is one operation's own workload; any other
        # evidence needs a second, independent group
        if len(piece) >= 2 or "content" in both:
            parent[find(c1)] = find(c2)
    return {c: find(c) for c in groups}


def build_campaigns(con: duckdb.DuckDBPyConnection, clusters: list[ClusterScore], account_risk: pa.Table,
                    features: pa.Table, org_keys: dict[str, str], released: list[tuple], cfg: CampaignConfig,
                    flag_threshold: float) -> tuple[list[dict], dict[str, str]]:
    """Campaign records (one per cluster with flagged accounts) and account → campaign_id."""
    flagged = {r["account_id"]: r for r in account_risk.to_pylist() if r["flagged"]}
    feat = {r["account_id"]: r for r in features.to_pylist()}
    campaigns, member_of = [], {}
    chosen: dict[str, list[str]] = {}
    for cs in clusters:
        accts = [a for a in cs.members if a in flagged and flagged[a]["cluster_id"] == cs.cluster_id]
        if accts and cs.risk >= flag_threshold:
            chosen[cs.cluster_id] = accts
    rep = merge_clusters(con, chosen, cfg)
    by_id = {cs.cluster_id: cs for cs in clusters}
    merged: dict[str, list[str]] = {}
    for c in chosen:
        merged.setdefault(rep[c], []).append(c)
    for _head, parts in sorted(merged.items(), key=lambda kv: -max(by_id[c].risk for c in kv[1])):
        parts = sorted(parts, key=lambda c: -len(chosen[c]))
        cs = by_id[parts[0]]
        accts = sorted(a for c in parts for a in chosen[c])
        if len(accts) < 2:
            continue
        cid = "camp-" + cs.cluster_id[2:]
        if len(parts) > 1:
            cs = _merged_score(cs, [by_id[c] for c in parts], accts)
        rows = [feat[a] for a in accts if a in feat]
        n_ex = int(sum(_num(r["n_exchanges"]) for r in rows))
        mix = {}
        for key in (rows[0].keys() if rows else []):
            if key.startswith("share_"):
                mix[key[6:]] = round(sum(_num(r[key]) * _num(r["n_exchanges"]) for r in rows) / max(n_ex, 1), 4)
        con.execute("CREATE OR REPLACE TEMP TABLE _ca(account_id VARCHAR)")
        con.executemany("INSERT INTO _ca VALUES (?)", [(a,) for a in accts])
        models = [m for m, _ in con.execute(
            "SELECT model, sum(n) FROM beh_am JOIN _ca USING (account_id) GROUP BY 1 ORDER BY 2 DESC").fetchall()]
        first, last = con.execute(
            "SELECT min(hour), max(hour) + INTERVAL 1 HOUR FROM beh_ah JOIN _ca USING (account_id)").fetchall()[0]
        pivot_model, pivot_delay = None, None
        for model, _rel in released:
            delays = sorted(_num(r["pivot_delay_hours"]) for r in rows if r.get("pivot_delay_hours") is not None
                            and _num(r.get("new_model_share")) >= 0.2)
            if model in models and len(delays) >= 0.5 * len(rows):
                pivot_model, pivot_delay = model, float(delays[len(delays) // 2])
                break
        infra = infrastructure(con, cs, rows)
        low_ver = sum(1 for r in rows if _num(r.get("verification_level")) <= 0) / max(len(rows), 1)
        conf = round(float(sum(flagged[a]["risk"] for a in accts) / len(accts)), 4)
        top = sorted(((v, k) for k, v in mix.items() if v >= 0.1), reverse=True)[:3]
        title = (" + ".join(_TITLE.get(k, k) for _, k in top) or "harvesting") + f" — {len(accts)} accounts"
        evidence = list(cs.reasons)
        if pivot_model:
            evidence.append(f"pivoted to {pivot_model} a median {pivot_delay:.0f} h after its release")
        campaigns.append(dict(
            campaign_id=cid, title=title[0].upper() + title[1:], n_accounts=len(accts), n_exchanges=n_ex,
            first_seen=first, last_seen=last, capability_mix=orjson.dumps(mix).decode(), models=models,
            pivot_model=pivot_model, pivot_delay_hours=pivot_delay, infrastructure=orjson.dumps(infra).decode(),
            confidence=conf, recommended_action=recommended_action(conf, mix, low_ver, cfg), status="detected",
            evidence=evidence, org_key=org_keys.get(parts[0]), cluster_ids=parts, first_flagged_at=None))
        for a in accts:
            member_of[a] = cid
    return campaigns, member_of


def _merged_score(head: ClusterScore, parts: list[ClusterScore], accts: list[str]) -> ClusterScore:
    """One ClusterScore describing several merged clusters (for evidence and infrastructure)."""
    kinds: dict[str, list[str]] = {}
    for p in parts:
        for k, ents in p.kind_entities.items():
            seen = kinds.setdefault(k, [])
            seen += [e for e in ents if e not in seen]
    reasons = [f"{len(parts)} clusters of {len(accts)} accounts in total, linked to each other"] + head.reasons
    return ClusterScore(head.cluster_id, accts, max(p.risk for p in parts), head.coordination, head.suspicion,
                        head.group_share, kinds, reasons, head.declared, head.dense_density)


def infrastructure(con: duckdb.DuckDBPyConnection, cs: ClusterScore, rows: list[dict]) -> dict:
    """What the campaign's accounts share, by kind: entity count and the most-shared values."""
    out: dict = {"shared": {}}
    for kind, ents in cs.kind_entities.items():
        out["shared"][kind] = {"n": len(ents), "top": ents[:5]}
    out["signup_pathways"] = dict(Counter(r.get("signup_pathway") or "unknown" for r in rows).most_common())
    out["verification_levels"] = dict(Counter(str(r.get("verification_level")) for r in rows).most_common())
    created = [r["created_at"] for r in rows if r.get("created_at") is not None]
    if created:
        out["created"] = {"first": min(created).isoformat(), "last": max(created).isoformat()}
    out["group_share"] = cs.group_share
    return out


def campaign_summary_words(c: dict) -> str:
    mix = orjson.loads(c["capability_mix"])
    top = sorted(((v, k) for k, v in mix.items()), reverse=True)[:2]
    return "; ".join(f"{v:.0%} {signal_words(k)}" for v, k in top if v > 0)
