"""Imported indicators × local traffic → ``intel_matches``, ``intel_edges`` and ``intel_boost``.

Hashed indicators are matched by hashing local canonical values with the local copy of the
group key and joining on the HMAC; an indicator hashed under another key (its ``key_id`` differs)
can never match and is reported as such rather than silently counted as a miss. Template
signatures are matched with MinHash-LSH: each local *template group* (the prompts of one account,
and the prompts of one scan ``template_key`` bucket when the scan has run) gets a skeleton and a
signature computed exactly as the exporter did, candidates come from LSH banding and are kept
when the estimated Jaccard similarity clears ``match.template_threshold``.

The outputs are what the detection engine consumes: ``intel_boost`` (per-account risk boost with
reasons) and ``intel_edges`` (``coordination_edges``-shaped rows, kind ``intel``), so partner
evidence joins the same graph and score as local evidence.
"""

from __future__ import annotations

import ipaddress
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
from datasketch import MinHash, MinHashLSH

from distillguard.errors import DistillguardError
from distillguard.intel import templates as tpl
from distillguard.intel.config import IntelConfig
from distillguard.intel.keys import GroupKey, canonical
from distillguard.intel.values import SOURCES, account_values
from distillguard.store import Store

_TS = pa.timestamp("ms", tz="UTC")

MATCH_SCHEMA = pa.schema([
    ("account_id", pa.string()), ("indicator_id", pa.string()), ("kind", pa.string()),
    ("confidence", pa.float64()), ("evidence", pa.string()), ("source", pa.string()),
    ("campaign_refs", pa.list_(pa.string())), ("n_exchanges", pa.int64()), ("first_seen", _TS),
    ("last_seen", _TS), ("matched_at", _TS),
])
BOOST_SCHEMA = pa.schema([
    ("account_id", pa.string()), ("boost", pa.float64()), ("n_indicators", pa.int32()),
    ("kinds", pa.list_(pa.string())), ("sources", pa.list_(pa.string())), ("campaign_refs", pa.list_(pa.string())),
    ("reasons", pa.list_(pa.string())), ("computed_at", _TS),
])
EDGE_SCHEMA = pa.schema([
    ("src_account", pa.string()), ("dst_account", pa.string()), ("kind", pa.string()), ("entity", pa.string()),
    ("weight", pa.float64()),
])


@dataclass
class MatchReport:
    indicators_active: int = 0
    indicators_expired: int = 0
    indicators_other_key: int = 0
    indicators_unmatchable: int = 0
    #: Indicators stored under a partner no longer in ``intel.partners`` (or with trust 0): not used.
    indicators_unknown_partner: int = 0
    #: Repeats of one value (from one partner or several) folded into one indicator.
    indicators_collapsed: int = 0
    #: Indicators that matched too many local accounts to be evidence (``match.broad_*``).
    indicators_too_broad: list[dict] = field(default_factory=list)
    matches: int = 0
    accounts: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    hits: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def _active_indicators(store: Store, key: GroupKey | None, cfg: IntelConfig, now: datetime, rep: MatchReport) -> list[dict]:
    """Usable indicators, each with ``eff_confidence`` = partner confidence × the partner's configured trust,
    and each value once: repeats (one partner's copies or several partners' reports) would otherwise add up
    in the noisy-OR as if they were independent evidence."""
    if not store.has_table("intel_indicators"):
        raise DistillguardError("no imported indicators in this store; run `distillguard intel import` or `poll` first")
    rows = store.read_table("intel_indicators").to_pylist()
    partners = cfg.partners_by_name()
    best: dict[tuple, dict] = {}
    other_keys = set()
    unknown: set[str] = set()
    for r in rows:
        vu = r["valid_until"]
        if r["revoked"] or (vu is not None and vu <= now):
            rep.indicators_expired += 1
            continue
        p = partners.get(r["source"])
        if p is None or p.trust <= 0:
            rep.indicators_unknown_partner += 1
            unknown.add(str(r["source"]))
            continue
        eff = (r["confidence"] or 0) * p.trust
        if r["kind"] == "unsupported" or eff < cfg.match.min_confidence:
            rep.indicators_unmatchable += 1
            continue
        keyed = r["value_form"] == "hmac-sha256" or (r["value_form"] == "minhash" and json.loads(r["params"] or "{}").get("keyed"))
        if keyed and (key is None or (r["key_id"] and r["key_id"] != key.key_id)):
            rep.indicators_other_key += 1
            other_keys.add(r["key_id"])
            continue
        k = (r["kind"], r["value_form"], r["value"], r["params"] if r["value_form"] == "minhash" else None)
        if k in best:
            rep.indicators_collapsed += 1
            if eff <= best[k]["eff_confidence"]:
                continue
        best[k] = dict(r, eff_confidence=eff, trust=p.trust)
    # Two partners may use one STIX id (stored apart, keyed by partner): keep the more trusted one here.
    by_id: dict[str, dict] = {}
    for r in best.values():
        if r["indicator_id"] not in by_id or r["eff_confidence"] > by_id[r["indicator_id"]]["eff_confidence"]:
            by_id[r["indicator_id"]] = r
    out = list(by_id.values())
    rep.indicators_active = len(out)
    if other_keys:
        rep.warnings.append(
            f"{rep.indicators_other_key} indicators are hashed under another group key "
            f"(key id {', '.join(sorted(k or '?' for k in other_keys))}; "
            f"local key id {key.key_id if key else 'none'}): they cannot match")
    if unknown:
        rep.warnings.append(f"{rep.indicators_unknown_partner} indicators come from partners not configured in "
                            f"intel.partners (or with trust 0): {', '.join(sorted(unknown)[:5])}; not used")
    return out


def _drop_broad(con, found: list[dict], by_id: dict[str, dict], cfg: IntelConfig, rep: MatchReport) -> list[dict]:
    """Drop indicators that match so many local accounts that they describe the traffic, not a campaign."""
    n_accounts = con.sql("SELECT count(DISTINCT account_id) FROM exchanges").fetchall()[0][0] or 0
    cap = max(cfg.match.broad_min_accounts, cfg.match.broad_share * n_accounts)
    per: dict[str, set] = defaultdict(set)
    for m in found:
        per[m["indicator_id"]].add(m["account_id"])
    broad = {i for i, accts in per.items() if len(accts) > cap}
    for i in sorted(broad):
        ind = by_id[i]
        rep.indicators_too_broad.append({"indicator_id": i, "source": ind["source"], "kind": ind["kind"],
                                         "accounts": len(per[i])})
        rep.warnings.append(f"indicator {i} from {ind['source']} ({ind['kind']}) matches {len(per[i])} of "
                            f"{n_accounts} local accounts: ignored as too broad (match.broad_min_accounts, "
                            "match.broad_share)")
    return [m for m in found if m["indicator_id"] not in broad]


def _value_matches(store, con, inds: list[dict], key: GroupKey | None) -> list[dict]:
    value_inds = [r for r in inds if r["kind"] in SOURCES or r["kind"] == "cidr"]
    if not value_inds:
        return []
    kinds = sorted({r["kind"] if r["kind"] != "cidr" else "ip" for r in value_inds})
    account_values(store, con, kinds, key=key, name="local_values")
    rows = {"indicator_id": [], "kind": [], "hashed": [], "canon": []}
    cidrs = []
    for r in value_inds:
        if r["kind"] == "cidr":
            try:
                cidrs.append((r, ipaddress.ip_network(r["value"], strict=False)))
            except ValueError:
                pass
            continue
        rows["indicator_id"].append(r["indicator_id"])
        rows["kind"].append(r["kind"])
        if r["value_form"] == "hmac-sha256":
            rows["hashed"].append(r["value"])
            rows["canon"].append(None)
        else:
            rows["hashed"].append(None)
            rows["canon"].append(canonical(r["kind"], r["value"]))
    con.register("_inds", pa.table(rows, schema=pa.schema([(n, pa.string()) for n in rows])))
    hashed_cond = "OR (i.hashed IS NOT NULL AND v.hashed = i.hashed)" if key is not None else ""
    found = con.sql(f"""SELECT v.account_id, i.indicator_id, v.n_exchanges, v.first_ts, v.last_ts, v.canon
        FROM local_values v JOIN _inds i ON v.kind = i.kind
         AND ((i.canon IS NOT NULL AND v.canon = i.canon) {hashed_cond})""").fetchall()
    out = [dict(account_id=a, indicator_id=i, n_exchanges=n, first_seen=f, last_seen=la, quality=1.0, detail=None)
           for a, i, n, f, la, _ in found]
    if cidrs:
        ips = con.sql("SELECT account_id, canon, n_exchanges, first_ts, last_ts FROM local_values WHERE kind = 'ip'").fetchall()
        for r, net in cidrs:
            for a, ip, n, f, la in ips:
                try:
                    if ipaddress.ip_address(ip) in net:
                        out.append(dict(account_id=a, indicator_id=r["indicator_id"], n_exchanges=n, first_seen=f,
                                        last_seen=la, quality=1.0, detail=None))
                except ValueError:
                    continue
    return out


def _local_template_groups(store: Store, con, cfg: IntelConfig) -> list[tuple[list[str], list[list[str]], str]]:
    """(accounts, token lists of sampled prompts, label) per local template group: each account (and its
    prompts sharing an opening or closing), and each scan bucket. Prompts are tokenised once, here."""
    n = int(cfg.match.template_sample)
    groups = []
    tbl = con.sql(f"""SELECT account_id, prompt FROM (SELECT account_id, prompt, row_number() OVER
        (PARTITION BY account_id ORDER BY hash(exchange_id)) AS rn FROM exchanges WHERE prompt IS NOT NULL)
        WHERE rn <= {n}""").to_arrow_table()
    per_acct: dict[str, list[list[str]]] = defaultdict(list)
    for a, p in zip(tbl["account_id"].to_pylist(), tbl["prompt"].to_pylist(), strict=True):
        per_acct[a].append(tpl.tokens(p))
    for a, ps in per_acct.items():
        if len(ps) < cfg.match.min_prompts:
            continue
        groups.append(([a], ps, f"prompts of account {a}"))
        # An account alternating templates has no single skeleton; its prompts sharing an opening
        # (or a closing) form sub-groups that each do.
        for where, pick in (("opening", lambda t: t[:3]), ("closing", lambda t: t[-3:])):
            sub: dict[tuple, list[list[str]]] = defaultdict(list)
            for toks in ps:
                if len(toks) >= 6:
                    sub[tuple(pick(toks))].append(toks)
            if len(sub) > 1:
                for k, sps in sub.items():
                    if len(sps) >= cfg.match.min_prompts:
                        groups.append(([a], sps, f"prompts of account {a} with {where} '{' '.join(k)}'"))
    views = {r[0] for r in con.sql("SELECT view_name FROM duckdb_views()").fetchall()}
    if "exchange_signals" in views and "template_key" in con.sql("SELECT * FROM exchange_signals LIMIT 0").columns:
        rows = con.sql(f"""SELECT template_key, list(DISTINCT account_id), list(prompt) FILTER (WHERE rn <= {n}) FROM (
              SELECT s.template_key, e.account_id, e.prompt, row_number() OVER (PARTITION BY s.template_key
                     ORDER BY hash(e.exchange_id)) AS rn
              FROM exchange_signals s JOIN exchanges e USING (exchange_id)
              WHERE s.template_key IS NOT NULL AND e.prompt IS NOT NULL)
            GROUP BY template_key HAVING count(*) >= {int(cfg.match.min_prompts)}""").fetchall()
        for tk, accts, ps in rows:
            groups.append((list(accts), [tpl.tokens(p) for p in ps], f"scan template bucket {tk}"))
    return groups


def _template_matches(store, con, inds: list[dict], key: GroupKey | None, cfg: IntelConfig) -> list[dict]:
    tinds = [r for r in inds if r["kind"] == "template"]
    if not tinds:
        return []
    groups = _local_template_groups(store, con, cfg)
    by_params: dict[tuple, list[dict]] = defaultdict(list)
    for r in tinds:
        p = json.loads(r["params"] or "{}")
        if p.get("template_scheme", tpl.SCHEME) != tpl.SCHEME:
            continue
        by_params[(int(p.get("num_perm", tpl.NUM_PERM)), int(p.get("seed", tpl.SEED)),
                   int(p.get("shingle_size", tpl.SHINGLE_SIZE)), bool(p.get("keyed", True)))].append(r)
    out = []
    for (num_perm, seed, size, keyed), rs in by_params.items():
        lsh = MinHashLSH(threshold=cfg.match.lsh_threshold, num_perm=num_perm)
        # LSH only reads hash values; reuse one set of permutation parameters instead of deriving them per query.
        perms = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations

        def as_minhash(sig, perms=perms, seed=seed):
            return MinHash(hashvalues=sig, permutations=perms, scheme="affine32", seed=seed)

        sigs = {}
        for r in rs:
            try:
                sig = tpl.decode(r["value"])
            except ValueError:
                continue
            if len(sig) != num_perm:
                continue
            sigs[r["indicator_id"]] = sig
            lsh.insert(r["indicator_id"], as_minhash(sig))
        for accts, prompts, label in groups:
            counts: dict[str, int] = defaultdict(int)
            for toks in prompts:
                for s in tpl.shingles_of(toks, size):
                    counts[s] += 1
            need = max(2, int(np.ceil(cfg.match.skeleton_min_share * len(prompts))))
            sk = [s for s, c in counts.items() if c >= need]
            if len(sk) < 5:
                continue
            sig = tpl.signature(sk, key if keyed else None, num_perm=num_perm, seed=seed)
            for ind_id in lsh.query(as_minhash(sig)):
                j = tpl.jaccard(sig, sigs[ind_id])
                if j < cfg.match.template_threshold:
                    continue
                for a in accts:
                    out.append(dict(account_id=a, indicator_id=ind_id, n_exchanges=None, first_seen=None,
                                    last_seen=None, quality=j, detail=f"{label}, estimated Jaccard {j:.2f}"))
    # An account can match one signature through its own prompts and a scan bucket: keep the best.
    best: dict[tuple, dict] = {}
    for m in out:
        k = (m["account_id"], m["indicator_id"])
        if k not in best or m["quality"] > best[k]["quality"]:
            best[k] = m
    return list(best.values())


_KIND_WORDS = {"ip": "client IP", "ip24": "client /24", "asn": "client ASN", "email_domain": "sign-up e-mail domain",
               "ja4": "JA4 TLS fingerprint", "header_fp": "header-order fingerprint", "user_agent": "user agent",
               "payment": "payment fingerprint", "template": "prompt template", "cidr": "client network"}


def match_store(store: Store, key: GroupKey | None, config: IntelConfig | None = None,
                now: datetime | None = None, write: bool = True) -> MatchReport:
    cfg = config or IntelConfig()
    now = now or datetime.now(UTC)
    rep = MatchReport()
    inds = _active_indicators(store, key, cfg, now, rep)
    con = store.connect()
    found = _value_matches(store, con, inds, key) + _template_matches(store, con, inds, key, cfg)
    by_id = {r["indicator_id"]: r for r in inds}
    found = _drop_broad(con, found, by_id, cfg, rep)
    rows = []
    for m in found:
        ind = by_id[m["indicator_id"]]
        conf = ind["eff_confidence"] / 100.0 * m["quality"]
        camp = ", ".join(ind["campaign_names"] or []) or "an unnamed campaign"
        ev = (f"{_KIND_WORDS.get(ind['kind'], ind['kind'])} matches partner {ind['source']}'s indicator "
              f"{ind['indicator_id']} for campaign '{camp}' (partner confidence {ind['confidence']}, "
              f"trust {ind['trust']:g}"
              + (f"; {m['detail']}" if m["detail"] else "") + ")")
        rows.append({"account_id": m["account_id"], "indicator_id": ind["indicator_id"], "kind": ind["kind"],
                     "confidence": round(conf, 4), "evidence": ev, "source": ind["source"],
                     "campaign_refs": list(ind["campaign_refs"] or []), "n_exchanges": m["n_exchanges"],
                     "first_seen": m["first_seen"], "last_seen": m["last_seen"], "matched_at": now})
    matches = pa.Table.from_pylist(rows, schema=MATCH_SCHEMA)
    boost, edges = boosts_and_edges(matches, cfg, now)
    rep.matches = matches.num_rows
    rep.accounts = boost.num_rows
    for k in matches["kind"].to_pylist():
        rep.by_kind[k] = rep.by_kind.get(k, 0) + 1
    rep.hits = sorted(boost.select(["account_id", "boost", "kinds", "n_indicators", "sources", "reasons"]).to_pylist(),
                      key=lambda r: (-r["boost"], r["account_id"]))
    if write:
        store.write_table("intel_matches", matches)
        store.write_table("intel_boost", boost)
        store.write_table("intel_edges", edges)
    return rep


def boosts_and_edges(matches: pa.Table, cfg: IntelConfig, now: datetime) -> tuple[pa.Table, pa.Table]:
    """Noisy-OR of (kind weight × match confidence) per account; a star of ``intel`` edges per partner campaign.

    Noisy-OR because independent pieces of partner evidence should add up (same payment card AND
    same template) while no amount of weak evidence (an ASN, a /24) reaches certainty on its own.
    """
    weights = cfg.match.kind_weights
    per: dict[str, dict] = {}
    for r in matches.to_pylist():
        a = per.setdefault(r["account_id"], {"miss": 1.0, "inds": set(), "kinds": set(), "sources": set(),
                                             "camps": set(), "reasons": []})
        if r["indicator_id"] in a["inds"]:
            continue
        a["inds"].add(r["indicator_id"])
        a["miss"] *= 1.0 - weights.get(r["kind"], 0.2) * r["confidence"]
        a["kinds"].add(r["kind"])
        a["sources"].add(r["source"])
        a["camps"].update(r["campaign_refs"] or [])
        a["reasons"].append(r["evidence"])
    brows = [{"account_id": k, "boost": round(1.0 - v["miss"], 4), "n_indicators": len(v["inds"]),
              "kinds": sorted(v["kinds"]), "sources": sorted(v["sources"]), "campaign_refs": sorted(v["camps"]),
              "reasons": v["reasons"][:20], "computed_at": now} for k, v in sorted(per.items())]
    boost = pa.Table.from_pylist(brows, schema=BOOST_SCHEMA)
    # Star per partner campaign around its strongest local account: connects the accounts in the
    # coordination graph with n-1 edges instead of n^2.
    erows = []
    by_camp: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for r in brows:
        for c in r["campaign_refs"]:
            by_camp[c].append((r["boost"], r["account_id"]))
    for camp, accts in sorted(by_camp.items()):
        accts.sort(key=lambda x: (-x[0], x[1]))
        hub_w, hub = accts[0]
        for w, a in accts[1:]:
            erows.append({"src_account": hub, "dst_account": a, "kind": "intel", "entity": camp,
                          "weight": round(min(hub_w, w), 4)})
    return boost, pa.Table.from_pylist(erows, schema=EDGE_SCHEMA)
