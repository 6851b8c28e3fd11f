"""Enforcement decisions for the gateway: per account, per cluster, per organisation."""

from __future__ import annotations

from datetime import datetime, timedelta

import pyarrow as pa

ENFORCEMENT_SCHEMA = pa.schema([
    ("subject_type", pa.string()), ("subject_id", pa.string()), ("action", pa.string()), ("reason", pa.string()),
    ("source", pa.string()), ("created_at", pa.timestamp("ms", tz="UTC")), ("expires_at", pa.timestamp("ms", tz="UTC")),
    ("campaign_id", pa.string()), ("actor", pa.string()),
])


def enforcement_rows(campaigns: list[dict], members: dict[str, str], now: datetime, days: int) -> pa.Table:
    """One decision per campaign account, per campaign cluster and per attributed organisation.

    Decisions expire (``days``) so a stale verdict cannot block an account forever without a
    fresh scan or an analyst renewing it; the console writes ``allow`` rows to overrule.
    """
    exp = now + timedelta(days=days)
    rows = []
    by_c = {c["campaign_id"]: c for c in campaigns}
    for acct, cid in sorted(members.items()):
        c = by_c[cid]
        rows.append(dict(subject_type="account", subject_id=acct, action=c["recommended_action"],
                         reason=f"member of campaign {cid}: {c['title']}", source="scan", created_at=now,
                         expires_at=exp, campaign_id=cid, actor="distillguard scan"))
    for c in campaigns:
        for cl in c.get("cluster_ids") or []:
            rows.append(dict(subject_type="cluster", subject_id=cl, action=c["recommended_action"],
                             reason=f"cluster of campaign {c['campaign_id']}: " + "; ".join(c["evidence"][:2]),
                             source="scan", created_at=now, expires_at=exp, campaign_id=c["campaign_id"],
                             actor="distillguard scan"))
        if c.get("org_key"):
            rows.append(dict(subject_type="org", subject_id=c["org_key"], action=c["recommended_action"],
                             reason=f"organisation behind campaign {c['campaign_id']}", source="scan", created_at=now,
                             expires_at=exp, campaign_id=c["campaign_id"], actor="distillguard scan"))
    return pa.Table.from_pylist(rows, schema=ENFORCEMENT_SCHEMA)
