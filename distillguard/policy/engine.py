"""Turn what is known about one request into one decision, in microseconds.

Decisions from the store (by account, cluster, org, /24, payment fingerprint) and live rules
all propose actions; the most severe wins, but "protect reasoning" and "throttle" also apply
alongside each other. Every proposal that counted is kept as a reason, because the reasons are
what an analyst reads in the exchange record afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from distillguard.policy.enforcement import AccountInfo, Snapshot
from distillguard.policy.model import SEVERITY, Policy, Rule

_DAY = 86400.0


@dataclass(slots=True)
class RequestFacts:
    account_id: str
    org_id: str | None = None
    cluster_id: str | None = None
    ip24: str | None = None
    account: AccountInfo | None = None
    country: str | None = None
    endpoint: str | None = None
    model: str | None = None
    reasoning_requested: bool = False
    #: None when the request carries no reasoning; else valid / unsigned / altered / foreign.
    binding: str | None = None
    #: Computes request-classifier scores on first use (only when a rule asks for one).
    score: Callable[[], dict[str, float] | None] | None = None
    _scores: dict | None = field(default=None, repr=False)
    _scored: bool = field(default=False, repr=False)

    def signal(self, name: str) -> float | None:
        if not self._scored:
            self._scored = True
            self._scores = self.score() if self.score else None
        return None if self._scores is None else self._scores.get(name)


@dataclass(slots=True)
class Decision:
    #: What the policy decided (ACTIONS word).
    decided: str
    reasons: list[str]
    protect: bool = False
    throttle: bool = False
    #: True when the decision is only recorded (global shadow mode).
    shadow: bool = False
    error_code: str | None = None

    @property
    def enforced(self) -> str:
        return "allow" if self.shadow else self.decided

    @property
    def protect_enforced(self) -> bool:
        return self.protect and not self.shadow

    @property
    def throttle_enforced(self) -> bool:
        return self.throttle and not self.shadow


def _rule_matches(rule: Rule, f: RequestFacts, enf_actions: set[str], allowlisted: bool, now: float) -> bool:
    w = rule.when
    if w.allowlisted is not None and w.allowlisted != allowlisted:
        return False
    if w.enforcement_in is not None and not enf_actions.intersection(w.enforcement_in):
        return False
    if w.endpoint_in is not None and f.endpoint not in w.endpoint_in:
        return False
    if w.model_in is not None and f.model not in w.model_in:
        return False
    if w.reasoning_requested is not None and w.reasoning_requested != f.reasoning_requested:
        return False
    if w.reasoning_binding_in is not None and f.binding not in w.reasoning_binding_in:
        return False
    a = f.account
    if w.account_status_in is not None and (a is None or a.status not in w.account_status_in):
        return False
    if w.pathway_in is not None and (a is None or a.pathway not in w.pathway_in):
        return False
    if w.verification_below is not None and (a is None or a.verification_level is None
                                             or a.verification_level >= w.verification_below):
        return False
    if w.account_age_days_below is not None and (a is None or a.created_at is None
                                                 or (now - a.created_at) / _DAY >= w.account_age_days_below):
        return False
    if w.region_in is not None:
        country = f.country or (a.country if a else None)
        if country is None or country.upper() not in w.region_in:
            return False
    if w.signal is not None:
        # Checked last: it is the only condition that may cost real CPU.
        v = f.signal(w.signal.name)
        if v is None or v < w.signal.above:
            return False
    return True


def evaluate(policy: Policy, snap: Snapshot, f: RequestFacts, now: float | None = None) -> Decision:
    now = time.time() if now is None else now
    best, reasons, error_code = policy.default_action, [], None
    protect = best == "protect_reasoning"
    throttle = best == "throttle"
    honour = policy.honour_enforcement
    allowlisted = False
    enf_actions: set[str] = set()

    def propose(action: str, reason: str, code: str | None = None) -> None:
        nonlocal best, protect, throttle, error_code
        reasons.append(reason)
        if action == "protect_reasoning":
            protect = True
        elif action == "throttle":
            throttle = True
        if SEVERITY[action] > SEVERITY[best]:
            best = action
            if code:
                error_code = code
        elif SEVERITY[action] == SEVERITY[best] and code and error_code is None:
            error_code = code

    if "account" in honour:
        row = snap.decision("account", f.account_id, now)
        if row is not None:
            enf_actions.add(row.action)
            if row.action == "allow":
                allowlisted = True
                reasons.append(f"account allow-listed ({row.source or 'enforcement'}): {row.reason}".rstrip(": "))
            else:
                propose(row.action, f"account {row.action} ({row.source or 'enforcement'}): {row.reason}".rstrip(": "))
    if not (allowlisted and policy.account_allow_overrides):
        pay = f.account.payment if f.account else None
        for st, sid in (("cluster", f.cluster_id), ("org", f.org_id), ("ip24", f.ip24), ("payment", pay)):
            if st not in honour or sid is None:
                continue
            row = snap.decision(st, sid, now)
            if row is None or row.action == "allow":
                continue
            enf_actions.add(row.action)
            label = "ip /24" if st == "ip24" else st
            propose(row.action, f"{label} {row.action} ({row.source or 'enforcement'}): {row.reason}".rstrip(": "))
    if snap.has_shadow:
        pay = f.account.payment if f.account else None
        for st, sid in (("account", f.account_id), ("cluster", f.cluster_id), ("org", f.org_id), ("ip24", f.ip24),
                        ("payment", pay)):
            row = snap.decision(st, sid, now, shadow=True)
            if row is not None and st in honour:
                reasons.append(f"shadow {'ip /24' if st == 'ip24' else st} {row.action} ({row.source}): "
                               f"{row.reason} (would {row.action})")
    for rule in policy.rules:
        if not _rule_matches(rule, f, enf_actions, allowlisted, now):
            continue
        text = f"rule {rule.name}: {rule.reason or rule.action}"
        if rule.shadow:
            reasons.append(f"shadow {text} (would {rule.action})")
            continue
        propose(rule.action, text, rule.error_code)
    shadow = policy.mode == "shadow"
    if shadow and (best != "allow" or protect or throttle):
        reasons.insert(0, "shadow mode: decision recorded, not enforced")
    return Decision(best, reasons, protect=protect or best == "protect_reasoning", throttle=throttle or best == "throttle",
                    shadow=shadow, error_code=error_code)
