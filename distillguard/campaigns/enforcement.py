"""From campaigns to recommendations, and from recommendations (or an analyst's decision) to enforcement.

Detection no longer enforces what it finds: every campaign yields *recommendations* (its own
recommended action plus the milder interim measures), and the enforcement policy
(`distillguard.policy.review`) decides which of them the gateway applies at once, which wait for
an analyst, and which only run in shadow. An analyst's confirm or dismiss is recorded in
``campaign_decisions``, sets ``campaigns.status`` (what `intel export --confirmed` reads), and is
honoured by every later scan: a dismissed campaign is never re-enforced, a confirmed one keeps its
action for new members too.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from distillguard.policy.model import SEVERITY
from distillguard.policy.review import EnforcementPolicy

_TS = pa.timestamp("ms", tz="UTC")
ENFORCEMENT_SCHEMA = pa.schema([
    ("subject_type", pa.string()), ("subject_id", pa.string()), ("action", pa.string()), ("reason", pa.string()),
    ("source", pa.string()), ("created_at", _TS), ("expires_at", _TS), ("campaign_id", pa.string()),
    ("actor", pa.string()),
])

#: One row per (campaign, action) a scan recommended, with what became of it.
RECOMMENDATIONS = "enforcement_recommendations"
RECOMMENDATION_SCHEMA = pa.schema([
    ("campaign_id", pa.string()), ("action", pa.string()), ("primary", pa.bool_()), ("confidence", pa.float64()),
    ("mode", pa.string()), ("disposition", pa.string()), ("subject_types", pa.list_(pa.string())),
    ("n_subjects", pa.int64()), ("why", pa.string()), ("created_at", _TS),
])
#: Analysts' campaign verdicts, appended (newest per campaign wins).
DECISIONS = "campaign_decisions"
DECISION_SCHEMA = pa.schema([
    ("campaign_id", pa.string()), ("status", pa.string()), ("action", pa.string()), ("at", _TS),
    ("actor", pa.string()), ("reason", pa.string()),
])
#: ``source`` of enforcement rows the gateway reports but does not apply (see policy/enforcement.py).
SHADOW_SOURCE = "scan:shadow"


def pure_clusters(cluster_ids, members, cluster_members: dict[str, list[str]] | None) -> list[str]:
    """The clusters whose every account is a campaign member: a cluster row reaches every account the gateway
    maps to the cluster, and a community can hold ordinary users caught on a shared proxy pool or NAT."""
    if cluster_members is None:
        return list(cluster_ids or [])
    mine = set(members)
    return [cl for cl in cluster_ids or [] if cl in cluster_members and set(cluster_members[cl]) <= mine]


def _subjects(c: dict, members: list[str], kinds: list[str],
              cluster_members: dict[str, list[str]] | None = None) -> list[tuple[str, str]]:
    out = []
    for k in kinds:
        if k == "account":
            out += [("account", a) for a in members]
        elif k == "cluster":
            out += [("cluster", cl) for cl in pure_clusters(c.get("cluster_ids"), members, cluster_members)]
        elif k == "org" and c.get("org_key"):
            out.append(("org", c["org_key"]))
    return out


def recommend(campaigns: list[dict], members: dict[str, str], now: datetime, days: int,
              policy: EnforcementPolicy | None = None, decisions: dict[str, dict] | None = None,
              cluster_members: dict[str, list[str]] | None = None) -> tuple[pa.Table, pa.Table]:
    """(recommendations, enforcement rows) for the campaigns of one scan.

    Enforcement rows expire after ``days`` so a stale verdict cannot hold an account forever
    without a fresh scan or an analyst renewing it. With ``cluster_members`` (cluster → all its
    accounts), cluster rows are written only for clusters made of campaign members alone.
    """
    policy = policy or EnforcementPolicy()
    decisions = decisions or {}
    exp = now + timedelta(days=days)
    by_camp: dict[str, list[str]] = {}
    for acct, cid in sorted(members.items()):
        by_camp.setdefault(cid, []).append(acct)
    recs, rows = [], []

    def enforce(c, action, kinds, reason, source, actor="distillguard scan"):
        subs = _subjects(c, by_camp.get(c["campaign_id"], []), kinds, cluster_members)
        rows.extend(dict(subject_type=st, subject_id=sid, action=action, reason=reason, source=source, created_at=now,
                         expires_at=exp, campaign_id=c["campaign_id"], actor=actor) for st, sid in subs)
        return len(subs)

    for c in campaigns:
        cid, conf, primary = c["campaign_id"], float(c.get("confidence") or 0.0), c["recommended_action"]
        d = decisions.get(cid)
        if d is not None:
            # An analyst decided: dismissed campaigns get nothing (their allow rows stand); confirmed ones keep
            # the confirmed action, for members this scan added too.
            n = 0
            if d["status"] == "confirmed" and d.get("action") in SEVERITY and d["action"] != "allow":
                n = enforce(c, d["action"], policy.confirmed_subjects,
                            f"member of confirmed campaign {cid}: {c['title']}", "scan")
            recs.append(dict(campaign_id=cid, action=d.get("action") or primary, primary=True, confidence=conf,
                             mode="analyst", disposition=d["status"], subject_types=list(policy.confirmed_subjects),
                             n_subjects=n, why=f"{d['status']} by {d.get('actor')}", created_at=now))
            continue
        actions = [primary] + [a for a in policy.interim if a != primary and SEVERITY[a] < SEVERITY[primary]]
        for action in actions:
            rule = policy.rule(action)
            if rule.mode == "off":
                continue
            is_primary = action == primary
            reaches = conf >= rule.min_confidence
            n = len(_subjects(c, by_camp.get(cid, []), rule.subjects, cluster_members))
            if rule.mode == "auto" and reaches:
                disp, why = "applied", f"auto: confidence {conf:.2f} ≥ {rule.min_confidence:.2f}"
                enforce(c, action, rule.subjects, f"campaign {cid} ({c['title']}): {action} applied automatically, "
                        f"awaiting review", "scan")
            elif rule.mode == "shadow" and reaches:
                disp, why = "shadow", f"shadow: would {action} {n} subjects (confidence {conf:.2f})"
                enforce(c, action, rule.subjects, f"campaign {cid}: shadow {action}", SHADOW_SOURCE)
            elif is_primary:
                disp = "awaiting_review"
                why = ("review: applies once an analyst confirms" if rule.mode == "review" else
                       f"{rule.mode}: confidence {conf:.2f} < {rule.min_confidence:.2f}; applies once an analyst confirms")
            else:
                disp, why = "below_confidence", f"{rule.mode}: confidence {conf:.2f} < {rule.min_confidence:.2f}"
            recs.append(dict(campaign_id=cid, action=action, primary=is_primary, confidence=conf, mode=rule.mode,
                             disposition=disp, subject_types=list(rule.subjects), n_subjects=n, why=why,
                             created_at=now))
    return (pa.Table.from_pylist(recs, schema=RECOMMENDATION_SCHEMA),
            pa.Table.from_pylist(rows, schema=ENFORCEMENT_SCHEMA))


def latest_decisions(store) -> dict[str, dict]:
    """Newest analyst decision per campaign (``campaign_decisions``); empty when none was made."""
    if not store.has_table(DECISIONS):
        return {}
    t = store.read_table(DECISIONS).sort_by([("at", "ascending")])
    return {r["campaign_id"]: r for r in t.to_pylist()}


def campaign_accounts(store) -> dict[str, set[str]]:
    """Campaign id -> its member accounts (``campaign_members``); empty when the store has none."""
    out: dict[str, set[str]] = {}
    if store.has_table("campaign_members"):
        t = store.read_table("campaign_members")
        for cid, a in zip(t["campaign_id"].to_pylist(), t["account_id"].to_pylist(), strict=True):
            out.setdefault(cid, set()).add(a)
    return out


def with_status(campaigns: pa.Table, decisions: dict[str, dict]) -> pa.Table:
    """``campaigns`` with ``status`` set from the analysts' decisions (the rest keep the scan's status)."""
    if not decisions or campaigns.num_rows == 0:
        return campaigns
    ids = campaigns["campaign_id"].to_pylist()
    old = campaigns["status"].to_pylist()
    status = pa.array([decisions[i]["status"] if i in decisions else s for i, s in zip(ids, old, strict=True)],
                      pa.string())
    return campaigns.set_column(campaigns.schema.get_field_index("status"), "status", status)


def record_decision(store, campaign_id: str, status: str, action: str, at: datetime, actor: str, reason: str) -> None:
    """An analyst's verdict on a campaign: appended to ``campaign_decisions``, then ``campaigns.status`` and the
    recommendations' dispositions rewritten to match (both small tables; the decisions table stays the truth
    a later scan reads)."""
    store.append_table(DECISIONS, pa.Table.from_pylist([dict(campaign_id=campaign_id, status=status, action=action,
                                                              at=at, actor=actor, reason=reason)],
                                                            schema=DECISION_SCHEMA))
    dec = {campaign_id: {"status": status}}
    if store.has_table("campaigns"):
        camp = store.read_table("campaigns")
        store.write_table("campaigns", _as_campaigns(with_status(camp, dec)))
    if store.has_table(RECOMMENDATIONS):
        recs = store.read_table(RECOMMENDATIONS)
        if recs.num_rows:
            hit = pc.equal(recs["campaign_id"], campaign_id)
            disp = pc.if_else(hit, pa.scalar(status), recs["disposition"])
            recs = recs.set_column(recs.schema.get_field_index("disposition"), "disposition", disp)
            store.write_table(RECOMMENDATIONS, recs.cast(RECOMMENDATION_SCHEMA))


def _as_campaigns(t: pa.Table) -> pa.Table:
    """Back to the contract's types (DuckDB reads timestamps back as microseconds)."""
    from distillguard.campaigns.build import CAMPAIGN_SCHEMA

    try:
        return t.select(CAMPAIGN_SCHEMA.names).cast(CAMPAIGN_SCHEMA)
    except (KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return t


def enforcement_rows(campaigns: list[dict], members: dict[str, str], now: datetime, days: int,
                     policy: EnforcementPolicy | None = None, decisions: dict[str, dict] | None = None,
                     cluster_members: dict[str, list[str]] | None = None) -> pa.Table:
    """Only the enforcement rows of :func:`recommend` (what the gateway will apply or shadow)."""
    return recommend(campaigns, members, now, days, policy, decisions, cluster_members)[1]
