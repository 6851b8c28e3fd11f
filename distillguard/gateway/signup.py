"""The sign-up door: score a new account (or a payment change) before it ever sends a request.

A banned operator's next accounts arrive with the same card, the same naming pattern, from the
same networks and client, and in bursts; the cheapest place to stop them is the sign-up form, not
after another month of harvest. ``POST /v1/accounts/assess`` (called by the provider's backend,
with its own token) compares the new account with an index of *bad* accounts — banned or
suspended, members of campaigns not dismissed — and with recent sign-ups, and answers ``allow``,
``require_verification`` or ``deny`` with the reasons. Pathways attackers abuse most (education,
research programmes, startup credits) get stricter thresholds.

The index is built from the store in a background thread (DuckDB), never on the request path.
Fingerprints shared by many accounts (a free-mail naming pattern, the default SDK's TLS
fingerprint) are dropped from it, as the coordination graph drops them: they identify nobody.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from distillguard.config import EnvRef, ref_name, ref_value, renamed_env_key
from distillguard.policy.enforcement import ip24

log = logging.getLogger("distillguard.gateway")

KINDS = ("payment", "email_pattern", "network", "client", "creation_burst")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Thresholds(_Strict):
    #: Score at or above which the account must verify (e.g. a card or identity check).
    verify_at: float = Field(0.5, ge=0, le=1)
    #: Score at or above which the sign-up is refused.
    deny_at: float = Field(0.9, ge=0, le=1)
    #: Require verification whenever the account's declared verification_level is below this (0 = never).
    min_verification: int = Field(0, ge=0, le=4)


def _strict_pathways() -> dict[str, Thresholds]:
    strict = Thresholds(verify_at=0.3, deny_at=0.8, min_verification=1)
    return {"education": strict, "research": strict, "startup": strict}


class SignupConfig(_Strict):
    enabled: bool = True
    _compat = renamed_env_key("token_env", "token")
    #: The bearer token the provider's backend presents (environment reference); unset = endpoint refuses (503).
    token: EnvRef = "${DISTILLGUARD_ASSESS_TOKEN}"
    #: Evidence weight per kind (combined as 1 - prod(1 - w)).
    weights: dict[Literal["payment", "email_pattern", "network", "client", "creation_burst"], float] = Field(
        default_factory=lambda: {"payment": 0.9, "email_pattern": 0.45, "network": 0.35, "client": 0.35,
                                 "creation_burst": 0.4})
    #: Matches against a campaign only detected (not confirmed, nobody banned) count this much.
    detected_factor: float = Field(0.7, ge=0, le=1)
    default: Thresholds = Thresholds()
    #: Per sign-up pathway (stricter where free credits attract account farms).
    pathways: dict[str, Thresholds] = Field(default_factory=_strict_pathways)
    #: A fingerprint held by more than this share of all accounts (and more than ``common_min`` accounts) is
    #: too common to identify an operator.
    common_share: float = Field(0.02, gt=0, le=1)
    common_min: int = Field(5, ge=1)
    #: Creation burst: this many sign-ups on one pathway from one /24 or one e-mail pattern within the window.
    burst_minutes: float = Field(10.0, gt=0)
    burst_min: int = Field(4, ge=2)
    #: How often (s) the index is rebuilt from the store.
    refresh_seconds: float = Field(60.0, gt=0)


def email_pattern(local: str | None, domain: str | None) -> str | None:
    """The naming pattern the coordination graph uses: digits → 9, letter runs → a (``ab12cd`` → ``a99a``)."""
    if not local:
        return None
    p = re.sub(r"[a-z]+", "a", re.sub(r"[0-9]", "9", local.lower()))
    return f"{p}@{(domain or '').lower()}"


@dataclass
class Index:
    #: kind -> entity -> (label of the bad account/campaign, strength 0..1)
    bad: dict[str, dict[str, tuple[str, float]]] = field(default_factory=dict)
    built_at: float = 0.0
    n_bad: int = 0


_BAD_SQL = """
WITH bad AS (
  SELECT account_id, 'banned account ' || account_id AS label, 1.0::DOUBLE AS strength FROM accounts
  WHERE status IN ('banned', 'suspended')
  {camp_union}
),
b AS (SELECT account_id, arg_max(label, strength) AS label, max(strength) AS strength FROM bad GROUP BY 1)
SELECT b.account_id, b.label, b.strength, a.payment_fingerprint, a.email_local, a.email_domain, a.signup_ip
FROM b LEFT JOIN accounts a USING (account_id)
"""


def build_index(store_path: Path, cfg: SignupConfig) -> Index:
    """Fingerprints of every bad account, minus those common among all accounts."""
    from distillguard.store import Store

    st = Store(store_path)
    con = st.connect(threads=1)
    try:
        camp_union = ""
        if st.has_table("campaigns") and st.has_table("campaign_members"):
            camp_union = (f"UNION ALL SELECT m.account_id, 'member of ' || c.status || ' campaign ' || c.campaign_id, "
                          f"CASE WHEN c.status = 'confirmed' THEN 1.0 ELSE {float(cfg.detected_factor)} END::DOUBLE "
                          "FROM campaign_members m JOIN (SELECT campaign_id, coalesce(status, 'detected') AS status "
                          "FROM campaigns) c USING (campaign_id) WHERE c.status <> 'dismissed'")
        rows = con.execute(_BAD_SQL.format(camp_union=camp_union)).fetchall()
        idx = Index(built_at=time.time(), n_bad=len(rows))
        if not rows:
            return idx
        n_all = con.execute("SELECT count(*) FROM accounts").fetchone()[0] or 0
        cut = max(cfg.common_min, cfg.common_share * n_all)
        bad: dict[str, dict[str, tuple[str, float]]] = {k: {} for k in KINDS}

        def put(kind, entity, label, strength):
            if entity and (entity not in bad[kind] or bad[kind][entity][1] < strength):
                bad[kind][entity] = (label, strength)

        ids = [r[0] for r in rows]
        by_id = {r[0]: (r[1], float(r[2])) for r in rows}
        for _acct, label, strength, pay, local, dom, sip in rows:
            strength = float(strength)
            put("payment", pay, label, strength)
            put("email_pattern", email_pattern(local, dom), label, strength)
            put("network", ip24(sip), label, strength)
        con.execute("CREATE TEMP TABLE _bad(account_id VARCHAR)")
        con.executemany("INSERT INTO _bad VALUES (?)", [(a,) for a in ids])
        # what the bad accounts' traffic came from: their networks and client software
        for acct, kind, ent in con.execute("""
            SELECT account_id, 'client', tls_ja4 FROM exchanges JOIN _bad USING (account_id) WHERE tls_ja4 IS NOT NULL
            UNION SELECT account_id, 'client', header_order_fp FROM exchanges JOIN _bad USING (account_id)
                  WHERE header_order_fp IS NOT NULL
            UNION SELECT account_id, 'network', client_ip FROM exchanges JOIN _bad USING (account_id)
                  WHERE client_ip IS NOT NULL""").fetchall():
            label, strength = by_id[acct]
            put(kind, ip24(ent) if kind == "network" else ent, label, strength)
        # drop what too many accounts share (checked against all accounts, sign-up and traffic)
        common: set[tuple[str, str]] = set()
        for kind, col in (("payment", "payment_fingerprint"),):
            common |= {(kind, e) for (e,) in con.execute(
                f"SELECT {col} FROM accounts WHERE {col} IS NOT NULL GROUP BY 1 HAVING count(*) > ?", [cut]).fetchall()}
        pats: dict[str, int] = {}
        for local, dom in con.execute("SELECT email_local, email_domain FROM accounts").fetchall():
            p = email_pattern(local, dom)
            if p:
                pats[p] = pats.get(p, 0) + 1
        common |= {("email_pattern", p) for p, n in pats.items() if n > cut}
        client_ents = list(bad["client"])
        if client_ents:
            common |= {("client", e) for (e,) in con.execute("""
                SELECT e FROM (SELECT account_id, tls_ja4 AS e FROM exchanges UNION
                               SELECT account_id, header_order_fp FROM exchanges)
                WHERE e IN (SELECT unnest(?::VARCHAR[])) GROUP BY 1 HAVING count(DISTINCT account_id) > ?""",
                [client_ents, cut]).fetchall()}
        nets: dict[str, set[str]] = {}
        for acct, ip in con.execute("SELECT DISTINCT account_id, client_ip FROM exchanges WHERE client_ip IS NOT NULL "
                                    "UNION SELECT account_id, signup_ip FROM accounts WHERE signup_ip IS NOT NULL"
                                    ).fetchall():
            n = ip24(ip)
            if n in bad["network"]:
                nets.setdefault(n, set()).add(acct)
        common |= {("network", n) for n, accts in nets.items() if len(accts) > cut}
        for kind, ent in common:
            bad[kind].pop(ent, None)
        idx.bad = bad
        return idx
    finally:
        con.close()


class _Recent:
    """Sign-ups assessed in the last window, per (pathway, /24) and (pathway, e-mail pattern)."""

    def __init__(self):
        self.q: deque[tuple[float, str, str]] = deque()
        self.counts: dict[str, set[str]] = {}
        self.lock = threading.Lock()

    def add_and_count(self, keys: list[str], account: str, now: float, window: float) -> dict[str, int]:
        with self.lock:
            while self.q and self.q[0][0] < now - window:
                _, k, a = self.q.popleft()
                s = self.counts.get(k)
                if s is not None:
                    s.discard(a)
                    if not s:
                        del self.counts[k]
            out = {}
            for k in keys:
                self.q.append((now, k, account))
                self.counts.setdefault(k, set()).add(account)
                out[k] = len(self.counts[k])
            return out


def assess(req: dict, idx: Index, cfg: SignupConfig, recent: _Recent, now: float | None = None) -> dict:
    """The decision for one sign-up / payment change; pure apart from the recent-sign-up window."""
    now = time.time() if now is None else now
    pathway = (req.get("signup_pathway") or "standard").lower()
    th = cfg.pathways.get(pathway, cfg.default)
    pay = req.get("payment_fingerprint")
    email = req.get("email") or ""
    local, _, dom = email.partition("@") if "@" in email else (req.get("email_local"), None, req.get("email_domain"))
    pat = email_pattern(local, dom)
    net = ip24(req.get("client_ip") or req.get("signup_ip"))
    clients = [c for c in (req.get("tls_ja4"), req.get("header_order_fp")) if c]
    matches = []

    def check(kind, entity, what):
        hit = idx.bad.get(kind, {}).get(entity) if entity else None
        if hit:
            label, strength = hit
            matches.append({"kind": kind, "weight": round(cfg.weights[kind] * strength, 4),
                            "reason": f"{what} matches {label}"})

    check("payment", pay, "payment instrument")
    check("email_pattern", pat, f"e-mail naming pattern {pat}")
    check("network", net, f"network {net}")
    for c in clients:  # one client match is enough: JA4 and header order describe the same software
        n = len(matches)
        check("client", c, "client fingerprint")
        if len(matches) > n:
            break
    keys = ([f"{pathway}|net|{net}"] if net else []) + ([f"{pathway}|mail|{pat}"] if pat else [])
    counts = recent.add_and_count(keys, str(req.get("account_id")), now, cfg.burst_minutes * 60)
    burst = max(counts.values(), default=0)
    if burst >= cfg.burst_min:
        k = max(counts, key=counts.get)
        what = "network " + k.split("|", 2)[2] if "|net|" in k else "e-mail pattern " + k.split("|", 2)[2]
        matches.append({"kind": "creation_burst", "weight": cfg.weights["creation_burst"],
                        "reason": f"creation burst: {burst} sign-ups on pathway {pathway} from {what} within "
                                  f"{cfg.burst_minutes:g} min"})
    score = 1.0
    for m in matches:
        score *= 1.0 - m["weight"]
    score = round(1.0 - score, 4)
    reasons = [m["reason"] for m in matches]
    level = req.get("verification_level")
    if score >= th.deny_at:
        decision = "deny"
    elif score >= th.verify_at:
        decision = "require_verification"
    elif th.min_verification and (level is None or int(level) < th.min_verification):
        decision = "require_verification"
        reasons.append(f"pathway {pathway} requires verification level {th.min_verification} "
                       f"(account has {level if level is not None else 'none'})")
    else:
        decision = "allow"
    return {"account_id": req.get("account_id"), "event": req.get("event") or "signup", "decision": decision,
            "score": score, "reasons": reasons, "matches": matches, "pathway": pathway,
            "thresholds": th.model_dump(), "index_built_at": idx.built_at or None}


class SignupDoor:
    """ASGI handler for ``POST /v1/accounts/assess`` (exact route on the gateway app)."""

    def __init__(self, gw, cfg: SignupConfig):
        self.gw = gw
        self.cfg = cfg
        self.index = Index()
        self.recent = _Recent()
        self._token = ref_value(cfg.token)
        self._next = 0.0

    def refresh(self, force: bool = False) -> None:
        """Rebuild the index when due (called from the gateway's upkeep thread)."""
        store = self.gw.cfg.store
        if store is None or not self.cfg.enabled or (not force and time.monotonic() < self._next):
            return
        self._next = time.monotonic() + self.cfg.refresh_seconds
        try:
            self.index = build_index(Path(store), self.cfg)
        except Exception as e:  # noqa: BLE001 - keep the previous index
            log.error("sign-up index rebuild failed; keeping the previous one", extra={"error": str(e)})

    async def _reply(self, send, status: int, obj: dict) -> None:
        body = orjson.dumps(obj)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send) -> None:
        from distillguard.gateway.proxy import BodyTooLarge, read_body

        if scope["method"] != "POST":
            return await self._reply(send, 405, {"error": {"code": "method_not_allowed", "message": "use POST"}})
        if not self.cfg.enabled or self._token is None:
            return await self._reply(send, 503, {"error": {"code": "not_configured", "message":
                                     f"account assessment is off: set {ref_name(self.cfg.token)} on the gateway"}})
        auth = dict(scope["headers"]).get(b"authorization", b"")
        if not hmac.compare_digest(auth, b"Bearer " + self._token.encode()):
            return await self._reply(send, 401, {"error": {"code": "invalid_api_key", "message": "bad assess token"}})
        try:
            req = orjson.loads(await read_body(receive, 64 * 1024, self.gw.cfg.server.body_timeout_s))
        except TimeoutError:
            return await self._reply(send, 408, {"error": {"code": "request_timeout", "message": "body too slow"}})
        except BodyTooLarge:
            return await self._reply(send, 413, {"error": {"code": "request_too_large", "message": "over 64 KiB"}})
        except (orjson.JSONDecodeError, ConnectionError, ValueError):
            req = None
        err = _validate(req)
        if err:
            return await self._reply(send, 400, {"error": {"code": "invalid_request", "message": err}})
        try:
            out = assess(req, self.index, self.cfg, self.recent)
        except Exception:  # noqa: BLE001 - answer in JSON; the provider's backend decides what to do without us
            log.exception("account assessment failed")
            return await self._reply(send, 500, {"error": {"code": "internal_error", "message": "assessment failed"}})
        log.info("account assessed", extra={"account_id": out["account_id"], "decision": out["decision"],
                                            "score": out["score"]})
        await self._reply(send, 200, out)


def _validate(req) -> str | None:
    if not isinstance(req, dict):
        return "body must be a JSON object"
    if not isinstance(req.get("account_id"), str) or not req["account_id"]:
        return "account_id (string) is required"
    if req.get("event", "signup") not in ("signup", "payment_change"):
        return "event must be signup or payment_change"
    for k in ("email", "payment_fingerprint", "signup_pathway", "client_ip", "tls_ja4", "header_order_fp"):
        if req.get(k) is not None and not isinstance(req[k], str):
            return f"{k} must be a string"
    if req.get("client_ip"):
        try:
            ipaddress.ip_address(req["client_ip"])
        except ValueError:
            return "client_ip is not an IP address"
    lvl = req.get("verification_level")
    if lvl is not None and (not isinstance(lvl, int) or isinstance(lvl, bool) or not 0 <= lvl <= 4):
        return "verification_level must be an integer 0-4"
    return None
