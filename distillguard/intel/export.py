"""A confirmed campaign → a STIX 2.1 bundle a partner can match the same day.

Three rules shape what leaves the building:

* **Only what distinguishes the campaign.** A value becomes an indicator when enough campaign
  accounts use it and few legitimate local accounts do. A university NAT or a popular SDK's user
  agent would hit the partner's legitimate customers as well, so values whose local benign share
  is high are dropped (or kept at low confidence, labelled ``benign-overlap``, if configured).
* **Nothing identifying by default.** Identifiers leave as HMAC-SHA256 under the sharing group's
  key, prompt templates as keyed MinHash signatures of their skeleton; free text is scrubbed of
  addresses. ``raw=True`` is the one switch that exports values as they are.
* **Stable ids.** Indicator ids derive from provider, kind and value, so a re-export updates the
  same objects (new ``modified``) rather than duplicating them in a partner's store.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import stix2
from stix2.v21 import Bundle, Campaign, Identity, Indicator, IntrusionSet, Note, Relationship

from distillguard.errors import DistillguardError
from distillguard.intel import templates as tpl
from distillguard.intel.config import IntelConfig
from distillguard.intel.keys import GroupKey
from distillguard.intel.stixobjects import (
    EXT_INDICATOR,
    TLP,
    build_pattern,
    det_id,
    extension_definitions,
    project_identity,
)
from distillguard.intel.values import SOURCES, account_values
from distillguard.store import Store
from distillguard.store.sqltext import sql_string

_IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?\b")
_EMAILISH = re.compile(r"\b[\w.+-]*@?[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}\b", re.I)

_KIND_WORDS = {"ip": "client IP address", "ip24": "client /24 network", "asn": "client autonomous system",
               "email_domain": "sign-up e-mail domain", "ja4": "JA4 TLS client fingerprint",
               "header_fp": "HTTP header-order fingerprint", "user_agent": "HTTP user agent",
               "payment": "payment-instrument fingerprint", "template": "prompt-template signature"}


def scrub(text: str | None) -> str | None:
    """Remove addresses and domains from analyst text before it leaves in a default (hashed) export."""
    if text is None:
        return None
    return _EMAILISH.sub("[redacted]", _IPV4.sub("[redacted]", text))


@dataclass
class Candidate:
    kind: str
    canon: str  # canonical raw value, or the encoded signature for templates
    support: int
    benign: int
    first_ts: datetime | None = None
    masked_text: str | None = None
    n_shingles: int | None = None
    exchange_share: float | None = None

    @property
    def benign_share(self) -> float:
        total = self.support + self.benign
        return self.benign / total if total else 0.0


@dataclass
class ExportReport:
    campaigns: list[str] = field(default_factory=list)
    indicators: dict[str, int] = field(default_factory=dict)
    dropped: list[dict] = field(default_factory=list)
    hashed: bool = True
    key_id: str | None = None
    objects: int = 0
    out: str | None = None

    def to_dict(self) -> dict:
        return {"campaigns": self.campaigns, "indicators": self.indicators, "n_indicators": sum(self.indicators.values()),
                "dropped": self.dropped, "hashed": self.hashed, "key_id": self.key_id, "objects": self.objects,
                "out": self.out}


def _campaign_rows(con, campaign_id: str | None, confirmed: bool) -> list[dict]:
    views = {r[0] for r in con.sql("SELECT view_name FROM duckdb_views()").fetchall()}
    for need in ("campaigns", "campaign_members"):
        if need not in views:
            raise DistillguardError(f"store has no {need} table; run `distillguard scan` first")
    if campaign_id:
        rows = con.sql(f"SELECT * FROM campaigns WHERE campaign_id = {sql_string(campaign_id)}").to_arrow_table().to_pylist()
        if not rows:
            raise DistillguardError(f"no campaign {campaign_id!r} in the store")
    elif confirmed:
        rows = con.sql("SELECT * FROM campaigns WHERE status = 'confirmed' ORDER BY campaign_id").to_arrow_table().to_pylist()
        if not rows:
            raise DistillguardError("no confirmed campaigns in the store (confirm one in the console first)")
    else:
        raise DistillguardError("say which campaigns to export: --campaign ID or --confirmed")
    return rows


def _benign_sql(con, cfg: IntelConfig) -> str:
    """Local accounts that count as legitimate: in no campaign, and not flagged or risky."""
    views = {r[0] for r in con.sql("SELECT view_name FROM duckdb_views()").fetchall()}
    cond = "account_id NOT IN (SELECT account_id FROM campaign_members)"
    if "account_risk" in views:
        cond += (f" AND account_id NOT IN (SELECT account_id FROM account_risk WHERE flagged OR risk >= "
                 f"{float(cfg.export.benign_risk_below)})")
    return f"SELECT account_id FROM accounts WHERE {cond} UNION SELECT DISTINCT account_id FROM exchanges WHERE {cond}"


def _value_candidates(store: Store, con, campaign_id: str, cfg: IntelConfig) -> list[Candidate]:
    kinds = [k for k in cfg.export.kinds if k in SOURCES]
    members = f"SELECT account_id FROM campaign_members WHERE campaign_id = {sql_string(campaign_id)}"
    account_values(store, con, kinds, accounts_sql=members, name="member_values")
    account_values(store, con, kinds, accounts_sql=_benign_sql(con, cfg), name="benign_values")
    rows = con.sql(f"""
        SELECT m.kind, m.canon, count(DISTINCT m.account_id) AS support, min(m.first_ts) AS first_ts,
               (SELECT count(DISTINCT b.account_id) FROM benign_values b WHERE b.kind = m.kind AND b.canon = m.canon)
                 AS benign
        FROM member_values m GROUP BY m.kind, m.canon
        HAVING count(DISTINCT m.account_id) >= {int(cfg.export.min_accounts)}
        ORDER BY m.kind, support DESC, m.canon""").fetchall()
    return [Candidate(kind=k, canon=c, support=int(s), benign=int(b), first_ts=f) for k, c, s, f, b in rows]


def _template_candidates(store: Store, con, campaign_id: str, cfg: IntelConfig, key: GroupKey | None,
                         raw: bool) -> list[Candidate]:
    views = {r[0] for r in con.sql("SELECT view_name FROM duckdb_views()").fetchall()}
    if "exchange_signals" not in views or "template_key" not in con.sql("SELECT * FROM exchange_signals LIMIT 0").columns:
        return []
    ec = cfg.export
    groups = con.sql(f"""
        WITH m AS (SELECT account_id FROM campaign_members WHERE campaign_id = {sql_string(campaign_id)}),
             sig AS (SELECT s.template_key, s.account_id, s.exchange_id FROM exchange_signals s
                     WHERE s.template_key IS NOT NULL)
        SELECT template_key, count(*) AS n_ex, count(DISTINCT account_id) AS n_acct,
               count(*) / (SELECT count(*) FROM exchange_signals WHERE account_id IN (SELECT account_id FROM m))
        FROM sig WHERE account_id IN (SELECT account_id FROM m)
        GROUP BY 1 HAVING count(*) >= {int(ec.min_template_exchanges)} AND count(DISTINCT account_id) >= {int(ec.min_accounts)}
        ORDER BY n_ex DESC""").fetchall()
    out = []
    benign = _benign_sql(con, cfg)
    for tkey, _n_ex, n_acct, share in groups:
        prompts = [r[0] for r in con.execute(f"""
            SELECT e.prompt FROM exchanges e JOIN exchange_signals s USING (exchange_id)
            WHERE s.template_key = ? AND e.account_id IN (SELECT account_id FROM campaign_members WHERE campaign_id = ?)
              AND e.prompt IS NOT NULL
            ORDER BY hash(e.exchange_id) LIMIT {int(ec.template_sample)}""", [tkey, campaign_id]).fetchall()]
        sk = tpl.skeleton(prompts, min_share=ec.skeleton_min_share)
        if not sk or len(sk) < 5:
            continue  # too little fixed text to tell this template from others
        n_benign = con.execute(f"SELECT count(DISTINCT account_id) FROM exchange_signals WHERE template_key = ? "
                               f"AND account_id IN ({benign})", [tkey]).fetchall()[0][0]
        sig = tpl.encode(tpl.signature(sk, key))
        masked = None
        if raw:
            masked = " | ".join(sorted(sk))[:4000]
        out.append(Candidate(kind="template", canon=sig, support=int(n_acct), benign=int(n_benign),
                             masked_text=masked, n_shingles=len(sk), exchange_share=float(share)))
    return out


def _confidence(c: Candidate, campaign_conf: float, n_members: int, overlap: bool) -> int:
    base = 100.0 * max(0.0, min(1.0, campaign_conf))
    coverage = min(1.0, c.support / max(1.0, 0.5 * n_members))
    val = base * (1.0 - c.benign_share) * (0.6 + 0.4 * coverage)
    if overlap:
        val = min(val, 15.0)
    return int(max(1, min(100, round(val))))


def build_bundle(store: Store, *, campaign_id: str | None = None, confirmed: bool = False,
                 key: GroupKey | None = None, raw: bool = False, config: IntelConfig | None = None,
                 tlp: str | None = None, now: datetime | None = None) -> tuple[Bundle, ExportReport]:
    cfg = config or IntelConfig()
    if not raw and key is None:
        raise DistillguardError("a hashed export needs the sharing group's key (--group-key-file / "
                                "$DISTILLGUARD_INTEL_GROUP_KEY), or pass --raw to export raw values")
    tlp = tlp or cfg.export.tlp
    if tlp not in TLP:
        raise DistillguardError(f"unknown TLP {tlp!r}; choose from {', '.join(TLP)}")
    marking = TLP[tlp]
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    con = store.connect()
    rows = _campaign_rows(con, campaign_id, confirmed)
    report = ExportReport(hashed=not raw, key_id=key.key_id if key else None)

    prov = cfg.provider
    identity = Identity(id=det_id("identity", "provider", prov.name), name=prov.name,
                        identity_class=prov.identity_class, sectors=prov.sectors or None,
                        contact_information=prov.contact_information, object_marking_refs=[marking])
    common = dict(created_by_ref=identity.id, object_marking_refs=[marking])
    objects: list = [marking, project_identity(), *extension_definitions(), identity]
    indicators: dict[str, Indicator] = {}
    rels: dict[str, Relationship] = {}

    for row in rows:
        cid = row["campaign_id"]
        report.campaigns.append(cid)
        n_members = con.execute("SELECT count(*) FROM campaign_members WHERE campaign_id = ?", [cid]).fetchall()[0][0]
        conf = float(row.get("confidence") if row.get("confidence") is not None else 0.5)
        conf = conf / 100.0 if conf > 1.0 else conf  # tolerate a detector reporting percent
        conf = min(1.0, max(0.0, conf))
        title = row.get("title") or f"distillation campaign {cid}"
        mix = _json(row.get("capability_mix"))
        first = row.get("first_seen") or now
        last = row.get("last_seen")
        camp_kw = dict(common)
        if last and last >= first:
            camp_kw["last_seen"] = last
        campaign = Campaign(
            id=det_id("campaign", prov.name, cid), name=title if raw else scrub(title),
            description=("Industrial-scale harvesting of model outputs for distillation, detected by distillguard."
                         + (f" Capabilities targeted: {_mix_words(mix)}." if mix else "")),
            objective="Harvest model outputs to train a cheaper copy (distillation).",
            first_seen=first, confidence=int(round(100 * conf)),
            external_references=[{"source_name": "distillguard", "external_id": cid}], **camp_kw)
        objects.append(campaign)
        if row.get("org_key"):
            iset = IntrusionSet(id=det_id("intrusion-set", prov.name, row["org_key"]),
                                name=row["org_key"] if raw else
                                f"distillguard operator {key.hash_value('org', row['org_key'])[:16]}",
                                description="Operator behind the campaign, as attributed by the exporting provider.",
                                goals=["model distillation"], **common)
            objects.append(iset)
            r = Relationship(id=det_id("relationship", campaign.id, "attributed-to", iset.id),
                             relationship_type="attributed-to", source_ref=campaign.id, target_ref=iset.id, **common)
            rels[r.id] = r

        cands = _value_candidates(store, con, cid, cfg)
        if "template" in cfg.export.kinds:
            cands += _template_candidates(store, con, cid, cfg, key, raw)
        for c in cands:
            overlap = c.benign > cfg.export.max_benign_accounts or c.benign_share > cfg.export.max_benign_share
            if overlap and not cfg.export.keep_benign_overlap:
                report.dropped.append({"campaign_id": cid, "kind": c.kind,
                                       "value": c.canon if c.kind != "template" else "(template signature)",
                                       "campaign_accounts": c.support, "benign_accounts": c.benign,
                                       "reason": "also used by many legitimate local accounts"})
                continue
            ind = _indicator(c, cfg, key, raw, conf, n_members, overlap, first, now, common)
            indicators[ind.id] = ind
            r = Relationship(id=det_id("relationship", ind.id, "indicates", campaign.id),
                             relationship_type="indicates", source_ref=ind.id, target_ref=campaign.id, **common)
            rels[r.id] = r
        if cfg.export.include_note:
            objects.append(Note(
                id=det_id("note", prov.name, cid, "scale"), abstract="Capability mix and scale",
                content=_note_text(row, n_members), object_refs=[campaign.id], **common))

    for ind in indicators.values():
        k = ind.extensions[EXT_INDICATOR]["kind"]
        report.indicators[k] = report.indicators.get(k, 0) + 1
    objects += list(indicators.values()) + list(rels.values())
    bundle = Bundle(objects=objects)
    report.objects = len(objects)
    return bundle, report


def _indicator(c: Candidate, cfg: IntelConfig, key: GroupKey | None, raw: bool, conf: float, n_members: int,
               overlap: bool, first: datetime, now: datetime, common: dict) -> Indicator:
    hashed = not raw and c.kind != "template"
    value = key.hash_value(c.kind, c.canon) if hashed else c.canon
    hint = None
    if c.kind in ("ip", "ip24"):
        hint = "ipv6-addr" if ":" in c.canon else "ipv4-addr"
    pattern = build_pattern(c.kind, value, hashed, hint)
    ext = {"extension_type": "property-extension", "kind": c.kind,
           "value_form": "minhash" if c.kind == "template" else ("hmac-sha256" if hashed else "raw"),
           "support_accounts": c.support, "benign_accounts": c.benign, "benign_share": round(c.benign_share, 4)}
    if hashed and key is not None:
        ext["key_id"] = key.key_id
    if c.kind == "template":
        ext.update(template_scheme=tpl.SCHEME, num_perm=tpl.NUM_PERM, seed=tpl.SEED, shingle_size=tpl.SHINGLE_SIZE,
                   n_shingles=c.n_shingles, keyed=key is not None)
        if key is not None:
            ext["key_id"] = key.key_id
    valid_from = c.first_ts or first or now  # first sighting of the value (account fields: campaign start)
    valid_from = valid_from.astimezone(UTC) if valid_from.tzinfo else valid_from.replace(tzinfo=UTC)
    valid_until = max(now, valid_from) + timedelta(days=cfg.export.valid_days.get(c.kind, 90))
    labels = ["distillation", c.kind.replace("_", "-")] + (["benign-overlap"] if overlap else [])
    desc = f"{_KIND_WORDS[c.kind]} used by {c.support} accounts of the campaign"
    if c.kind == "template":
        desc += (f"; matches prompt templates whose {tpl.SCHEME} skeleton signature has estimated Jaccard "
                 f"similarity >= {cfg.match.template_threshold} (pattern equality is not the match rule)")
    elif hashed:
        desc += "; value is HMAC-SHA256 under the sharing group's key (see key_id)"
    return Indicator(
        id=det_id("indicator", common["created_by_ref"], c.kind, value),
        name=f"distillguard {c.kind} indicator" + (" (keyed hash)" if hashed else ""),
        description=desc, indicator_types=["malicious-activity", "attribution"], pattern=pattern,
        pattern_type="stix", pattern_version="2.1", valid_from=valid_from, valid_until=valid_until,
        confidence=_confidence(c, conf, n_members, overlap), labels=labels,
        extensions={EXT_INDICATOR: ext}, **common)


def _json(v) -> dict:
    if not v:
        return {}
    try:
        d = json.loads(v) if isinstance(v, str) else dict(v)
    except (ValueError, TypeError):
        return {}
    return d if isinstance(d, dict) else {}


def _mix_words(mix: dict) -> str:
    items = sorted(((str(k), float(v)) for k, v in mix.items() if isinstance(v, int | float)), key=lambda kv: -kv[1])
    return ", ".join(f"{k} {v:.0%}" for k, v in items)


def _note_text(row: dict, n_members: int) -> str:
    mix = _json(row.get("capability_mix"))
    lines = [f"Accounts in the campaign: {n_members}", f"Exchanges: {row.get('n_exchanges') or 'unknown'}"]
    if mix:
        lines.append(f"Capability mix: {_mix_words(mix)}")
    if row.get("models"):
        lines.append(f"Models targeted: {len(row['models'])}")
    if row.get("pivot_delay_hours") is not None:
        lines.append(f"Pivoted to a newly released model after {float(row['pivot_delay_hours']):.1f} hours")
    if row.get("first_seen") and row.get("last_seen"):
        lines.append(f"Active {row['first_seen']:%Y-%m-%d} to {row['last_seen']:%Y-%m-%d}")
    if row.get("recommended_action"):
        lines.append(f"Exporter's action: {row['recommended_action']}")
    return "\n".join(lines)


def export_bundle(store: Store, out: str | Path, **kw) -> ExportReport:
    bundle, report = build_bundle(store, **kw)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(bundle.serialize(pretty=True))
    tmp.replace(out)
    report.out = str(out)
    _record_export(store, bundle, report, kw.get("tlp") or (kw.get("config") or IntelConfig()).export.tlp)
    return report


_EXPORTS_SCHEMA = pa.schema([
    ("at", pa.timestamp("ms", tz="UTC")), ("bundle_id", pa.string()), ("campaigns", pa.list_(pa.string())),
    ("indicators", pa.int64()), ("hashed", pa.bool_()), ("key_id", pa.string()), ("tlp", pa.string()),
    ("out", pa.string()), ("dropped", pa.int64()),
])


def _record_export(store: Store, bundle: Bundle, report: ExportReport, tlp: str) -> None:
    """What left the building, when, and how protected: the record a sharing agreement asks for."""
    store.append_table("intel_exports", pa.Table.from_pylist([{
        "at": datetime.now(UTC), "bundle_id": bundle.id, "campaigns": report.campaigns,
        "indicators": sum(report.indicators.values()), "hashed": report.hashed, "key_id": report.key_id,
        "tlp": tlp, "out": report.out, "dropped": len(report.dropped)}], schema=_EXPORTS_SCHEMA))


def validate_bundle_text(text: str):
    """Parse a bundle strictly: only STIX 2.1 types and the distillguard types registered above."""
    try:
        return stix2.parse(text, allow_custom=False)
    except Exception as e:  # stix2 raises many exception types for bad input
        raise DistillguardError(f"not a valid STIX 2.1 bundle: {e}") from e


