"""Read side of the console: every page's data, from the detection tables and the console_* aggregates.

Each call opens its own in-memory DuckDB connection over the store (cheap; no shared state
between request threads) and binds user input only as query parameters, never into SQL text.
Tables the detection engine has not written yet read as empty, so pages show an empty state
instead of an error.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import duckdb
import orjson

from distillguard.console import evidence
from distillguard.console.aggregates import META, aggregates_fresh, build_aggregates
from distillguard.console.config import ConsoleSettings
from distillguard.store import Store

MEMBERS_PAGE = 200
ENFORCEMENT_SORTS = {"created_at", "expires_at", "subject_type", "subject_id", "action", "source", "actor"}
CAMPAIGN_SORTS = {"confidence", "n_accounts", "n_exchanges", "first_seen", "last_seen", "title", "status"}

CURRENT_ENFORCEMENT = """
    SELECT * EXCLUDE (_rn) FROM (
        SELECT *, row_number() OVER (PARTITION BY subject_type, subject_id ORDER BY created_at DESC) AS _rn
        FROM enforcement WHERE (expires_at IS NULL OR expires_at > now())
                           AND coalesce(source, '') NOT LIKE '%:shadow')
    WHERE _rn = 1"""

DECISIONS = """
    SELECT subject_id AS campaign_id, CASE action WHEN 'confirm' THEN 'confirmed' ELSE 'dismissed' END AS status,
           "at" AS decided_at, actor AS decided_by
    FROM (SELECT *, row_number() OVER (PARTITION BY subject_id ORDER BY "at" DESC) AS _rn
          FROM audit_log WHERE subject_type = 'campaign' AND action IN ('confirm', 'dismiss'))
    WHERE _rn = 1"""


def _rows(rel_or_cur) -> list[dict]:
    cols = [d[0] for d in rel_or_cur.description]
    return [dict(zip(cols, r, strict=True)) for r in rel_or_cur.fetchall()]


def _json(text: str | None) -> dict:
    if not text:
        return {}
    try:
        v = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"value": text}
    return v if isinstance(v, dict) else {"value": v}


class ConsoleData:
    """One DuckDB database per app; each request gets its own cursor (safe across request threads).

    Keeping the database alive lets DuckDB cache Parquet footers between page views, which is most
    of the cost of a small query; views are re-created only when a new table appears in the store.
    """

    def __init__(self, store: Store, settings: ConsoleSettings):
        self.store = store
        self.settings = settings
        self._db = store.duck()  # can read the store wherever it lives
        self._db.execute("SET threads=2")
        self._db.execute("SET TimeZone='UTC'")
        self._db.execute("SET parquet_metadata_cache=true")
        self._lock = threading.Lock()
        self._known: tuple[str, ...] | None = None
        self._rebuild = threading.Event()
        self._rebuild_error: str | None = None

    def _refresh_views(self) -> None:
        tables = tuple(self.store.tables_with_parts())
        if tables == self._known:
            return
        with self._lock:
            if tables != self._known:
                self.store.register_views(self._db)
                self._known = tables

    def close(self) -> None:
        self._db.close()

    def missing_decisions(self):
        """Mirrored analyst rows with no identical row left in ``enforcement`` (as an Arrow table)."""
        from distillguard.console.tables import ENFORCEMENT_SCHEMA, MIRROR

        if not self.has(MIRROR):
            return ENFORCEMENT_SCHEMA.empty_table()
        with self.con() as con:
            cols = ", ".join(ENFORCEMENT_SCHEMA.names)
            enf = ("SELECT subject_type, subject_id, action, created_at, actor FROM enforcement"
                   if self.has("enforcement") else
                   "SELECT NULL::VARCHAR subject_type, NULL::VARCHAR subject_id, NULL::VARCHAR action, "
                   "NULL::TIMESTAMPTZ created_at, NULL::VARCHAR actor WHERE false")
            t = con.sql(f"""SELECT {cols} FROM {MIRROR} m WHERE NOT EXISTS (
                                    SELECT 1 FROM ({enf}) e WHERE e.subject_type = m.subject_type
                                      AND e.subject_id = m.subject_id AND e.action = m.action
                                      AND e.created_at = m.created_at AND e.actor IS NOT DISTINCT FROM m.actor)
                                ORDER BY created_at""").to_arrow_table()
        return t.cast(ENFORCEMENT_SCHEMA)

    # ------------------------------------------------------------------ aggregates
    def aggregates_status(self) -> dict:
        """Whether the console_* tables still describe the store (ingest or scan may have run since)."""
        built = None
        if self.has(META):
            with self.con() as con:
                r = con.execute("SELECT max(built_at) FROM console_meta").fetchall()
                built = r[0][0] if r else None
        return {"fresh": aggregates_fresh(self.store), "built_at": built, "running": self._rebuild.is_set(),
                "error": self._rebuild_error}

    def start_rebuild(self) -> bool:
        """Rebuild the aggregates in a background thread; False when one is already running.

        Each table is replaced atomically, so pages keep answering (from old or new tables) meanwhile.
        """
        with self._lock:
            if self._rebuild.is_set():
                return False
            self._rebuild.set()
            self._rebuild_error = None

        def run():
            try:
                build_aggregates(self.store, sample_prompts=self.settings.sample_prompts,
                                 account_samples=self.settings.account_samples)
            except Exception as e:  # noqa: BLE001 - shown on the admin page instead of killing a thread silently
                self._rebuild_error = str(e)
            finally:
                self._rebuild.clear()

        threading.Thread(target=run, name="console-aggregates", daemon=True).start()
        return True

    @contextmanager
    def con(self):
        self._refresh_views()
        cur = self._db.cursor()
        try:
            yield cur
        finally:
            cur.close()

    def has(self, name: str) -> bool:
        return self.store.has_table(name)

    def q(self, con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict]:
        return _rows(con.execute(sql, params or []))

    # ------------------------------------------------------------------ campaigns
    def _campaigns_sql(self) -> str:
        if self.has("campaign_decisions"):
            return ("SELECT c.* EXCLUDE (status), coalesce(d.status, c.status) AS status, c.status AS scan_status, "
                    "d.\"at\" AS decided_at, d.actor AS decided_by FROM campaigns c LEFT JOIN ("
                    "SELECT * EXCLUDE (_rn) FROM (SELECT *, row_number() OVER (PARTITION BY campaign_id "
                    "ORDER BY \"at\" DESC) AS _rn FROM campaign_decisions) WHERE _rn = 1) d USING (campaign_id)")
        if self.has("audit_log"):
            return (f"SELECT c.* EXCLUDE (status), coalesce(d.status, c.status) AS status, c.status AS scan_status, "
                    f"d.decided_at, d.decided_by FROM campaigns c LEFT JOIN ({DECISIONS}) d USING (campaign_id)")
        return ("SELECT c.* EXCLUDE (status), c.status, c.status AS scan_status, NULL::TIMESTAMPTZ AS decided_at, "
                "NULL::VARCHAR AS decided_by FROM campaigns c")

    def campaigns(self, sort: str = "confidence", desc: bool = True, status: str | None = None,
                  limit: int = 1000) -> list[dict]:
        if not self.has("campaigns"):
            return []
        sort = sort if sort in CAMPAIGN_SORTS else "confidence"
        where, params = "", []
        if status:
            where, params = "WHERE status = ?", [status]
        with self.con() as con:
            rows = self.q(con, f"SELECT * FROM ({self._campaigns_sql()}) {where} "
                               f"ORDER BY {sort} {'DESC' if desc else 'ASC'} NULLS LAST, campaign_id LIMIT ?",
                          params + [limit])
            # the review queue shows what already acts by itself (and what only runs in shadow) next to each campaign
            recs: dict[tuple[str, str], list[str]] = {}
            if self.has("enforcement_recommendations"):
                for cid, disp, action in con.execute(
                        "SELECT campaign_id, disposition, action FROM enforcement_recommendations "
                        "WHERE disposition IN ('applied', 'shadow') ORDER BY action").fetchall():
                    recs.setdefault((cid, disp), []).append(action)
            for r in rows:
                r["applied"] = recs.get((r["campaign_id"], "applied"), [])
                r["shadow"] = recs.get((r["campaign_id"], "shadow"), [])
            return rows

    def headline(self) -> dict:
        out = {"n_campaigns": 0, "n_accounts": 0, "n_exchanges": 0, "store_exchanges": None, "by_status": {},
               "enforcement": {}, "aggregates_built": None}
        with self.con() as con:
            if self.has("campaigns"):
                r = self.q(con, f"SELECT count(*) AS n, sum(n_accounts) AS a, sum(n_exchanges) AS e "
                                f"FROM ({self._campaigns_sql()})")[0]
                out.update(n_campaigns=r["n"], n_accounts=r["a"] or 0, n_exchanges=r["e"] or 0)
                out["by_status"] = {r["status"]: r["n"] for r in self.q(
                    con, f"SELECT status, count(*) AS n FROM ({self._campaigns_sql()}) GROUP BY 1")}
            if self.has("enforcement"):
                out["enforcement"] = {r["action"]: r["n"] for r in self.q(
                    con, f"SELECT action, count(*) AS n FROM ({CURRENT_ENFORCEMENT}) GROUP BY 1 ORDER BY 2 DESC")}
            if self.has("console_meta"):
                m = self.q(con, "SELECT * FROM console_meta ORDER BY built_at DESC LIMIT 1")
                if m:
                    out["store_exchanges"] = m[0]["n_exchanges"]
                    out["aggregates_built"] = m[0]["built_at"]
        return out

    def campaign(self, campaign_id: str, members_offset: int = 0) -> dict | None:
        if not self.has("campaigns"):
            return None
        with self.con() as con:
            rows = self.q(con, f"SELECT * FROM ({self._campaigns_sql()}) WHERE campaign_id = ?", [campaign_id])
            if not rows:
                return None
            c = rows[0]
            c["capability_mix"] = _json(c.get("capability_mix"))
            c["infrastructure"] = _json(c.get("infrastructure"))
            c["daily"] = []
            if self.has("console_campaign_daily"):
                c["daily"] = self.q(con, "SELECT day, model, n FROM console_campaign_daily WHERE campaign_id = ? "
                                         "ORDER BY day, model", [campaign_id])
            c["samples"] = []
            if self.has("console_campaign_samples"):
                c["samples"] = self.q(con, "SELECT * FROM console_campaign_samples WHERE campaign_id = ? ORDER BY ts "
                                           "LIMIT ?", [campaign_id, self.settings.sample_prompts])
            c["members"], c["n_members"] = self._members(con, campaign_id, limit=MEMBERS_PAGE, offset=members_offset)
            c["members_offset"], c["members_page"] = members_offset, MEMBERS_PAGE
            c["pivot_release"] = None
            if c.get("pivot_model") and self.has("console_account_models"):
                r = self.q(con, "SELECT min(first_ts) AS t FROM console_account_models WHERE model = ?",
                           [c["pivot_model"]])
                c["pivot_release"] = r[0]["t"] if r else None
            ids = self.member_ids(con, campaign_id)
            c["clusters"] = self._cluster_rows(con, self.cluster_ids(con, ids))
            # Every count on the evidence board, the chart markers and the header comes from console/evidence.py.
            c["board"] = evidence.campaign_evidence(con, campaign_id, max_groups=self.settings.graph_max_accounts,
                                                    max_entities=self.settings.graph_max_entities)
            c["shares"] = evidence.signal_shares(con, ids)
            c["harvest"] = evidence.harvest(con, ids, campaign_id)
            c["enforcement"] = self._campaign_enforcement(con, campaign_id)
            c["recommendations"] = self.q(con, "SELECT * FROM enforcement_recommendations WHERE campaign_id = ? "
                                               "ORDER BY \"primary\" DESC, action", [campaign_id]
                                          ) if self.has("enforcement_recommendations") else []
            c["audit"] = self.q(con, "SELECT * FROM audit_log WHERE subject_type = 'campaign' AND subject_id = ? "
                                     "ORDER BY \"at\" DESC LIMIT 50", [campaign_id]) if self.has("audit_log") else []
            return c

    def member_ids(self, con, campaign_id: str) -> list[str]:
        return evidence.members(con, campaign_id)

    def cluster_ids(self, con, account_ids: list[str]) -> list[str]:
        out: set[str] = set()
        if self.has("cluster_members"):
            out |= {r[0] for r in con.execute("SELECT DISTINCT cluster_id FROM cluster_members "
                                              "WHERE account_id IN (SELECT unnest(?::VARCHAR[]))", [account_ids]).fetchall()}
        if self.has("account_risk"):
            out |= {r[0] for r in con.execute("SELECT DISTINCT cluster_id FROM account_risk WHERE cluster_id IS NOT NULL "
                                              "AND account_id IN (SELECT unnest(?::VARCHAR[]))", [account_ids]).fetchall()}
        return sorted(x for x in out if x is not None)

    def _cluster_rows(self, con, cluster_ids: list[str]) -> list[dict]:
        """The detector's own summary of each cluster (size, risk, reasons in words)."""
        if not cluster_ids or not self.has("clusters"):
            return []
        return self.q(con, """SELECT * FROM clusters WHERE cluster_id IN (SELECT unnest(?::VARCHAR[]))
                              ORDER BY risk DESC NULLS LAST LIMIT 20""", [cluster_ids])

    def _members(self, con, campaign_id: str, limit: int, offset: int = 0) -> tuple[list[dict], int]:
        """The ``limit`` riskiest members and how many there are in all."""
        ids = self.member_ids(con, campaign_id)
        if not ids:
            return [], 0
        risk = ("LEFT JOIN (SELECT account_id, risk, cluster_id FROM account_risk) r USING (account_id)"
                if self.has("account_risk") else "")
        risk_cols = "r.risk, r.cluster_id" if risk else "NULL::DOUBLE AS risk, NULL::VARCHAR AS cluster_id"
        summ = ("LEFT JOIN console_account_summary s USING (account_id)" if self.has("console_account_summary") else "")
        summ_cols = ("s.n_exchanges, s.first_ts, s.last_ts, s.n_ips, s.email_domain, s.signup_country"
                     if summ else "NULL AS n_exchanges, NULL AS first_ts, NULL AS last_ts, NULL AS n_ips, "
                                  "NULL AS email_domain, NULL AS signup_country")
        enf = (f"LEFT JOIN (SELECT subject_id AS account_id, action AS enforcement FROM ({CURRENT_ENFORCEMENT}) "
               f"WHERE subject_type = 'account') e USING (account_id)" if self.has("enforcement") else "")
        enf_col = "e.enforcement" if enf else "NULL AS enforcement"
        return self.q(con, f"""SELECT m.account_id, {risk_cols}, {summ_cols}, {enf_col}
                              FROM (SELECT unnest(?::VARCHAR[]) AS account_id) m {risk} {summ} {enf}
                              ORDER BY risk DESC NULLS LAST, account_id LIMIT ? OFFSET ?""",
                      [ids, limit, max(offset, 0)]), len(ids)

    def _campaign_enforcement(self, con, campaign_id: str) -> dict:
        if not self.has("enforcement"):
            return {"current": [], "n_rows": 0}
        ids = self.member_ids(con, campaign_id)
        clusters = self.cluster_ids(con, ids) if ids else []
        cur = self.q(con, f"""SELECT subject_type, action, count(*) AS n, max(created_at) AS latest
                              FROM ({CURRENT_ENFORCEMENT})
                              WHERE (subject_type = 'account' AND subject_id IN (SELECT unnest(?::VARCHAR[])))
                                 OR (subject_type = 'cluster' AND subject_id IN (SELECT unnest(?::VARCHAR[])))
                              GROUP BY 1, 2 ORDER BY 1, 3 DESC""", [ids, clusters])
        recent = self.q(con, """SELECT * FROM enforcement WHERE campaign_id = ? ORDER BY created_at DESC LIMIT 20""",
                        [campaign_id])
        return {"current": cur, "recent": recent}

    # ------------------------------------------------------------------ accounts
    def account(self, account_id: str) -> dict | None:
        with self.con() as con:
            a: dict = {"account_id": account_id}
            found = False
            if self.has("console_account_summary"):
                r = self.q(con, "SELECT * FROM console_account_summary WHERE account_id = ?", [account_id])
                if r:
                    a.update(r[0])
                    found = True
            a["risk"] = None
            if self.has("account_risk"):
                r = self.q(con, "SELECT * FROM account_risk WHERE account_id = ?", [account_id])
                if r:
                    a["risk"] = r[0]
                    found = True
            if not found:
                return None
            a["campaigns"] = []
            if self.has("campaign_members") and self.has("campaigns"):
                a["campaigns"] = self.q(con, f"""SELECT c.campaign_id, c.title, c.status, c.confidence
                                                 FROM campaign_members m JOIN ({self._campaigns_sql()}) c
                                                 USING (campaign_id) WHERE m.account_id = ?""", [account_id])
            a["clusters"] = self.cluster_ids(con, [account_id])
            a["cluster_rows"] = self._cluster_rows(con, a["clusters"])
            a["hourly"] = (self.q(con, "SELECT hour, n FROM console_account_hourly WHERE account_id = ? ORDER BY hour",
                                  [account_id]) if self.has("console_account_hourly") else [])
            a["models"] = (self.q(con, "SELECT model, n, first_ts, last_ts FROM console_account_models "
                                       "WHERE account_id = ? ORDER BY n DESC", [account_id])
                           if self.has("console_account_models") else [])
            a["signals"] = (self.q(con, "SELECT detector, mean, max, n_high, n FROM console_account_signals "
                                        "WHERE account_id = ? ORDER BY mean DESC", [account_id])
                            if self.has("console_account_signals") else [])
            a["links"] = evidence.account_partners(con, account_id, [c["campaign_id"] for c in a["campaigns"]])
            a["ips"] = (self.q(con, "SELECT client_ip, n, first_ts, last_ts FROM console_account_ips "
                                    "WHERE account_id = ? ORDER BY n DESC LIMIT 20", [account_id])
                        if self.has("console_account_ips") else [])
            a["templates"] = (self.q(con, "SELECT template_key, n FROM console_template_index WHERE account_id = ? "
                                          "ORDER BY n DESC LIMIT 10", [account_id])
                              if self.has("console_template_index") else [])
            a["samples"] = (self.q(con, "SELECT * FROM console_account_samples WHERE account_id = ? ORDER BY ts DESC "
                                        "LIMIT ?", [account_id, self.settings.account_samples])
                            if self.has("console_account_samples") else [])
            subj = [account_id] + a["clusters"]
            a["enforcement"] = (self.q(con, """SELECT * FROM enforcement
                                              WHERE (subject_type = 'account' AND subject_id = ?)
                                                 OR (subject_type = 'cluster' AND subject_id IN (SELECT unnest(?::VARCHAR[])))
                                              ORDER BY created_at DESC LIMIT 50""", [account_id, subj[1:]])
                                if self.has("enforcement") else [])
            a["current"] = (self.q(con, f"SELECT * FROM ({CURRENT_ENFORCEMENT}) WHERE subject_type = 'account' "
                                        f"AND subject_id = ?", [account_id]) if self.has("enforcement") else [])
            a["labels"] = (self.q(con, "SELECT * FROM analyst_labels WHERE account_id = ? ORDER BY \"at\" DESC LIMIT 20",
                                  [account_id]) if self.has("analyst_labels") else [])
            return a

    # ------------------------------------------------------------------ search
    def search(self, q: str, kind: str) -> dict:
        q = q.strip()
        out: dict = {"q": q, "kind": kind, "accounts": [], "ips": [], "templates": [], "text": None}
        if not q:
            return out
        with self.con() as con:
            if kind in ("all", "account") and self.has("console_account_summary"):
                out["accounts"] = self.q(con, """SELECT account_id, n_exchanges, email_domain, email_local, org_id,
                                                       last_ts
                                                FROM console_account_summary
                                                WHERE contains(lower(account_id), lower(?))
                                                   OR lower(email_local) = lower(?) OR org_id = ?
                                                ORDER BY (account_id = ?) DESC, n_exchanges DESC LIMIT 50""",
                                         [q, q, q, q])
            if kind in ("all", "ip") and self.has("console_account_ips"):
                prefix = q.split("/")[0]
                if q.endswith("/24"):
                    prefix = prefix.rsplit(".", 1)[0] + "."
                out["ips"] = self.q(con, """SELECT client_ip, account_id, n, first_ts, last_ts FROM console_account_ips
                                           WHERE client_ip = ? OR starts_with(client_ip, ?)
                                           ORDER BY client_ip, n DESC LIMIT 100""", [q, prefix])
            if kind in ("all", "template") and self.has("console_templates"):
                out["templates"] = self.q(con, """SELECT t.*, (SELECT list(account_id ORDER BY n DESC)[1:10]
                                                             FROM console_template_index i
                                                             WHERE i.template_key = t.template_key) AS accounts
                                                  FROM console_templates t
                                                  WHERE template_key = ? OR contains(template_key, ?)
                                                  ORDER BY (template_key = ?) DESC, n DESC LIMIT 20""", [q, q, q])
            if kind == "text":
                out["text"] = self._text_search(con, q)
        return out

    def _text_search(self, con, q: str) -> dict:
        """A bounded scan of the most recent exchanges (at most ``text_scan_rows``), newest matches first."""
        if len(q) < 3:
            return {"rows": [], "note": "Type at least 3 characters to search prompt text.", "since": None}
        budget = self.settings.text_scan_rows
        since, scanned, total = None, 0, 0
        if self.has("console_daily"):
            days = con.execute("SELECT day, n_exchanges FROM console_daily ORDER BY day DESC").fetchall()
            total = sum(n for _, n in days)
            for day, n in days:
                if scanned + n > budget and since is not None:
                    break
                since, scanned = day, scanned + n
        if since is None:
            since = datetime.now(UTC).date() - timedelta(days=1)
        since_ts = datetime(since.year, since.month, since.day, tzinfo=UTC)
        rows = self.q(con, f"""SELECT exchange_id, account_id, ts, model, client_ip, left(prompt, 600) AS prompt
                              FROM ({self.store.exchanges_sql(['exchange_id', 'account_id', 'ts', 'model',
                                                               'client_ip', 'prompt'])})
                              WHERE ts >= ? AND contains(lower(prompt), lower(?))
                              ORDER BY ts DESC LIMIT 100""", [since_ts, q])
        note = (f"Searched prompt text of the {scanned:,} most recent exchanges (since {since}) of {total:,}; "
                f"showing at most 100 matches, newest first.")
        if scanned >= total:
            note = f"Searched prompt text of all {total:,} exchanges; showing at most 100 matches, newest first."
        return {"rows": rows, "note": note, "since": since}

    # ------------------------------------------------------------------ audit and enforcement
    def audit(self, limit: int = 200, subject_id: str | None = None) -> list[dict]:
        if not self.has("audit_log"):
            return []
        with self.con() as con:
            if subject_id:
                return self.q(con, "SELECT * FROM audit_log WHERE subject_id = ? ORDER BY \"at\" DESC LIMIT ?",
                              [subject_id, limit])
            return self.q(con, "SELECT * FROM audit_log ORDER BY \"at\" DESC LIMIT ?", [limit])

    def current_enforcement(self, action: str | None = None, limit: int = 100, offset: int = 0,
                            sort: str = "created_at", desc: bool = True, q: str = "") -> tuple[list[dict], int]:
        """One page of the decisions in force (newest first by default) and how many match in all."""
        if not self.has("enforcement"):
            return [], 0
        sort = sort if sort in ENFORCEMENT_SORTS else "created_at"
        where, params = ["true"], []
        if action:
            where.append("action = ?")
            params.append(action)
        if q:
            where.append("(contains(lower(subject_id), lower(?)) OR contains(lower(coalesce(reason, '')), lower(?)) "
                         "OR contains(lower(coalesce(campaign_id, '')), lower(?)))")
            params += [q, q, q]
        sql = f"SELECT * FROM ({CURRENT_ENFORCEMENT}) WHERE {' AND '.join(where)}"
        with self.con() as con:
            total = con.execute(f"SELECT count(*) FROM ({sql})", params).fetchall()[0][0]
            rows = self.q(con, f"{sql} ORDER BY {sort} {'DESC' if desc else 'ASC'} NULLS LAST, subject_type, subject_id "
                               f"LIMIT ? OFFSET ?", params + [limit, max(offset, 0)])
        return rows, total
