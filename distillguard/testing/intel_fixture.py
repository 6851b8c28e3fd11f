"""Two providers that each see part of one distillation campaign, for the intel stage's tests and demo.

Provider A saw the bigger part, ran detection and confirmed the campaign: its store has the
detection tables (``campaigns``, ``campaign_members``, ``account_risk``, ``exchange_signals``) the
scan stage writes, in the shapes docs/tables.md fixes. Provider B saw a few low-volume accounts of
the same operation under different account ids; its scan ran but flagged none of them (its
``account_risk`` says so). The campaign's shared infrastructure is what a real operation leaks:
proxy /24s, one hosting ASN, a JA4 and header order of its harvesting client, a throwaway e-mail
domain, one payment instrument, and two prompt templates whose slots change every request.

Both providers also see traffic that must NOT become or match an indicator: a university NAT IP
and a popular SDK user agent that the campaign shares with many legitimate customers, a benign
customer hosted in the same ASN, and a benign app with its own fixed template.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from distillguard.events.record import Turn
from distillguard.store import Store
from distillguard.testing.factory import make_account, make_exchange, write_world

T0 = datetime(2026, 2, 10, 8, 0, tzinfo=UTC)
_TS = pa.timestamp("ms", tz="UTC")

COT_TEMPLATE = ("You are an expert olympiad tutor. Solve the following problem and write out your complete "
                "step by step reasoning, checking every intermediate result, before you state the final answer. "
                "Problem: {slot} When you are done, give the final answer on its own line after the word Answer.")
CODE_TEMPLATE = ("Act as a senior software engineer working on a production system. Write a complete and well "
                 "tested implementation for the task below, explain each design decision you make in detail, "
                 "and then list the edge cases your tests cover. Task: {slot}")
BENIGN_APP_TEMPLATE = "Summarize this customer review in one friendly sentence for our dashboard: {slot}"

NAT_IP = "192.0.2.55"  # a university NAT: campaign and many legitimate customers behind it
COMMON_UA = "python-httpx/0.27.0"
CAMPAIGN = dict(
    nets=("203.0.113", "198.18.7"), asn=64512, ja4="t13d1715h2_5b57614c22b0_3cbfd9057e0d",
    header_fp="hfp-7f3a19c2", ua="harvest-client/2.3 (linux)", domain="relaymail.example",
    payment="pf-7c1e9a04d2", email_b_only="mailhub-q.example",
)

_NOUNS = ["triangle", "sequence", "polynomial", "lattice", "graph", "matrix", "prime", "circle", "parabola",
          "tournament", "chessboard", "necklace", "permutation", "integer", "fraction", "cube", "hexagon",
          "coin", "committee", "deck", "garden", "river", "ladder", "clock", "tiling"]
_VERBS = ["has", "contains", "is split into", "is coloured with", "is arranged in", "rotates through",
          "is labelled by", "is folded along", "is covered by", "moves across"]
_ASKS = ["find the smallest possible value", "prove that the sum is even", "count the arrangements",
         "determine the expected number of steps", "find all real solutions", "compute the area",
         "show that no such configuration exists", "find the remainder modulo seven", "maximise the product",
         "decide which player wins"]
_TASKS = ["a rate limiter", "an LRU cache", "a CSV parser", "a job scheduler", "a trie", "a diff tool",
          "a JSON schema validator", "a consistent hash ring", "a bloom filter", "a retry wrapper",
          "a markdown renderer", "an interval tree", "a priority queue", "a tokenizer", "a file watcher"]
_LANGS = ["Python", "Rust", "Go", "TypeScript", "Java", "C++", "Kotlin"]
_TOPICS = ["my landlord", "a job application", "a birthday party", "the quarterly budget", "a trip to Lisbon",
           "our new onboarding flow", "a product launch", "a school project", "a broken dishwasher",
           "the team offsite", "a grant proposal", "learning Spanish", "my garden", "a refund request"]
_BENIGN_Q = ["Can you help me write an email about {t}?", "Give me three ideas for {t}.",
             "What should I consider regarding {t}?", "Draft a short note to a colleague about {t}.",
             "Explain like I'm five how to plan {t}.", "List pros and cons of {t}.",
             "Rewrite this more politely: I need an update on {t}.", "What questions should I ask about {t}?"]


def cot_slot(rng: random.Random) -> str:
    return (f"A {rng.choice(_NOUNS)} {rng.choice(_VERBS)} {rng.randint(3, 999)} {rng.choice(_NOUNS)}s and "
            f"{rng.randint(2, 99)} {rng.choice(_NOUNS)}s; {rng.choice(_ASKS)} given {rng.choice(_NOUNS)} "
            f"{rng.randint(1, 50)}.")


def code_slot(rng: random.Random) -> str:
    return (f"build {rng.choice(_TASKS)} in {rng.choice(_LANGS)} that handles {rng.randint(10, 9999)} "
            f"requests per second and supports {rng.choice(_TASKS)} integration.")


def benign_prompt(rng: random.Random) -> str:
    return rng.choice(_BENIGN_Q).format(t=rng.choice(_TOPICS)) + f" (ref {rng.randint(1, 10**6)})"


@dataclass
class TwoProviders:
    store_a: Store
    store_b: Store
    campaign_id: str
    a_attack: list[str]
    b_attack: list[str]
    b_attack_template_only: list[str]
    b_benign: list[str]
    b_benign_same_asn: str
    b_benign_nat: str
    b_benign_app: str
    templates: dict[str, str] = field(default_factory=dict)


def _ex(rng: random.Random, account: str, ts: datetime, prompt: str, ip: str, asn: int, ua: str,
        ja4: str | None, hfp: str | None, model: str = "frontier-2026-02") -> object:
    return make_exchange(account_id=account, org_id=f"org-{account}", ts=ts, prompt=prompt,
                         turns=[Turn("user", prompt)], client_ip=ip, client_asn=asn, user_agent=ua,
                         tls_ja4=ja4, header_order_fp=hfp, model=model,
                         reasoning_requested=True if "reasoning" in prompt else None,
                         exchange_id=f"{account}-{ts.timestamp():.0f}-{rng.randint(0, 10**9)}")


def _attack_account(rng, prefix, i, *, n, nets, hosts, domain, payment, templates, t0, use_nat=False,
                    use_common_ua=False):
    aid = f"{prefix}{i:02d}"
    acct = make_account(aid, org_id=f"org-{aid}", created_at=t0 - timedelta(days=2, minutes=rng.randint(0, 90)),
                        email_domain=domain, email_local=f"user{rng.randint(1000, 9999)}",
                        payment_fingerprint=payment, verification_level=2, signup_country="SG")
    exs = []
    for k in range(n):
        ts = t0 + timedelta(minutes=17 * k + rng.randint(0, 9), seconds=rng.randint(0, 59))
        tpl = templates[k % len(templates)]
        prompt = tpl.format(slot=cot_slot(rng) if tpl is COT_TEMPLATE else code_slot(rng))
        if use_nat and k % 3 == 0:
            ip = NAT_IP
        else:
            ip = f"{rng.choice(nets)}.{rng.choice(hosts)}"
        ua = COMMON_UA if use_common_ua and k % 2 else CAMPAIGN["ua"]
        exs.append(_ex(rng, aid, ts, prompt, ip, CAMPAIGN["asn"], ua, CAMPAIGN["ja4"], CAMPAIGN["header_fp"]))
    return acct, exs


def _benign_account(rng, aid, *, n, t0, ip=None, asn=None, ua=None, domain=None, template=None):
    acct = make_account(aid, org_id=f"org-{aid}", created_at=t0 - timedelta(days=rng.randint(30, 400)),
                        email_domain=domain or rng.choice(["gmail.com", "outlook.com", f"corp{rng.randint(1, 60)}.example"]),
                        payment_fingerprint=f"pf-benign-{aid}", verification_level=rng.choice([1, 2, 3]),
                        signup_country=rng.choice(["US", "DE", "BR", "IN", "FR"]))
    own_ip = ip or f"{rng.randint(11, 99)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    own_asn = asn or rng.randint(1000, 60000)
    own_ua = ua or rng.choice(["OpenAI/Python 1.40.0", "Anthropic/Python 0.34.0", "node-fetch/1.0", COMMON_UA])
    ja4 = f"t13d{rng.randint(1000, 9999)}h2_{rng.getrandbits(48):012x}_{rng.getrandbits(48):012x}"
    exs = []
    for _k in range(n):
        ts = t0 + timedelta(hours=rng.randint(0, 60), minutes=rng.randint(0, 59))
        prompt = template.format(slot=benign_prompt(rng)) if template else benign_prompt(rng)
        exs.append(_ex(rng, aid, ts, prompt, own_ip, own_asn, own_ua, ja4, f"hfp-{rng.getrandbits(32):08x}"))
    return acct, exs


def _write(store: Store, accounts, exchanges) -> None:
    write_world(store, exchanges, accounts, key="fixture")


def make_two_providers(root: str | Path, seed: int = 7, n_a_attack: int = 12, n_benign: int = 30) -> TwoProviders:
    rng = random.Random(seed)
    root = Path(root)
    store_a = Store(root / "provider_a", create=True)
    store_b = Store(root / "provider_b", create=True)
    hosts_a = list(range(10, 18))
    campaign_id = "camp-cot-0001"

    # ---------------------------------------------------------------- provider A
    accounts, exchanges, attack_a = [], [], []
    for i in range(n_a_attack):
        tpls = [COT_TEMPLATE] if i % 3 else [COT_TEMPLATE, CODE_TEMPLATE]
        domain = CAMPAIGN["domain"] if i % 4 else "quickinbox.example"
        payment = CAMPAIGN["payment"] if i % 2 == 0 else f"pf-one-off-{i}"
        acct, exs = _attack_account(rng, "a-att-", i, n=18, nets=CAMPAIGN["nets"], hosts=hosts_a, domain=domain,
                                    payment=payment, templates=tpls, t0=T0, use_nat=i < 4, use_common_ua=True)
        accounts.append(acct)
        exchanges += exs
        attack_a.append(acct.account_id)
    benign_a = []
    for j in range(n_benign):
        nat = j < 12  # many legitimate customers share the NAT
        acct, exs = _benign_account(rng, f"a-ben-{j:03d}", n=rng.randint(4, 12), t0=T0,
                                    ip=NAT_IP if nat else None, ua=COMMON_UA if j % 2 else None,
                                    asn=CAMPAIGN["asn"] if j == 20 else None)
        accounts.append(acct)
        exchanges += exs
        benign_a.append(acct.account_id)
    _write(store_a, accounts, exchanges)
    _detection_tables_a(store_a, campaign_id, attack_a, benign_a, exchanges)

    # ---------------------------------------------------------------- provider B
    accounts, exchanges, attack_b = [], [], []
    hosts_b = list(range(14, 24))  # overlaps A's hosts partly; the /24s are the same
    for i in range(5):
        domain = CAMPAIGN["domain"] if i < 3 else CAMPAIGN["email_b_only"]
        payment = CAMPAIGN["payment"] if i < 2 else f"pf-b-{i}"
        acct, exs = _attack_account(rng, "b-x", i, n=6, nets=CAMPAIGN["nets"], hosts=hosts_b, domain=domain,
                                    payment=payment, templates=[COT_TEMPLATE, CODE_TEMPLATE] if i % 2 else [COT_TEMPLATE],
                                    t0=T0 + timedelta(hours=5))
        accounts.append(acct)
        exchanges += exs
        attack_b.append(acct.account_id)
    # One account of the operation on fresh infrastructure: only its prompts give it away.
    aid = "b-x05"
    acct = make_account(aid, org_id=f"org-{aid}", created_at=T0 - timedelta(days=1), email_domain="fastmail.com",
                        payment_fingerprint="pf-b-5", verification_level=2, signup_country="SG")
    exs = [_ex(rng, aid, T0 + timedelta(hours=6, minutes=13 * k), COT_TEMPLATE.format(slot=cot_slot(rng)),
               f"45.77.{rng.randint(0, 255)}.{rng.randint(1, 254)}", 20473, "curl/8.5.0", None, None)
           for k in range(7)]
    accounts.append(acct)
    exchanges += exs
    attack_b.append(aid)

    benign_b = []
    for j in range(n_benign):
        aid = f"b-ben-{j:03d}"
        kw = {}
        if j == 0:
            kw = dict(asn=CAMPAIGN["asn"])  # legit customer hosted in the campaign's ASN
        elif j == 1:
            kw = dict(ip=NAT_IP)  # legit customer behind the same university NAT
        elif j == 2:
            kw = dict(template=BENIGN_APP_TEMPLATE)  # an app with its own fixed template
        elif j % 2:
            kw = dict(ua=COMMON_UA)
        acct, exs = _benign_account(rng, aid, n=rng.randint(4, 12), t0=T0, **kw)
        accounts.append(acct)
        exchanges += exs
        benign_b.append(aid)
    _write(store_b, accounts, exchanges)
    # B's own scan ran and missed the campaign: every account scored low, none flagged.
    ids = attack_b + benign_b
    store_b.write_table("account_risk", _account_risk(ids, {a: 0.22 for a in attack_b}, set(), None, {}))

    return TwoProviders(store_a, store_b, campaign_id, attack_a, attack_b, ["b-x05"], benign_b,
                        b_benign_same_asn="b-ben-000", b_benign_nat="b-ben-001", b_benign_app="b-ben-002",
                        templates={"cot": COT_TEMPLATE, "code": CODE_TEMPLATE, "benign_app": BENIGN_APP_TEMPLATE})


def _account_risk(ids, risk: dict[str, float], flagged: set[str], campaign_id, reasons: dict[str, list[str]]):
    return pa.table({
        "account_id": pa.array(ids, pa.string()),
        "risk": pa.array([float(risk.get(a, 0.03)) for a in ids], pa.float64()),
        "flagged": pa.array([a in flagged for a in ids], pa.bool_()),
        "first_flagged_at": pa.array([T0 + timedelta(hours=8) if a in flagged else None for a in ids], _TS),
        "cluster_id": pa.array(["clu-1" if a in flagged else None for a in ids], pa.string()),
        "campaign_id": pa.array([campaign_id if a in flagged else None for a in ids], pa.string()),
        "reasons": pa.array([reasons.get(a, []) for a in ids], pa.list_(pa.string())),
    })


def _detection_tables_a(store: Store, campaign_id: str, attack: list[str], benign: list[str], exchanges) -> None:
    """What provider A's scan wrote: the contracts in docs/tables.md, filled as detection would."""
    ids = attack + benign
    store.write_table("account_risk", _account_risk(
        ids, {a: 0.93 for a in attack}, set(attack), campaign_id,
        {a: ["shared proxy /24s with 11 accounts", "templated chain-of-thought prompts"] for a in attack}))
    store.write_table("campaign_members", pa.table({"campaign_id": [campaign_id] * len(attack), "account_id": attack}))
    atk = [e for e in exchanges if e.account_id in set(attack)]
    store.write_table("campaigns", pa.table({
        "campaign_id": [campaign_id], "title": ["Chain-of-thought harvesting via proxy hydra"],
        "n_accounts": pa.array([len(attack)], pa.int64()), "n_exchanges": pa.array([len(atk)], pa.int64()),
        "first_seen": pa.array([min(e.ts for e in atk)], _TS), "last_seen": pa.array([max(e.ts for e in atk)], _TS),
        "capability_mix": [json.dumps({"reasoning": 0.78, "coding": 0.22})],
        "models": pa.array([["frontier-2026-02"]], pa.list_(pa.string())),
        "pivot_model": pa.array([None], pa.string()), "pivot_delay_hours": pa.array([None], pa.float64()),
        "infrastructure": [json.dumps({"ip24": 2, "asn": 1, "payment": 1})],
        "confidence": pa.array([0.9], pa.float64()), "recommended_action": ["block"], "status": ["confirmed"],
        "evidence": pa.array([["12 accounts share 2 proxy /24s", "two prompt templates"]], pa.list_(pa.string())),
        "org_key": pa.array(["op-relaymail"], pa.string()),
    }))
    # Template buckets as the scan's masked-template LSH assigns them (one bucket per template).
    bucket = {COT_TEMPLATE.split("{slot}")[0]: "tk-3f9a", CODE_TEMPLATE.split("{slot}")[0]: "tk-81c2"}
    tk = []
    for e in exchanges:
        key = next((b for prefix, b in bucket.items() if e.prompt.startswith(prefix)), None)
        tk.append(key)
    store.write_table("exchange_signals", pa.table({
        "exchange_id": [e.exchange_id for e in exchanges], "account_id": [e.account_id for e in exchanges],
        "ts": pa.array([e.ts for e in exchanges], _TS),
        "sig_template": pa.array([0.9 if k else 0.1 for k in tk], pa.float32()),
        "template_key": pa.array(tk, pa.string()), "task_item_key": pa.array([None] * len(tk), pa.string()),
    }))


if __name__ == "__main__":  # python -m distillguard.testing.intel_fixture DIR  → DIR/provider_a, DIR/provider_b
    import sys

    tp = make_two_providers(sys.argv[1] if len(sys.argv) > 1 else "intel-demo")
    print(f"provider A: {tp.store_a.path} (campaign {tp.campaign_id}, {len(tp.a_attack)} campaign accounts)")
    print(f"provider B: {tp.store_b.path} ({len(tp.b_attack)} campaign accounts its scan missed)")
