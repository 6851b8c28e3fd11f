"""Evidence lines: what a cluster, a campaign or one account is flagged for, in words an analyst reads (the
report, the console and the campaign records all print these)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from distillguard.scoring.risk import ClusterScore


def _num(v, default=0.0) -> float:
    return default if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


KIND_WORDS = {
    "payment": ("payment fingerprint", "payment fingerprints"), "ip24": ("IP /24", "IP /24s"),
    "asn": ("network (ASN)", "networks (ASNs)"), "ja4": ("TLS fingerprint", "TLS fingerprints"),
    "header_fp": ("header-order fingerprint", "header-order fingerprints"),
    "user_agent": ("client user agent", "client user agents"), "email_domain": ("e-mail domain", "e-mail domains"),
    "email_pattern": ("e-mail naming pattern", "e-mail naming patterns"),
    "creation_burst": ("sign-up burst", "sign-up bursts"),
    "payment_burst": ("sign-up burst on one card", "sign-up bursts on one card"), "template": ("prompt template", "prompt templates"),
    "system_prompt": ("system prompt", "system prompts"), "task_item": ("task-set item", "task-set items"),
    "sync": ("synchronised schedule", "synchronised schedules"), "intel": ("shared indicator", "shared indicators"),
}

SIGNAL_WORDS = {
    "cot_elicitation": "ask for step-by-step or hidden reasoning",
    "reward_grading": "ask for reward-model style grading or ranking",
    "policy_rewrite": "ask for 'censorship-safe' rewrites",
    "task_dataset": "are built on known benchmark / task-set items",
    "cot": "ask for step-by-step or hidden reasoning", "grading": "ask for reward-model style grading or ranking",
    "rewrite": "ask for 'censorship-safe' rewrites", "extraction": "try to extract hidden reasoning",
    "cap_coding": "target coding", "cap_agentic": "target agentic tool use", "cap_vision": "target vision",
    "cap_computer_use": "target computer use", "cap_data_analysis": "target data analysis",
}


def signal_words(name: str) -> str:
    return SIGNAL_WORDS.get(name, f"score high on {name.replace('_', ' ')}")


def cluster_reasons(cs: ClusterScore, rows: list[dict], sh, base_mix: dict[str, float] | None = None,
                    min_lift: float = 2.0, whose: str | None = None, min_cover: float = 0.5,
                    max_kinds: int = 5) -> list[str]:
    """Evidence lines. ``sh``: what the group's accounts share (``campaigns.describe.Shared``, the one count the
    console and report use too); every count of accounts in them says whose accounts they are (``whose``:
    "the campaign's", default "cluster <id>'s"). With ``base_mix`` (each signal's share over the whole store) a
    signal is named only when the group sends it ``min_lift`` times more than everyone does: "50% built on known
    benchmark items" says nothing about a class whose whole store asks benchmark-style questions. ``min_cover`` and
    ``max_kinds``: which kinds the shared-evidence sentence names (``campaigns.evidence_*`` for a campaign)."""
    from distillguard.campaigns.describe import Shared, burst_sentence, shared_sentence, sync_sentence

    n = len(cs.members)
    whose = whose or f"cluster {cs.cluster_id}'s"
    sh = sh if sh is not None else Shared(n)
    out: list[str] = [x for x in (
        shared_sentence(sh, whose, min_cover, max_kinds),
        burst_sentence(sh, [r.get("signup_pathway") or "?" for r in rows], whose),
        sync_sentence(sh, whose) if cs.group_share.get("timing", 0) >= 0.3 else None) if x]
    # content, exchange-weighted
    tot = sum(_num(r.get("n_exchanges")) for r in rows) or 1.0
    best = []
    for key in (rows[0].keys() if rows else []):
        if key.startswith("share_"):
            v = sum(_num(r.get(key)) * _num(r.get("n_exchanges")) for r in rows) / tot
            best.append((v, key[6:]))
    if base_mix is not None:
        best = [(v, k) for v, k in best if v >= min_lift * base_mix.get(k, 0.0)]
    best.sort(reverse=True)
    for v, name in best[:2]:
        if v >= 0.2:
            out.append(f"{v:.0%} of their requests {signal_words(name)}")
    ti = sum(_num(r.get("task_item_share")) * _num(r.get("n_exchanges")) for r in rows) / tot
    if ti >= 0.2 and (base_mix is None or ti >= min_lift * base_mix.get("_task_items", 0.0)):
        out.append(f"{ti:.0%} of their prompts are built on known task-set items")
    utils = sorted(_num(r.get("mean_rpd_util")) for r in rows if r.get("mean_rpd_util") is not None)
    if utils and utils[len(utils) // 2] >= 0.5:
        lo, hi = utils[len(utils) // 10], utils[(9 * len(utils)) // 10]
        out.append(f"daily volume sits at {lo:.0%}-{hi:.0%} of the per-account limit")
    st = sum(_num(r.get("single_turn_share")) * _num(r.get("n_exchanges")) for r in rows) / tot
    if st >= 0.8:
        out.append(f"{st:.0%} of their requests are single-turn")
    piv = [r for r in rows if r.get("c_fast_pivot")]
    if len(piv) >= 0.5 * n:
        out.append(f"{len(piv) / n:.0%} moved to the newly released model within a day of its release")
    if cs.dense_density > 0:
        out.append(f"they form a dense block in the account × shared-entity data (density {cs.dense_density:.1f})")
    if cs.declared:
        out.append("all accounts belong to one verified organisation (declared group: risk discounted)")
    return out


def account_reasons(r: dict, cs: ClusterScore | None) -> list[str]:
    out = []
    if r.get("c_intent", 0) >= 0.3:
        out.append(f"this account: {r['c_intent']:.0%} of requests elicit reasoning, grading or rewrites")
    if r.get("c_limit_util", 0) >= 0.5:
        out.append(f"this account: volume at {r['c_limit_util']:.0%} of its daily limit")
    if r.get("c_single_turn", 0) >= 0.9 and r.get("c_template_reuse", 0) >= 0.3:
        out.append(f"this account: single-turn, {r['c_template_reuse']:.0%} on one template")
    if cs is None and r.get("suspicion", 0) >= 0.5:
        out.append("no coordination found: a lone account is not flagged on content alone")
    return out
