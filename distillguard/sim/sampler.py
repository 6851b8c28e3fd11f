"""A world sampler: draw a whole world config (scale, personas and cohorts, attack styles, timing,
infrastructure) from a seed, so detection is measured on a family of worlds rather than tuned to one.

The sampled world is an ordinary world dict (validated by the same models, written next to the store as
``sampled_world.yaml``), built from the shipped catalogue: the benign personas and cohorts of
``benign_cohorts`` and attack styles parameterised here. Every draw comes from one seeded generator, so
``(family, seed)`` names a world exactly.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import numpy as np

from distillguard.errors import ConfigError
from distillguard.sim.config import read_world_raw, resolve_config_path

#: family → what it draws; `mixed` picks one of the others per seed with these weights
FAMILY_WEIGHTS = {"standard": 0.45, "quiet_hydra": 0.2, "small_provider": 0.15, "no_attackers": 0.2}
FAMILIES = (*FAMILY_WEIGHTS, "mixed")
ATTACK_PROFILES = ("cot_elicit", "rm_grading", "censorship_rewrite", "agentic_transcript", "coding_distill",
                   "vision_distill", "orchestration", "debug_mode", "translate_reasoning", "inline_tags",
                   "replay_reasoning")
ATTACK_STYLES = ("reasoning_pool", "agentic_residential", "coding_hydra", "quiet_hydra", "ban_rotation", "low_and_slow")
ALWAYS = ("chat_users", "developers")
#: the scale range of sampled worlds (kept small so a K=20 family runs on a laptop)
SCALE_RANGE = (0.003, 0.01)


def _catalogue() -> dict:
    return read_world_raw(resolve_config_path("benign_cohorts"))


def _u(rng, lo, hi) -> float:
    return float(rng.uniform(lo, hi))


def _logu(rng, lo, hi) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _content(rng, k_lo=1, k_hi=4, pool=ATTACK_PROFILES) -> dict[str, float]:
    k = int(rng.integers(k_lo, k_hi + 1))
    names = rng.choice(pool, size=k, replace=False)
    w = rng.dirichlet(np.ones(k))
    return {str(n): round(float(x), 3) + 0.01 for n, x in zip(names, w, strict=True)}


def _perturb_persona(rng, p: dict, days: int) -> dict:
    """Shape a catalogue persona: sizes, volumes, and each cohort's own knobs."""
    p = copy.deepcopy(p)
    if p.get("accounts_scale", "linear") != "fixed" or p["accounts"] > 50:
        p["accounts"] = max(1, int(round(p["accounts"] * _logu(rng, 0.4, 2.0))))
    if "rate" in p and p["rate"].get("per_account_day"):
        p["rate"]["per_account_day"] = round(p["rate"]["per_account_day"] * _logu(rng, 0.6, 1.6), 2)
    if p.get("exchanges"):
        # the heavy single-organisation personas (labelling, reseller, tutoring) are drawn lighter than the
        # shipped worlds' so a sampled world stays ~0.1-0.4M exchanges at scale <= 0.01
        p["exchanges"] = round(p["exchanges"] * _logu(rng, 0.15, 1.0))
    ident = p.setdefault("identity", {})
    if p["name"] == "course_lab":
        h = sorted(rng.choice(np.arange(12, 22), size=2, replace=False).tolist())
        p["timing"].update(window_hours=[float(x) for x in h], window_minutes=_u(rng, 60, 150))
        day = _u(rng, 0, days / 3)
        ident["created"] = {"from_day": day, "to_day": day, "bursts": 1, "burst_hours": _u(rng, 1, 6)}
    elif p["name"] in ("onboarding_wave", "hackathon"):
        day = _u(rng, 0, days - 3)
        ident["created"] = {"from_day": day, "to_day": day, "bursts": 1, "burst_hours": _u(rng, 1, 5)}
        if p["name"] == "hackathon":
            p["start_day"], p["end_day"] = day, min(days, day + _u(rng, 1.5, 4))
        else:
            ident["countries"] = {str(rng.choice(["GB", "DE", "US", "FR", "NL", "JP", "IN"])): 1.0}
    elif p["name"] == "eval_teams":
        p["models"] = {"pivot_share": _u(rng, 0.3, 0.9), "pivot_delay_hours": _u(rng, 1, 12)}
    return p


def _identity(rng, n_cards: int, reuse: float) -> dict:
    return {"email_domains": str(rng.choice(["consumer", "mixed", "mixed"])),
            "email_pattern": {"stem_seq": _u(rng, 0, 0.5), "random": _u(rng, 0, 0.4), "firstlast": _u(rng, 0.1, 0.5),
                              "handle": _u(rng, 0.1, 0.4)},
            "pathway": {"standard": 0.6, "free_trial": _u(rng, 0, 0.3), "education": _u(rng, 0, 0.2),
                        "startup": _u(rng, 0, 0.2)},
            "payment": {"mode": "pool", "instruments": n_cards, "reuse_share": reuse, "none_share": _u(rng, 0, 0.3)},
            "created": {"from_day": -_u(rng, 20, 90), "to_day": -_u(rng, 0, 5), "bursts": int(rng.integers(1, 30)),
                        "burst_hours": _u(rng, 1, 8)}}


def _campaign(rng, style: str, cid: str, days: int, pools: dict, shared_pool: str | None) -> dict:
    """One attack of a style, every knob drawn."""
    accounts = int(_logu(rng, 40, 3000))
    c: dict = {"id": cid, "title": f"{style} ({cid})", "accounts": accounts, "content": _content(rng),
               "identity": _identity(rng, max(1, int(accounts / _logu(rng, 3, 40))), _u(rng, 0.5, 1.0)),
               "mixing": {"benign_share": round(_u(rng, 0, 0.5), 2)},
               "client": {"custom_share": round(_u(rng, 0, 0.9), 2)},
               "models": {"pivot_share": round(_u(rng, 0.2, 0.9), 2), "pivot_delay_hours": _u(rng, 4, 60)},
               "start_day": round(_u(rng, 0, days / 3), 1)}
    pool = shared_pool
    if style == "reasoning_pool":
        pool = pool or f"dc-{cid}"
        pools.setdefault(pool, {"kind": "datacenter", "size": int(_logu(rng, 20, 400)), "prefixes_24": int(rng.integers(2, 30))})
        c.update(exchanges=_logu(rng, 1e5, 2e6), network={"pool": pool, "rotation": "per_request"},
                 timing={"mode": "synchronized", "windows_per_day": int(rng.integers(3, 14)), "window_minutes": _u(rng, 20, 90),
                         "account_jitter_minutes": _u(rng, 0, 30)},
                 rate={"at_limit": bool(rng.random() < 0.5), "limit_fraction": _u(rng, 0.5, 0.95)})
        c["content"] = _content(rng, 1, 3, ("cot_elicit", "rm_grading", "censorship_rewrite", "inline_tags", "debug_mode"))
    elif style == "agentic_residential":
        pool = pool or f"resi-{cid}"
        pools.setdefault(pool, {"kind": "residential", "size": int(_logu(rng, 500, 8000))})
        c.update(exchanges=_logu(rng, 3e5, 5e6), network={"pool": pool, "rotation": "per_session"},
                 timing={"mode": "shifted", "windows_per_day": int(rng.integers(4, 14)), "shift_minutes": _u(rng, 30, 240),
                         "session_requests": _u(rng, 3, 12)})
    elif style == "coding_hydra":
        pool = pool or f"dc-{cid}"
        pools.setdefault(pool, {"kind": "datacenter", "size": int(_logu(rng, 100, 1000)), "prefixes_24": int(rng.integers(5, 60))})
        pools.setdefault(f"hydra-{cid}", {"kind": "residential", "size": int(_logu(rng, 2000, 10000))})
        c.update(exchanges=_logu(rng, 1e6, 1e7), network={"pool": pool, "rotation": "per_request"},
                 timing={"mode": "jittered", "windows_per_day": int(rng.integers(6, 16)), "jitter_minutes": _u(rng, 5, 40)},
                 rate={"at_limit": True},
                 proxy_network={"accounts": int(_logu(rng, 2000, 20000)), "share": round(_u(rng, 0.1, 0.5), 2),
                                "benign_share": round(_u(rng, 0.3, 0.7), 2),
                                "network": {"pool": f"hydra-{cid}", "rotation": "per_session"}})
    elif style == "quiet_hydra":
        # residential IPs in each account's own country, ~25 requests/account/day, 40% ordinary traffic,
        # rare card reuse, human timing with each account on its own schedule
        pools.setdefault(f"resi-{cid}", {"kind": "residential", "size": int(_logu(rng, 5000, 30000))})
        c.update(accounts=int(_logu(rng, 2000, 20000)), rate={"per_account_day": _u(rng, 15, 35), "active_share": _u(rng, 0.5, 0.9)},
                 network={"pool": f"resi-{cid}", "match_country": True, "rotation": "per_session",
                          "ips_per_account": int(rng.integers(4, 32))},
                 timing={"mode": "diurnal", "session_requests": _u(rng, 3, 8)},
                 mixing={"benign_share": round(_u(rng, 0.3, 0.5), 2)})
        c["identity"]["payment"].update(instruments=max(1, c["accounts"] // 50), reuse_share=round(_u(rng, 0.02, 0.15), 3))
        c["identity"]["email_pattern"] = {"firstlast": 0.4, "first_digits": 0.3, "handle": 0.2, "random": 0.1}
    elif style == "ban_rotation":
        pool = pool or f"resi-{cid}"
        pools.setdefault(pool, {"kind": "residential", "size": int(_logu(rng, 500, 5000))})
        c.update(exchanges=_logu(rng, 3e5, 3e6), network={"pool": pool, "rotation": "per_session"},
                 timing={"mode": "shifted", "windows_per_day": int(rng.integers(4, 12)), "shift_minutes": _u(rng, 60, 240)},
                 ban_evasion={"banned_share": round(_u(rng, 0.2, 0.6), 2), "ban_from_day": 1.0, "ban_to_day": float(days - 1),
                              "standby_accounts": max(3, accounts // int(rng.integers(2, 6))),
                              "generations": int(rng.integers(1, 4)), "retire_share": round(_u(rng, 0, 0.3), 2),
                              "takeover_hours": _u(rng, 0.5, 12)})
    else:  # low_and_slow
        pools.setdefault(f"resi-{cid}", {"kind": "residential", "size": int(_logu(rng, 5000, 40000))})
        c.update(accounts=int(_logu(rng, 2000, 25000)), rate={"per_account_day": _u(rng, 10, 40), "dispersion": _u(rng, 1, 5)},
                 network={"pool": f"resi-{cid}", "rotation": "per_day", "ips_per_account": int(rng.integers(2, 6))},
                 timing={"mode": "diurnal", "session_requests": _u(rng, 3, 8)})
    if "exchanges" in c:
        c["exchanges"] = round(c["exchanges"])
        c["identity"]["rpd_limit"] = int(max(100, c["exchanges"] / max(1, c["accounts"] * days) * 3))
    return c


def _small_provider(rng, cat: dict, raw: dict) -> None:
    """~5k requests over ~230 accounts, a few small campaigns, exchanges only (no account facts)."""
    days = int(rng.integers(5, 15))
    raw.update(days=days, account_facts=False, edge_fingerprints=bool(rng.random() < 0.4), proxy_pools={})
    by = {p["name"]: p for p in cat["personas"]}
    n_benign = int(rng.integers(150, 260))
    per_day = 3500 / days / n_benign
    raw["personas"] = [
        {**copy.deepcopy(by["chat_users"]), "accounts": int(n_benign * 0.8), "accounts_scale": "fixed",
         "rate": {"per_account_day": per_day, "active_share": 0.5}},
        {**copy.deepcopy(by["developers"]), "accounts": int(n_benign * 0.2), "accounts_scale": "fixed",
         "rate": {"per_account_day": per_day * 2, "active_share": 0.5}},
    ]
    for name in rng.choice(["stepwise_tool_users", "agent_framework_users", "tutoring_cohort", "eval_teams"], size=2, replace=False):
        p = copy.deepcopy(by[str(name)])
        p.update(accounts=int(rng.integers(2, 15)), accounts_scale="fixed")
        p.pop("exchanges", None)
        p.pop("exchanges_scale", None)
        p["rate"] = {"per_account_day": _u(rng, 3, 15)}
        raw["personas"].append(p)
    raw["campaigns"] = []
    for i in range(int(rng.integers(2, 6))):
        n = int(rng.integers(3, 11))
        raw["campaigns"].append({
            "id": f"small-{i}", "accounts": n, "accounts_scale": "fixed", "min_accounts": 1,
            "exchanges": float(n * _u(rng, 15, 60)), "exchanges_scale": "fixed", "content": _content(rng),
            "identity": {"email_domains": "mixed"}, "network": {"kind": str(rng.choice(["datacenter", "residential"]))},
            "client": {"custom_share": round(_u(rng, 0, 1), 2)}, "mixing": {"benign_share": round(_u(rng, 0, 0.4), 2)},
            "timing": {"mode": str(rng.choice(["jittered", "diurnal", "shifted"]))}})


def sample_world(seed: int, family: str = "mixed") -> tuple[dict, float]:
    """A world dict and the scale to simulate it at, drawn from ``(family, seed)``."""
    if family not in FAMILIES:
        raise ConfigError(f"unknown world family {family!r}; choose from {', '.join(FAMILIES)}")
    rng = np.random.default_rng([seed, 20611])
    if family == "mixed":
        fam = list(FAMILY_WEIGHTS)
        w = np.array(list(FAMILY_WEIGHTS.values()))
        family = fam[int(rng.choice(len(fam), p=w / w.sum()))]
    cat = _catalogue()
    days = int(rng.integers(10, 22))
    start = datetime(2026, 1, 5, tzinfo=UTC) + timedelta(days=7 * int(rng.integers(0, 30)))
    release = start + timedelta(days=_u(rng, 0.3, 0.7) * days)
    raw = {k: copy.deepcopy(cat[k]) for k in ("prompt_files", "content_files", "client_stacks") if k in cat}
    raw.update(name=f"{family}-{seed}", description=f"sampled world (family {family}, seed {seed})", seed=int(seed),
               start=start.isoformat(), days=days, responses="text",
               models=[{"name": "atlas-3", "share": 0.6}, {"name": "atlas-3-mini", "share": 0.4},
                       {"name": "atlas-4", "released": release.isoformat(), "benign_max_share": _u(rng, 0.2, 0.6),
                        "benign_adoption_hours": _u(rng, 24, 120), "reasoning": str(rng.choice(["visible", "summarized", "hidden"]))}])
    if family == "small_provider":
        _small_provider(rng, cat, raw)
        return raw, 1.0
    scale = round(_logu(rng, *SCALE_RANGE), 4)
    personas = []
    for p in cat["personas"]:
        if p["name"] in ALWAYS or rng.random() < (0.75 if p.get("hard_negative") else 0.5):
            personas.append(_perturb_persona(rng, p, days))
    raw["personas"] = personas
    pools: dict = {}
    used = {pp.get("network", {}).get("pool") for pp in personas} - {None}
    pools.update({k: v for k, v in cat.get("proxy_pools", {}).items() if k in used})
    campaigns = []
    if family == "quiet_hydra":
        styles = ["quiet_hydra"] + list(rng.choice(ATTACK_STYLES, size=int(rng.integers(0, 2))))
    elif family == "standard":
        styles = list(rng.choice(ATTACK_STYLES, size=int(rng.integers(1, 4)), replace=False))
    else:
        styles = []
    shared = f"shared-{seed}" if len(styles) > 1 and rng.random() < 0.3 else None  # infrastructure reuse
    if shared:
        pools[shared] = {"kind": str(rng.choice(["datacenter", "residential"])), "size": int(_logu(rng, 200, 3000))}
    for i, style in enumerate(styles):
        campaigns.append(_campaign(rng, str(style), f"c{i}-{style.replace('_', '-')}", days, pools, shared))
    raw.update(campaigns=campaigns, proxy_pools=pools)
    return raw, scale
