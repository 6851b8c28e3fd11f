"""Alerts: a new campaign is posted once to a webhook (JSON, Slack-compatible), with its evidence and a console link.

An analyst who has to poll the console finds a campaign hours late; a chat message finds them in
minutes. Sent alerts are recorded in the store (``alerts_sent``, with the campaign's members) so each
campaign alerts once, from whichever process detects it (``scan`` or ``watch``), and a failed delivery is
retried on the next run instead of being lost. "Once" is judged on members, not on the id alone: a campaign's
id is its head cluster's rank by size in one detection (``camp-0-0005``), so `watch`, detecting every interval,
gives the same operation another id when its pieces regroup, and may give an alerted id to another group. The webhook URL is a secret (Slack's carries its token): it is read from
the environment and never logged.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import orjson
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from distillguard.config import EnvRef, ref_name, ref_value, renamed_env_key
from distillguard.errors import ConfigError

log = logging.getLogger("distillguard.alerts")

SENT = "alerts_sent"
SENT_SCHEMA = pa.schema([("campaign_id", pa.string()), ("sink", pa.string()), ("sent_at", pa.timestamp("ms", tz="UTC")),
                         ("http_status", pa.int32()), ("confidence", pa.float64()),
                         ("members", pa.list_(pa.string()))])


class AlertsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    _compat = renamed_env_key("webhook_url_env", "webhook_url")
    #: The webhook URL (a secret: environment reference); alerts are off when the variable is unset or empty.
    webhook_url: EnvRef = "${DISTILLGUARD_ALERT_WEBHOOK}"
    #: Name recorded in ``alerts_sent`` (one campaign alerts once per sink).
    sink: str = "webhook"
    #: Base URL of the console; the alert links to ``<console_url>/campaigns/<id>``.
    console_url: str = "http://127.0.0.1:8088"
    #: Only campaigns at or above this confidence alert.
    min_confidence: float = Field(0.0, ge=0, le=1)
    timeout_s: float = Field(5.0, gt=0)
    #: Attempts per alert per run (with 0.5 s, 1 s, ... back-off); undelivered alerts are retried next run.
    attempts: int = Field(3, ge=1, le=10)
    #: Evidence lines quoted in the message.
    evidence_lines: int = Field(3, ge=0, le=20)
    #: A campaign sharing at least this share of the smaller member set with a campaign already alerted on this sink
    #: is that campaign seen again (watch re-numbers campaigns at every detection: an id is a rank by size) and does
    #: not alert; one whose id was alerted but whose members are others' does. None: the id alone decides (as
    #: before 2026-12-05, and for alerts recorded without members).
    same_campaign_overlap: float | None = Field(0.5, gt=0, le=1)


def _num(v) -> str:
    return f"{int(v):,}" if v is not None else "?"


def payload(c: dict, cfg: AlertsConfig, recs: list[dict] | None = None) -> dict:
    """Slack's incoming-webhook shape (``text`` + ``blocks``), plus the same facts as data under ``distillguard``."""
    cid = c["campaign_id"]
    link = f"{cfg.console_url.rstrip('/')}/campaigns/{cid}"
    conf = float(c.get("confidence") or 0.0)
    evidence = list(c.get("evidence") or [])[: cfg.evidence_lines]
    applied = sorted({r["action"] for r in recs or [] if r.get("disposition") == "applied"})
    waiting = sorted({r["action"] for r in recs or [] if r.get("disposition") == "awaiting_review"})
    head = (f"New distillation campaign {cid}: {c.get('title') or ''} — confidence {conf:.0%}, "
            f"{_num(c.get('n_accounts'))} accounts, {_num(c.get('n_exchanges'))} exchanges")
    state = []
    if applied:
        state.append("applied now: " + ", ".join(applied))
    if waiting:
        state.append("awaiting review: " + ", ".join(waiting))
    lines = [f"*{head}*"] + ([" · ".join(state)] if state else []) + [f"• {e}" for e in evidence]
    return {
        "text": f"{head}. Review: {link}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
            {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Review"},
                                              "url": link}]},
        ],
        "distillguard": {"campaign_id": cid, "title": c.get("title"), "confidence": conf,
                         "n_accounts": c.get("n_accounts"), "n_exchanges": c.get("n_exchanges"),
                         "recommended_action": c.get("recommended_action"), "applied": applied,
                         "awaiting_review": waiting, "evidence": evidence, "org_key": c.get("org_key"),
                         "console_url": link},
    }


def already_sent(store, sink: str) -> dict[str, list[set[str] | None]]:
    """campaign id -> the member sets it was alerted with on ``sink`` (None: recorded without members)."""
    if not store.has_table(SENT):
        return {}
    out: dict[str, list[set[str] | None]] = {}
    for r in store.read_table(SENT).to_pylist():
        if r["sink"] == sink:
            m = r.get("members")
            out.setdefault(r["campaign_id"], []).append(set(m) if m is not None else None)
    return out


def _seen(cid: str, members: set[str] | None, done: dict[str, list[set[str] | None]], overlap: float | None) -> bool:
    """Whether the campaign was alerted already: by members when both sides have them, else by id."""
    if overlap is None or not members:
        return cid in done
    if any(m is None for m in done.get(cid, ())):
        return True  # alerted before members were recorded: the id is all there is to go on
    return any(m and len(members & m) >= overlap * min(len(members), len(m))
               for sets in done.values() for m in sets if m is not None)


def _post(client, url: str, body: bytes, cfg: AlertsConfig) -> int | None:
    import httpx

    for i in range(cfg.attempts):
        try:
            r = client.post(url, content=body, headers={"content-type": "application/json"})
        except httpx.HTTPError as e:
            log.warning("alert delivery failed", extra={"attempt": i + 1, "error": type(e).__name__})
        else:
            if r.status_code < 300:
                return r.status_code
            log.warning("alert rejected by the webhook", extra={"attempt": i + 1, "status": r.status_code})
            if 400 <= r.status_code < 500 and r.status_code != 429:
                return None  # a bad request will not get better by retrying
        if i + 1 < cfg.attempts:
            time.sleep(0.5 * (2 ** i))
    return None


def send_alerts(store, campaigns: list[dict], cfg: AlertsConfig, recs: list[dict] | None = None,
                url: str | None = None, members: dict[str, set[str]] | None = None) -> list[str]:
    """Post each campaign not yet alerted on this sink (``members``: campaign id -> its accounts, to know a
    campaign seen again under another id); returns the campaign ids delivered."""
    url = url or ref_value(cfg.webhook_url)
    if not url:
        return []
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{ref_name(cfg.webhook_url)} is not an http(s) URL", source="alerts.webhook_url")
    done = already_sent(store, cfg.sink)
    members = members or {}
    todo = [c for c in campaigns if float(c.get("confidence") or 0) >= cfg.min_confidence
            and (c.get("status") or "detected") == "detected"]
    import httpx  # only when a webhook is configured: scan runs without the gateway extra

    sent, rows = [], []
    with httpx.Client(timeout=cfg.timeout_s) as client:
        for c in todo:
            mem = members.get(c["campaign_id"])
            if _seen(c["campaign_id"], mem, done, cfg.same_campaign_overlap):
                continue
            mine = [r for r in recs or [] if r["campaign_id"] == c["campaign_id"]]
            status = _post(client, url, orjson.dumps(payload(c, cfg, mine), default=str), cfg)
            if status is None:
                continue
            sent.append(c["campaign_id"])
            rows.append({"campaign_id": c["campaign_id"], "sink": cfg.sink, "sent_at": datetime.now(UTC),
                         "http_status": status, "confidence": float(c.get("confidence") or 0),
                         "members": sorted(mem) if mem else None})
            done.setdefault(c["campaign_id"], []).append(set(mem) if mem else None)
    if rows:
        store.append_table(SENT, pa.Table.from_pylist(rows, schema=SENT_SCHEMA))
        log.info("alerts sent", extra={"campaigns": len(rows), "sink": cfg.sink})
    return sent


def alert_store(store, cfg: AlertsConfig, url: str | None = None) -> list[str]:
    """Alert on the store's current ``campaigns`` (what scan or watch just wrote)."""
    if not (url or ref_value(cfg.webhook_url)) or not store.has_table("campaigns"):
        return []
    camps = store.read_table("campaigns").to_pylist()
    recs = store.read_table("enforcement_recommendations").to_pylist() if store.has_table(
        "enforcement_recommendations") else []
    from distillguard.campaigns.enforcement import campaign_accounts

    return send_alerts(store, camps, cfg, recs, url, campaign_accounts(store))
