"""A small hand-made labeled world for detection-stage tests.

The simulator builds the real benchmark worlds; this one is tiny (seconds to build) and shaped
to exercise each hard case on purpose: a low-and-slow campaign whose accounts are individually
unremarkable, a hydra campaign with varied infrastructure that only its content and timing tie
together, and every hard-negative persona (NAT-shared IP, popular tool template, benchmark
researcher, batch-labelling org, tutoring platform, reseller). Because the signals stage is
built separately, the world also writes an ``exchange_signals`` table with plausible scores for
each prompt kind, so behaviour/graph/scoring can be tested on their own.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import pyarrow as pa

from distillguard.events.schema import ACCOUNT_SCHEMA, EXCHANGE_SCHEMA
from distillguard.store import Store
from distillguard.testing.factory import BASE_TS

SIGNALS = ("sig_cot_elicitation", "sig_reward_grading", "sig_policy_rewrite", "sig_cap_coding", "sig_cap_agentic",
           "sig_cap_vision")
COMMON_JA4 = [f"t13d1516h2_8daaf6152771_{i:012x}" for i in range(5)]
COMMON_UA = [("OpenAI/Python 1.40.0", "openai", "1.40.0"), ("OpenAI/Python 1.52.2", "openai", "1.52.2"),
             ("Anthropic/Python 0.34.0", "anthropic", "0.34.0"), ("python-requests/2.32", None, None),
             ("node-fetch/3.3", None, None)]
COMMON_HFP = [f"hfp{i}" for i in range(5)]
FREE_MAIL = ["gmail.com", "outlook.com", "yahoo.com", "proton.me"]
FIRST = ["anna", "ben", "carla", "dev", "eli", "fay", "gus", "hana", "ivan", "jo", "kim", "lee", "mo", "nia"]

#: prompt kind → (signal means, template key or None, task set or None, turns, tools, reasoning)
KINDS = {
    "chat": ({}, None, None),
    "coding_agent": ({"sig_cap_coding": 0.8, "sig_cap_agentic": 0.6}, "tmpl-codepilot", None),
    "cot_task": ({"sig_cot_elicitation": 0.9}, "tmpl-cot", "gsm8k"),
    "grading": ({"sig_reward_grading": 0.9}, "tmpl-grade", None),
    "rewrite": ({"sig_policy_rewrite": 0.85}, "tmpl-rewrite", None),
    "label": ({"sig_reward_grading": 0.35}, "tmpl-label", None),
    "tutor": ({"sig_cot_elicitation": 0.7}, "tmpl-tutor", None),
    "agentic_task": ({"sig_cap_agentic": 0.9, "sig_cap_coding": 0.7}, "tmpl-agent-task", "swebench"),
    "vision_task": ({"sig_cap_vision": 0.9}, "tmpl-vision-task", None),
    "bench_cot": ({"sig_cot_elicitation": 0.85}, "tmpl-bench", "gsm8k"),
}


@dataclass
class _Acct:
    account_id: str
    persona: str
    campaign: str | None
    row: dict
    per_day: float
    kinds: dict[str, float]
    hours: tuple[int, int] = (8, 22)
    ips: list[str] = field(default_factory=list)
    asn: int = 0
    ua: tuple = ("OpenAI/Python 1.40.0", "openai", "1.40.0")
    ja4: str = COMMON_JA4[0]
    hfp: str = COMMON_HFP[0]
    multi_turn: float = 0.4
    system_prompt: str | None = None
    sync_slots: list[int] | None = None  # synchronised: minute offsets within each active hour
    model_pivot_hours: float | None = None


@dataclass
class TinyWorld:
    store: Store
    labels: dict[str, tuple[str | None, str]]  # account_id -> (campaign_id, persona)
    release_ts: object


def build_tiny_world(store: Store, seed: int = 1, days: int = 4, hydra_accounts: int = 24,
                     slow_accounts: int = 20, plant: dict[str, str] | None = None, benign_scale: int = 1) -> TinyWorld:
    rng = np.random.default_rng(seed)
    release = BASE_TS + timedelta(days=days * 0.6)
    accts: list[_Acct] = []
    n = 0

    def acct(persona, campaign, per_day, kinds, **kw):
        nonlocal n
        n += 1
        aid = f"acct-{rng.integers(10**6, 10**7)}-{n}"
        row = dict(account_id=aid, org_id=f"org-{rng.integers(10**8)}",
                   created_at=BASE_TS - timedelta(days=float(rng.uniform(30, 700))),
                   email_domain=str(rng.choice(FREE_MAIL)),
                   email_local=f"{rng.choice(FIRST)}.{rng.choice(FIRST)}{rng.integers(0, 99)}",
                   signup_country="US", signup_ip=None, signup_pathway="standard", verification_level=1,
                   payment_fingerprint=f"pay-{rng.integers(10**12)}", tier="tier-1", rpm_limit=60, rpd_limit=1000,
                   status="active", status_changed_at=None)
        row.update(kw.pop("row", {}))
        a = _Acct(aid, persona, campaign, row, per_day, kinds, **kw)
        if not a.ips:
            a.ips = [_rand_ip(rng)]
        if not a.asn:
            a.asn = int(rng.integers(1000, 1030))
        accts.append(a)
        return a

    def benign_client():
        u = COMMON_UA[int(rng.integers(len(COMMON_UA)))]
        return dict(ua=u, ja4=str(rng.choice(COMMON_JA4)), hfp=str(rng.choice(COMMON_HFP)))

    for _ in range(120 * benign_scale):  # ordinary chat users
        acct("chat", None, float(rng.uniform(3, 30)), {"chat": 0.85, "coding_agent": 0.15}, **benign_client())
    nat_ip = "192.0.2.10"
    for _ in range(30 * benign_scale):  # university behind one NAT
        acct("nat_shared_ip", None, float(rng.uniform(3, 20)), {"chat": 0.7, "tutor": 0.1, "coding_agent": 0.2},
             ips=[nat_ip], asn=2001, row=dict(email_domain="uni.example.edu", signup_pathway="education"),
             **benign_client())
    for _ in range(40 * benign_scale):  # popular open-source tool, one system prompt, independent users
        acct("popular_tool", None, float(rng.uniform(5, 40)), {"coding_agent": 1.0}, multi_turn=0.9,
             system_prompt="You are CodePilot, an open-source coding assistant. Follow the repository conventions.",
             ua=("codepilot/2.1 OpenAI/Python 1.52.2", "openai", "1.52.2"), ja4=COMMON_JA4[1], hfp=COMMON_HFP[2])
    acct("benchmark_researcher", None, 300.0, {"bench_cot": 0.9, "chat": 0.1}, multi_turn=0.0, hours=(0, 24),
         row=dict(signup_pathway="research", verification_level=3, rpd_limit=20000, rpm_limit=600), **benign_client())
    label_pay, label_ip = "pay-labelco", "203.0.113.40"
    for _ in range(3):
        acct("batch_labelling", None, 400.0, {"label": 1.0}, multi_turn=0.0, hours=(0, 24), ips=[label_ip], asn=3001,
             row=dict(org_id="org-labelco", payment_fingerprint=label_pay, signup_pathway="enterprise",
                      verification_level=3, email_domain="labelco.example", rpd_limit=50000, rpm_limit=2000),
             ua=("labelco-batch/1.0", "openai", "1.52.2"), ja4=COMMON_JA4[2], hfp=COMMON_HFP[3])
    acct("tutoring_platform", None, 300.0, {"tutor": 0.9, "chat": 0.1}, multi_turn=0.3, hours=(6, 24),
         system_prompt="You are a patient maths tutor. Explain every step so a student can follow.",
         row=dict(verification_level=2, rpd_limit=20000, rpm_limit=600), **benign_client())
    acct("reseller", None, 400.0, {"chat": 0.6, "coding_agent": 0.3, "cot_task": 0.05, "grading": 0.05},
         hours=(0, 24), ips=[f"198.18.7.{i}" for i in range(2, 9)], asn=4001,
         row=dict(signup_pathway="reseller", verification_level=2, rpd_limit=50000, rpm_limit=2000), **benign_client())

    # campaign "slow": low volume per account, tied by creation burst, payments, e-mail shape, proxy pool, timing
    burst = BASE_TS - timedelta(days=3, hours=5)
    pays = [f"pay-{rng.integers(10**12)}" for _ in range(3)]
    pool = [f"45.77.{k}.{j}" for k in (10, 11, 12) for j in range(2, 40)]
    slots = sorted(rng.choice(60, size=2, replace=False).tolist())
    for i in range(slow_accounts):
        acct("attacker", "camp-slow", float(rng.uniform(12, 18)), {"cot_task": 0.6, "grading": 0.2, "rewrite": 0.1, "chat": 0.1},
             multi_turn=0.0, hours=(0, 24), ips=list(rng.choice(pool, size=4, replace=False)), asn=20473,
             ua=COMMON_UA[1], ja4="t13d1715h2_5b57614c22b0_3d5424432f57", hfp="hfp-rare-1", sync_slots=slots,
             model_pivot_hours=float(rng.uniform(2, 10)),
             row=dict(created_at=burst + timedelta(seconds=float(rng.uniform(0, 900))), email_domain="gmail.com",
                      email_local=f"{rng.choice(FIRST)}{rng.integers(1000, 9999)}", signup_pathway="education",
                      verification_level=0, payment_fingerprint=pays[i % 3], rpd_limit=1000))
    # campaign "hydra": near-limit volume, residential rotating IPs, ordinary client, ordinary sign-ups;
    # tied only by templates, task items and synchronised scheduling. 30% mixed ordinary traffic.
    hslots = sorted(rng.choice(60, size=3, replace=False).tolist())
    for _ in range(hydra_accounts):
        acct("attacker", "camp-hydra", 55.0, {"agentic_task": 0.45, "vision_task": 0.25, "chat": 0.3},
             multi_turn=0.05, hours=(0, 24), ips=[_rand_ip(rng) for _ in range(40)], sync_slots=hslots,
             model_pivot_hours=float(rng.uniform(1, 20)), row=dict(rpd_limit=60, rpm_limit=5), **benign_client())

    ex_rows, sig_rows = [], []
    end = BASE_TS + timedelta(days=days)
    for a in accts:
        _gen_exchanges(rng, a, BASE_TS, end, release, ex_rows, sig_rows, plant)
    ex = pa.Table.from_pylist(ex_rows, schema=EXCHANGE_SCHEMA)
    store.write_exchanges(ex, key=f"tiny-{seed}")
    store.write_accounts(pa.Table.from_pylist([a.row for a in accts], schema=ACCOUNT_SCHEMA), key=f"0-tiny-{seed}")
    sig_schema = pa.schema([("exchange_id", pa.string()), ("account_id", pa.string()), ("ts", pa.timestamp("ms", tz="UTC"))]
                           + [(s, pa.float32()) for s in SIGNALS] + [("template_key", pa.string()), ("task_item_key", pa.string())])
    store.write_table("exchange_signals", pa.Table.from_pylist(sig_rows, schema=sig_schema))
    return TinyWorld(store, {a.account_id: (a.campaign, a.persona) for a in accts}, release)


def _rand_ip(rng) -> str:
    return f"{rng.integers(60, 220)}.{rng.integers(0, 255)}.{rng.integers(0, 255)}.{rng.integers(1, 254)}"


def _gen_exchanges(rng, a: _Acct, start, end, release, ex_rows, sig_rows, plant) -> None:
    r = random.Random(int(rng.integers(2**31)))
    days = (end - start).days
    kinds = list(a.kinds)
    weights = [a.kinds[k] for k in kinds]
    lo, hi = a.hours
    for d in range(days):
        k = int(rng.poisson(a.per_day))
        for _ in range(k):
            h = r.randrange(lo, hi)
            m = (r.choice(a.sync_slots) + r.uniform(0, 0.8)) if a.sync_slots else r.uniform(0, 60)
            ts = start + timedelta(days=d, hours=h, minutes=m)
            kind = r.choices(kinds, weights)[0]
            means, tmpl, task = KINDS[kind]
            model = "model-a"
            if ts >= release:
                if a.model_pivot_hours is not None and ts >= release + timedelta(hours=a.model_pivot_hours):
                    model = "model-b" if r.random() < 0.9 else "model-a"
                elif a.model_pivot_hours is None and r.random() < 0.1:
                    model = "model-b"
            n_turns = r.randrange(3, 12) if r.random() < a.multi_turn else 1
            eid = f"x{len(ex_rows):07d}"
            item = f"{task}:{r.randrange(400)}" if task else None
            prompt = f"{kind} request {r.randrange(10**9)}" + (f" about item {item}" if item else "")
            if plant and a.persona in plant:
                prompt = plant[a.persona] + " " + prompt
            ex_rows.append(dict(
                exchange_id=eid, ts=ts, account_id=a.account_id, org_id=a.row["org_id"], model=model,
                endpoint="chat.completions", client_ip=r.choice(a.ips), client_asn=a.asn,
                user_agent=a.ua[0], sdk_name=a.ua[1], sdk_version=a.ua[2], tls_ja4=a.ja4, header_order_fp=a.hfp,
                system_prompt=a.system_prompt, turns=[{"role": "user", "text": prompt}], prompt=prompt, n_turns=n_turns,
                tools_offered=["bash", "edit"] if kind in ("coding_agent", "agentic_task") else [],
                has_images=kind == "vision_task", max_tokens=r.choice((1024, 4096, 8192)),
                temperature=r.choice((0.0, 0.7, 1.0)), reasoning_requested=kind in ("cot_task", "bench_cot"),
                response_chars=r.randrange(200, 4000), input_tokens=r.randrange(20, 800),
                output_tokens=r.randrange(100, 2000), http_status=200, latency_ms=r.randrange(300, 9000),
                source_format="native"))
            sig = {s: min(1.0, max(0.0, r.gauss(means.get(s, 0.05), 0.08))) for s in SIGNALS}
            use_tmpl = tmpl if (tmpl and r.random() < 0.85) else None
            sig_rows.append(dict(exchange_id=eid, account_id=a.account_id, ts=ts, **sig, template_key=use_tmpl,
                                 task_item_key=item))
