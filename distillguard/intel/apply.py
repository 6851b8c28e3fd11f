"""Partner evidence into the local risk score: the hook between ``intel match`` and detection.

``apply_intel`` folds ``intel_boost`` into ``account_risk`` the same way the detection engine
should when it scores: ``risk = 1 - (1 - local_risk) * (1 - boost)``. It keeps the pre-intel
score in the nullable ``risk_before_intel`` column so running it twice (or after a new match)
never compounds the boost, and so an analyst sees how much came from partners. A scan that
rewrites ``account_risk`` should call ``apply_intel(store)`` at its end (or compute the same
formula from ``intel_boost`` itself); ``intel_edges`` rows go into the coordination graph as
kind ``intel``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from distillguard.errors import DistillguardError
from distillguard.intel.config import IntelConfig
from distillguard.store import Store

_TS = pa.timestamp("ms", tz="UTC")
INTEL_REASON = "partner intel"

RISK_SCHEMA = pa.schema([
    ("account_id", pa.string()), ("risk", pa.float64()), ("flagged", pa.bool_()), ("first_flagged_at", _TS),
    ("cluster_id", pa.string()), ("campaign_id", pa.string()), ("reasons", pa.list_(pa.string())),
    ("risk_before_intel", pa.float64()), ("flagged_by_intel", pa.bool_()),
])
ENFORCEMENT_SCHEMA = pa.schema([
    ("subject_type", pa.string()), ("subject_id", pa.string()), ("action", pa.string()), ("reason", pa.string()),
    ("source", pa.string()), ("created_at", _TS), ("expires_at", _TS), ("campaign_id", pa.string()),
    ("actor", pa.string()),
])
ACTIONS = ("allow", "throttle", "require_verification", "protect_reasoning", "block")


RECOMMENDATION_SCHEMA = pa.schema([
    ("account_id", pa.string()), ("action", pa.string()), ("reason", pa.string()), ("sources", pa.list_(pa.string())),
    ("not_enforced_because", pa.string()), ("created_at", _TS),
])


@dataclass
class ApplyReport:
    accounts_boosted: int = 0
    newly_flagged: list[str] = field(default_factory=list)
    enforcement_rows: int = 0
    #: Accounts an ``--enforce`` run only recommended for review (``intel_recommendations``), and why.
    recommended: int = 0
    not_enforced_because: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def apply_intel(store: Store, config: IntelConfig | None = None, now: datetime | None = None,
                enforce_action: str | None = None, enforce_days: int = 30) -> ApplyReport:
    """Raise ``account_risk`` by ``intel_boost``; with ``enforce_action``, enforce on (or, unless the
    configuration allows enforcement for every partner involved, recommend for review) the accounts this
    newly flags."""
    cfg = config or IntelConfig()
    now = now or datetime.now(UTC)
    if enforce_action is not None and enforce_action not in ACTIONS:
        raise DistillguardError(f"unknown enforcement action {enforce_action!r}; choose from {', '.join(ACTIONS)}")
    if not store.has_table("intel_boost"):
        raise DistillguardError("no intel_boost table; run `distillguard intel match` first")
    boost = {r["account_id"]: r for r in store.read_table("intel_boost").to_pylist()}
    current = store.read_table("account_risk").to_pylist() if store.has_table("account_risk") else []
    extra_cols: list[pa.Field] = []
    if current:
        t = store.read_table("account_risk")
        extra_cols = [f for f in t.schema if f.name not in RISK_SCHEMA.names]
    rep = ApplyReport()
    thr = cfg.match.flag_threshold
    seen = set()
    out = []
    for r in current:
        seen.add(r["account_id"])
        out.append(_apply_one(r, boost.get(r["account_id"]), thr, now, rep))
    for aid, b in sorted(boost.items()):
        if aid not in seen:
            base = {"account_id": aid, "risk": 0.0, "flagged": False, "first_flagged_at": None, "cluster_id": None,
                    "campaign_id": None, "reasons": []}
            out.append(_apply_one(base, b, thr, now, rep))
    schema = pa.schema(list(RISK_SCHEMA) + extra_cols)
    for row in out:
        for f in extra_cols:
            row.setdefault(f.name, None)
    store.write_table("account_risk", pa.Table.from_pylist(out, schema=schema))
    if enforce_action and rep.newly_flagged:
        _enforce_or_recommend(store, cfg, boost, rep, enforce_action, now, enforce_days)
    return rep


def _why_not(cfg: IntelConfig, action: str, sources: list[str]) -> str | None:
    """Why intel may not enforce ``action`` on an account whose boost came from ``sources`` (None: it may)."""
    if not cfg.enforce.allow:
        return "intel.enforce.allow is false"
    if action not in cfg.enforce.actions:
        return f"action {action!r} is not in intel.enforce.actions"
    partners = cfg.partners_by_name()
    untrusted = [s for s in sources if s not in partners or not partners[s].may_enforce]
    if untrusted:
        return f"partner {untrusted[0]!r} has no may_enforce"
    return None


def _enforce_or_recommend(store: Store, cfg: IntelConfig, boost: dict, rep: ApplyReport, action: str,
                          now: datetime, days: int) -> None:
    """Partner evidence is someone else's word: it becomes an enforcement row only where the configuration
    says so; everywhere else a recommendation an analyst reviews."""
    enf, rec = [], []
    for a in rep.newly_flagged:
        b = boost[a]
        reason = f"{INTEL_REASON}: " + "; ".join(b["reasons"][:2])
        why = _why_not(cfg, action, list(b["sources"] or []))
        if why is None:
            enf.append({"subject_type": "account", "subject_id": a, "action": action, "reason": reason,
                        "source": "intel", "created_at": now, "expires_at": now + timedelta(days=days),
                        "campaign_id": None, "actor": "intel"})
        else:
            rec.append({"account_id": a, "action": action, "reason": reason, "sources": list(b["sources"] or []),
                        "not_enforced_because": why, "created_at": now})
            if why not in rep.not_enforced_because:
                rep.not_enforced_because.append(why)
    if enf:
        store.append_table("enforcement", pa.Table.from_pylist(enf, schema=ENFORCEMENT_SCHEMA))
        rep.enforcement_rows = len(enf)
    if rec:
        store.append_table("intel_recommendations", pa.Table.from_pylist(rec, schema=RECOMMENDATION_SCHEMA))
        rep.recommended = len(rec)


def _apply_one(r: dict, b: dict | None, thr: float, now: datetime, rep: ApplyReport) -> dict:
    """One account: undo any earlier intel contribution, then add the current one."""
    row = dict(r)
    touched = r.get("risk_before_intel") is not None
    base = float(r["risk_before_intel"]) if touched else float(r.get("risk") or 0.0)
    local_flagged = bool(r.get("flagged")) and not bool(r.get("flagged_by_intel"))
    reasons = [x for x in (r.get("reasons") or []) if not x.startswith(INTEL_REASON)]
    if b is None:
        row.update(risk=base, flagged=local_flagged, risk_before_intel=None, flagged_by_intel=None, reasons=reasons)
        if not local_flagged:
            row["first_flagged_at"] = None if r.get("flagged_by_intel") else r.get("first_flagged_at")
        return row
    risk = 1.0 - (1.0 - base) * (1.0 - float(b["boost"]))
    rep.accounts_boosted += 1
    by_intel = not local_flagged and risk >= thr
    if by_intel and not r.get("flagged"):
        rep.newly_flagged.append(r["account_id"])
        row["first_flagged_at"] = now
    kinds = ", ".join(b["kinds"])
    reasons = reasons + [f"{INTEL_REASON}: matches {b['n_indicators']} partner indicators ({kinds})"] + \
        [f"{INTEL_REASON}: {x}" for x in b["reasons"][:5]]
    row.update(risk=round(risk, 6), flagged=local_flagged or by_intel, reasons=reasons, risk_before_intel=base,
               flagged_by_intel=by_intel)
    return row
