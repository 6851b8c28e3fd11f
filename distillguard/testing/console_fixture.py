"""A small store with exchanges, accounts and every detection table, for console tests and screenshots.

The detection engine writes these tables for real; this fixture writes the same columns
(docs/tables.md) with plausible content so the console can be developed and tested on its own.
With ``hostile=True`` prompts, account fields, headers and campaign text carry script-injection
payloads that set ``window.__xss`` — the browser tests prove none of them runs.

    python -m distillguard.testing.console_fixture STORE_DIR [--benign]
"""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime, timedelta

import orjson
import pyarrow as pa

from distillguard.console.tables import ENFORCEMENT_SCHEMA
from distillguard.events.record import Turn
from distillguard.store import Store
from distillguard.testing.factory import make_account, make_exchange, write_world

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
RELEASE = T0 + timedelta(days=3, hours=6)  # "model-b" released here; campaign A pivots within hours

#: Payloads that would set window.__xss (and pop a dialog) if they were ever rendered as HTML.
XSS = [
    '<script>window.__xss = 1; alert("xss-script")</script>',
    '<img src=x onerror="window.__xss = 2; alert(\'xss-img\')">',
    '"><svg onload="window.__xss = 3">',
    "javascript:window.__xss=4",
]
HOSTILE_ACCOUNT = 'acct-<img src=x onerror="window.__xss=5">'

COT_PROMPTS = [
    "Solve step by step and show every intermediate thought before the answer: {q}",
    "Think out loud in detail, listing each reasoning step, then answer: {q}",
]
TOOL_PROMPTS = [
    "You are an autonomous agent. Use the tools to complete: {q}. Call search first, then code_exec.",
]
LEGIT_PROMPTS = ["Summarise this email for me: {q}", "Translate to French: {q}", "Fix the bug in: {q}",
                 "Write a haiku about {q}"]
TOPICS = ["integral of x^2 sin x", "train timetable puzzle", "prime gaps below 1000", "graph colouring",
          "dynamic programming on trees", "refactor a parser", "quarterly report", "the sea"]


def _cap_mix(**kw) -> str:
    return orjson.dumps(kw).decode()


def write_console_fixture(path, *, hostile: bool = True, seed: int = 7) -> Store:
    rnd = random.Random(seed)
    store = Store(path, create=True)
    groups = {
        "camp-cot": [f"acct-cot-{i:02d}" for i in range(12)],
        "camp-agent": [f"acct-agent-{i:02d}" for i in range(8)],
        "camp-uni": [f"acct-uni-{i:02d}" for i in range(5)],
    }
    if hostile:
        groups["camp-cot"][3] = HOSTILE_ACCOUNT
    legit = [f"acct-legit-{i:02d}" for i in range(15)]
    accounts, exchanges, signals = [], [], []
    seq = 0

    def add(acct, ts, model, prompt, ip, ua, ja4, sigs, template):
        nonlocal seq
        seq += 1
        ex = make_exchange(exchange_id=f"x{seq:06d}", ts=ts, account_id=acct, org_id=None, model=model,
                           client_ip=ip, user_agent=ua, tls_ja4=ja4, prompt=prompt, turns=[Turn("user", prompt)],
                           system_prompt="You are a helpful assistant.")
        exchanges.append(ex)
        signals.append({"exchange_id": ex.exchange_id, "account_id": acct, "ts": ts, **sigs,
                        "template_key": template, "task_item_key": None})

    for ci, (camp, members) in enumerate(groups.items()):
        for i, acct in enumerate(members):
            email_local = f"user{1000 + i}"
            if hostile and i == 1:
                email_local = XSS[1]
            accounts.append(make_account(acct, org_id=f"org-{camp}-{i % 3}",
                                         created_at=T0 - timedelta(days=2, minutes=7 * i),
                                         email_domain="mailbox.example" if camp != "camp-uni" else "uni.example.edu",
                                         email_local=email_local, signup_country="SG" if camp != "camp-uni" else "DE",
                                         signup_ip=f"203.0.113.{10 + i}", signup_pathway="free_trial",
                                         verification_level=0, payment_fingerprint=f"pf-{camp}-{i % 2}"))
            for k in range(40 if camp != "camp-uni" else 20):
                ts = T0 + timedelta(hours=rnd.uniform(0, 6 * 24))
                model = "model-a"
                if camp == "camp-cot" and ts > RELEASE + timedelta(hours=5):
                    model = "model-b"
                topic = rnd.choice(TOPICS)
                if camp == "camp-agent":
                    prompt = TOOL_PROMPTS[0].format(q=topic)
                    sigs = {"sig_cot_elicitation": 0.2, "sig_tool_harvest": 0.9, "sig_template_reuse": 0.8}
                    template = "tpl-agent-1"
                elif camp == "camp-uni":
                    prompt = f"Grade this essay on a 1-10 scale: {topic}"
                    sigs = {"sig_cot_elicitation": 0.3, "sig_tool_harvest": 0.0, "sig_template_reuse": 0.6}
                    template = "tpl-grade-1"
                else:
                    prompt = rnd.choice(COT_PROMPTS).format(q=topic)
                    sigs = {"sig_cot_elicitation": 0.95, "sig_tool_harvest": 0.05, "sig_template_reuse": 0.85}
                    template = "tpl-cot-1" if "Solve" in prompt else "tpl-cot-2"
                if hostile and k == 0 and i < len(XSS):
                    prompt = f"{XSS[i]} {prompt}"
                ua = "python-httpx/0.27" if not (hostile and i == 2) else XSS[0]
                add(acct, ts, model, prompt, f"198.18.{ci}.{10 + i % 4}", ua,
                    f"t13d-{camp}", sigs, template)
    for i, acct in enumerate(legit):
        accounts.append(make_account(acct, org_id=f"org-legit-{i}", email_domain="corp.example",
                                     email_local=f"dev{i}", signup_country="US", signup_ip=f"192.0.2.{i + 1}",
                                     payment_fingerprint=f"pf-legit-{i}", verification_level=2))
        for _ in range(rnd.randint(10, 30)):
            ts = T0 + timedelta(hours=rnd.uniform(0, 6 * 24))
            add(acct, ts, rnd.choice(["model-a", "model-b"]) if ts > RELEASE else "model-a",
                rnd.choice(LEGIT_PROMPTS).format(q=rnd.choice(TOPICS)), f"192.0.2.{i + 1}", "openai-python/1.40",
                f"t13d-legit-{i}", {"sig_cot_elicitation": rnd.uniform(0, 0.3), "sig_tool_harvest": rnd.uniform(0, 0.2),
                                    "sig_template_reuse": rnd.uniform(0, 0.3)}, None)
    write_world(store, exchanges, accounts, key="console-fixture")

    f32 = pa.float32()
    sig_schema = pa.schema([("exchange_id", pa.string()), ("account_id", pa.string()),
                            ("ts", pa.timestamp("ms", tz="UTC")), ("sig_cot_elicitation", f32), ("sig_tool_harvest", f32),
                            ("sig_template_reuse", f32), ("template_key", pa.string()), ("task_item_key", pa.string())])
    store.write_table("exchange_signals", pa.Table.from_pylist(signals, schema=sig_schema))

    edges, cm, risk, members = [], [], [], []
    cluster_of = {"camp-cot": "cl-1", "camp-agent": "cl-2", "camp-uni": "cl-3"}
    for camp, accts in groups.items():
        ci = list(groups).index(camp)
        for a, b in zip(accts, accts[1:], strict=False):
            edges.append({"src_account": a, "dst_account": b, "kind": "ip24", "entity": f"198.18.{ci}.0/24", "weight": 0.8})
            edges.append({"src_account": a, "dst_account": b, "kind": "ja4", "entity": f"t13d-{camp}", "weight": 0.6})
        for a, b in zip(accts[::2], accts[1::2], strict=False):
            edges.append({"src_account": a, "dst_account": b, "kind": "payment", "entity": f"pf-{camp}-0", "weight": 0.9})
        if hostile and camp == "camp-cot":
            # Shared entities are attacker-chosen too (user agents, e-mail patterns): plant one in the graph.
            edges.append({"src_account": accts[1], "dst_account": accts[2], "kind": "user_agent",
                          "entity": XSS[2], "weight": 0.5})
        if camp != "camp-uni":
            edges.append({"src_account": accts[0], "dst_account": accts[-1], "kind": "template",
                          "entity": "tpl-cot-1" if camp == "camp-cot" else "tpl-agent-1", "weight": 0.7})
        for a in accts:
            cm.append({"cluster_id": cluster_of[camp], "account_id": a, "org_key": None})
            members.append({"campaign_id": camp, "account_id": a})
            r = {"camp-cot": 0.93, "camp-agent": 0.88, "camp-uni": 0.41}[camp]
            risk.append({"account_id": a, "risk": r, "flagged": r > 0.5, "first_flagged_at": T0 + timedelta(days=1),
                         "cluster_id": cluster_of[camp], "campaign_id": camp,
                         "reasons": ["chain-of-thought elicitation on 95% of prompts", "shares /24 with 11 accounts"]
                         if camp == "camp-cot" else ["tool-use harvesting template"]})
    for a in legit:
        risk.append({"account_id": a, "risk": 0.05, "flagged": False, "first_flagged_at": None, "cluster_id": None,
                     "campaign_id": None, "reasons": []})
    store.write_table("coordination_edges", pa.Table.from_pylist(edges, schema=pa.schema([
        ("src_account", pa.string()), ("dst_account", pa.string()), ("kind", pa.string()), ("entity", pa.string()),
        ("weight", pa.float64())])))
    store.write_table("cluster_members", pa.Table.from_pylist(cm, schema=pa.schema([
        ("cluster_id", pa.string()), ("account_id", pa.string()), ("org_key", pa.string())])))
    store.write_table("clusters", pa.Table.from_pylist([
        {"cluster_id": c, "n_accounts": len(groups[k]), "risk": 0.9, "reasons": ["shared infrastructure"], "campaign_id": k}
        for k, c in cluster_of.items()]))
    store.write_table("account_risk", pa.Table.from_pylist(risk, schema=pa.schema([
        ("account_id", pa.string()), ("risk", pa.float64()), ("flagged", pa.bool_()),
        ("first_flagged_at", pa.timestamp("ms", tz="UTC")), ("cluster_id", pa.string()), ("campaign_id", pa.string()),
        ("reasons", pa.list_(pa.string()))])))
    store.write_table("campaign_members", pa.Table.from_pylist(members))
    evil = (" " + XSS[0]) if hostile else ""
    camps = [
        dict(campaign_id="camp-cot", title="Chain-of-thought harvesting via free-trial hydra" + evil, n_accounts=12,
             n_exchanges=480, first_seen=T0, last_seen=T0 + timedelta(days=6),
             capability_mix=_cap_mix(reasoning=0.86, coding=0.1, other=0.04), models=["model-a", "model-b"],
             pivot_model="model-b", pivot_delay_hours=5.0,
             infrastructure=orjson.dumps({"ip24": ["198.18.0.0/24"], "ja4": ["t13d-camp-cot"], "payment_fingerprints": 2,
                                          "email_domain": "mailbox.example" + evil}).decode(),
             confidence=0.94, recommended_action="block", status="detected",
             evidence=["95% of prompts demand step-by-step reasoning (legit baseline 4%)",
                       "12 accounts share one /24, one JA4 fingerprint and 2 payment instruments",
                       "moved to model-b 5 hours after its release", "prompt template" + (" " + XSS[1] if hostile else "")],
             org_key=None),
        dict(campaign_id="camp-agent", title="Agentic tool-use trace collection", n_accounts=8, n_exchanges=320,
             first_seen=T0, last_seen=T0 + timedelta(days=6), capability_mix=_cap_mix(agentic=0.92, coding=0.08),
             models=["model-a"], pivot_model=None, pivot_delay_hours=None,
             infrastructure=orjson.dumps({"ip24": ["198.18.1.0/24"]}).decode(), confidence=0.81,
             recommended_action="require_verification", status="detected",
             evidence=["every prompt is one tool-use template", "8 accounts share a /24"], org_key=None),
        dict(campaign_id="camp-uni", title="Essay grading from a university lab", n_accounts=5, n_exchanges=100,
             first_seen=T0, last_seen=T0 + timedelta(days=6), capability_mix=_cap_mix(grading=1.0),
             models=["model-a"], pivot_model=None, pivot_delay_hours=None, infrastructure="{}", confidence=0.42,
             recommended_action="throttle", status="detected", evidence=["reward-model style grading prompts"],
             org_key="uni.example.edu"),
    ]
    store.write_table("campaigns", pa.Table.from_pylist(camps, schema=pa.schema([
        ("campaign_id", pa.string()), ("title", pa.string()), ("n_accounts", pa.int64()), ("n_exchanges", pa.int64()),
        ("first_seen", pa.timestamp("ms", tz="UTC")), ("last_seen", pa.timestamp("ms", tz="UTC")),
        ("capability_mix", pa.string()), ("models", pa.list_(pa.string())), ("pivot_model", pa.string()),
        ("pivot_delay_hours", pa.float64()), ("infrastructure", pa.string()), ("confidence", pa.float64()),
        ("recommended_action", pa.string()), ("status", pa.string()), ("evidence", pa.list_(pa.string())),
        ("org_key", pa.string())])))
    store.append_table("enforcement", pa.Table.from_pylist([
        {"subject_type": "account", "subject_id": groups["camp-agent"][0], "action": "throttle",
         "reason": "scan: tool-use harvesting", "source": "scan", "created_at": T0 + timedelta(days=2),
         "expires_at": None, "campaign_id": "camp-agent", "actor": "scan"}], schema=ENFORCEMENT_SCHEMA))
    return store


if __name__ == "__main__":  # pragma: no cover - a convenience for humans
    if len(sys.argv) < 2:
        sys.exit("usage: python -m distillguard.testing.console_fixture STORE_DIR [--benign]")
    write_console_fixture(sys.argv[1], hostile="--benign" not in sys.argv)
    print(f"wrote console fixture store to {sys.argv[1]}")
