"""Write side of the console: an analyst's decision becomes enforcement rows, labels and an audit entry.

Everything is appended, never rewritten: the gateway takes the newest unexpired row per subject
from ``enforcement``, the detectors learn from ``analyst_labels``, and ``audit_log`` keeps who
decided what and why. The audit row is written last so it never claims an effect that failed
to land.
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from distillguard.campaigns.enforcement import pure_clusters, record_decision
from distillguard.console import audit
from distillguard.console.config import ROLE_RANK, ConsoleSettings
from distillguard.console.data import ConsoleData
from distillguard.console.tables import (
    ENFORCEMENT_ACTIONS,
    MIRROR,
    SUBJECT_TYPES,
    enforcement_rows,
    label_rows,
)
from distillguard.errors import DistillguardError

#: Analyst actions on a campaign or an account.
ACTIONS = ("confirm", "dismiss", "require_verification", "block", "unblock")
ACTION_LABELS = {"confirm": "Confirm attack", "dismiss": "Dismiss (benign)", "require_verification":
                 "Require verification", "block": "Block", "unblock": "Unblock"}
#: Confirm applies the campaign's recommended action when it is one of these; otherwise it blocks.
CONFIRM_ACTIONS = ("block", "require_verification", "throttle", "protect_reasoning")
MAX_REASON = 2000


class ActionError(DistillguardError):
    """An action was refused (bad input, unknown subject, role too low)."""


@dataclass
class Actor:
    name: str
    role: str

    def can(self, role: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


def write_decisions(store, table) -> None:
    """Append analyst rows to ``enforcement`` and to the console's own mirror ``analyst_decisions``.

    ``enforcement`` is shared: if another stage ever rewrites it instead of appending, the mirror is
    what lets an admin put the analysts' decisions back (``reapply_decisions``).
    """
    key = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:6]}"
    store.append_table("enforcement", table, key=key)
    store.append_table(MIRROR, table, key=key)


def reapply_decisions(data: ConsoleData, actor: Actor, now: datetime | None = None) -> int:
    """Append the mirrored analyst rows that ``enforcement`` lost, with their original times (so newer
    decisions by other stages still win); returns how many."""
    if not actor.can("admin"):
        raise ActionError("only admins can re-apply decisions")
    missing = data.missing_decisions()
    if missing.num_rows:
        data.store.append_table("enforcement", missing)
        audit.append(data.store, now or datetime.now(UTC), actor.name, actor.role, "reapply_decisions",
                     "enforcement", "analyst_decisions", "analyst rows missing from enforcement",
                     {"rows": missing.num_rows})
    return missing.num_rows


def _members_of(data: ConsoleData, con, clusters: list[str]) -> dict[str, list[str]] | None:
    """cluster → every account the gateway maps to it (``account_clusters``, else ``cluster_members``)."""
    table = next((t for t in ("account_clusters", "cluster_members") if data.has(t)), None)
    if table is None or not clusters:
        return None
    out: dict[str, list[str]] = {c: [] for c in clusters}
    for cl, acct in con.execute(f"SELECT cluster_id, account_id FROM {table} "
                                "WHERE cluster_id IN (SELECT unnest(?::VARCHAR[]))", [clusters]).fetchall():
        out[cl].append(acct)
    return out


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if len(reason) < 3:
        raise ActionError("a reason of at least 3 characters is required")
    if len(reason) > MAX_REASON:
        raise ActionError(f"reason is longer than {MAX_REASON} characters")
    return reason


def apply_action(data: ConsoleData, settings: ConsoleSettings, actor: Actor, action: str, subject_type: str,
                 subject_id: str, reason: str, now: datetime | None = None) -> dict:
    """Apply one analyst action to a campaign or an account; returns what was written."""
    if not actor.can("analyst"):
        raise ActionError("viewers cannot act; ask an analyst")
    if action not in ACTIONS:
        raise ActionError(f"unknown action {action!r}")
    if subject_type not in ("campaign", "account"):
        raise ActionError(f"actions apply to a campaign or an account, not {subject_type!r}")
    reason = _reason(reason)
    now = now or datetime.now(UTC)
    store = data.store
    campaign_id = None
    with data.con() as con:
        if subject_type == "campaign":
            camp = con.execute("SELECT recommended_action FROM campaigns WHERE campaign_id = ?",
                               [subject_id]).fetchall() if data.has("campaigns") else []
            if not camp:
                raise ActionError(f"no campaign {subject_id!r}")
            recommended = camp[0][0]
            campaign_id = subject_id
            accounts = data.member_ids(con, subject_id)
            clusters = data.cluster_ids(con, accounts) if accounts else []
            clusters = pure_clusters(clusters, accounts, _members_of(data, con, clusters))
        else:
            known = False
            for table in ("account_risk", "console_account_summary"):
                if data.has(table) and con.execute(f"SELECT 1 FROM {table} WHERE account_id = ? LIMIT 1",
                                                   [subject_id]).fetchall():
                    known = True
            if not known:
                raise ActionError(f"no account {subject_id!r}")
            recommended = None
            accounts, clusters = [subject_id], []
            if data.has("account_risk"):
                r = con.execute("SELECT campaign_id FROM account_risk WHERE account_id = ?", [subject_id]).fetchall()
                campaign_id = r[0][0] if r else None

    if action == "confirm":
        enf = recommended if recommended in CONFIRM_ACTIONS else "block"
        label = "attack"
    elif action == "dismiss":
        enf, label = "allow", "benign"
    elif action == "unblock":
        enf, label = "allow", None
    else:
        enf, label = action, None
    expires = now + timedelta(days=settings.allow_days) if (action == "dismiss" and settings.allow_days) else None
    why = f"{action} by {actor.name}: {reason}"
    rows = [{"subject_type": "account", "subject_id": a, "action": enf, "reason": why, "source": "analyst",
             "created_at": now, "expires_at": expires, "campaign_id": campaign_id, "actor": actor.name}
            for a in accounts]
    # Cluster rows only for campaign-wide decisions: one account's fate must not move its whole cluster.
    if subject_type == "campaign":
        rows += [{"subject_type": "cluster", "subject_id": c, "action": enf, "reason": why, "source": "analyst",
                  "created_at": now, "expires_at": expires, "campaign_id": campaign_id, "actor": actor.name}
                 for c in clusters]
    if rows:
        write_decisions(store, enforcement_rows(rows))
    n_labels = 0
    if label:
        labels = [{"account_id": a, "label": label, "campaign_id": campaign_id, "at": now, "actor": actor.name,
                   "reason": reason} for a in accounts]
        if labels:
            store.append_table("analyst_labels", label_rows(labels))
            n_labels = len(labels)
    status = None
    if subject_type == "campaign":
        # The verdict, not just the audit line: campaigns.status (read by `intel export --confirmed`) and the
        # decisions table every later scan honours (no re-enforcing a dismissed campaign).
        status = "confirmed" if action in ("confirm", "block", "require_verification") else "dismissed"
        record_decision(store, subject_id, status, enf, now, actor.name, reason)
    detail = {"enforcement_action": enf, "accounts": len(accounts), "clusters": len(clusters) if subject_type ==
              "campaign" else 0, "labels": n_labels, "label": label, "expires_at": expires, "campaign_id": campaign_id,
              "status": status}
    audit.append(store, now, actor.name, actor.role, action, subject_type, subject_id, reason, detail)
    return detail


def _ip24(text: str) -> str:
    """``a.b.c.0/24`` (or an IPv6 /48) from an address or network, the form the gateway matches on."""
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ActionError(f"not an IP address or network: {text!r}") from None
    prefix = 24 if net.version == 4 else 48
    if net.prefixlen < prefix:
        raise ActionError(f"{text!r} is wider than one /{prefix}; add one decision per /{prefix}")
    return str(ipaddress.ip_network(f"{net.network_address}/{prefix}", strict=False))


def set_enforcement(data: ConsoleData, actor: Actor, subject_type: str, subject_id: str, action: str, reason: str,
                    expires_days: float | None = None, now: datetime | None = None) -> dict:
    """Admin-only: put any subject (account, cluster, org, /24, payment fingerprint) on the allow-list or
    give it another standing decision."""
    if not actor.can("admin"):
        raise ActionError("only admins manage allow-lists and standing decisions")
    if subject_type not in SUBJECT_TYPES:
        raise ActionError(f"subject type must be one of {', '.join(SUBJECT_TYPES)}")
    if action not in ENFORCEMENT_ACTIONS:
        raise ActionError(f"action must be one of {', '.join(ENFORCEMENT_ACTIONS)}")
    subject_id = (subject_id or "").strip()
    if not subject_id or len(subject_id) > 512:
        raise ActionError("subject id is required (at most 512 characters)")
    if subject_type == "ip24":
        subject_id = _ip24(subject_id)
    if expires_days is not None and not (0 < expires_days <= 3650):
        raise ActionError("expiry must be between 0 and 3650 days")
    reason = _reason(reason)
    now = now or datetime.now(UTC)
    expires = now + timedelta(days=expires_days) if expires_days else None
    write_decisions(data.store, enforcement_rows([{
        "subject_type": subject_type, "subject_id": subject_id, "action": action,
        "reason": f"set by {actor.name}: {reason}", "source": "analyst", "created_at": now, "expires_at": expires,
        "campaign_id": None, "actor": actor.name}]))
    detail = {"enforcement_action": action, "expires_at": expires}
    audit.append(data.store, now, actor.name, actor.role, "set_enforcement", subject_type, subject_id, reason, detail)
    return detail
