"""report.html: one self-contained page that opens offline (inline CSS, and the console's own chart stack inlined).

Every string that came from traffic or accounts (prompts, ids, user agents, e-mail patterns) is
attacker-controlled: the template runs with Jinja autoescape on, and only our own two script files are
marked safe; chart data travels as JSON blocks (``tojson``), and the page's Content-Security-Policy allows
exactly those two scripts by hash.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from importlib import resources

import duckdb
import jinja2
import orjson

from distillguard.bench.baseline import baseline_results
from distillguard.console import charts, evidence
from distillguard.scan.run import ScanResult
from distillguard.scoring.reasons import KIND_WORDS, signal_words
from distillguard.store import Store
from distillguard.ui import REPLAY_HINT, sentences


def _env() -> jinja2.Environment:
    tpl = resources.files("distillguard.scan").joinpath("templates/report.html").read_text()
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["pct"] = lambda v: f"{(v or 0) * 100:.0f}%"
    env.filters["num"] = lambda v: f"{int(v or 0):,}"
    env.filters["ts"] = lambda v: v.strftime("%Y-%m-%d %H:%M") if v else "—"
    env.globals["kind_words"] = lambda k: KIND_WORDS.get(k, (k, k))[0]
    env.globals["signal_words"] = signal_words
    env.globals["replay_hint"] = REPLAY_HINT
    env.filters["sentences"] = sentences
    env.template_tpl = tpl  # type: ignore[attr-defined]
    return env


def _samples(store: Store, con: duckdb.DuckDBPyConnection, groups: dict[str, list[str]], k: int = 3) -> dict[str, list[dict]]:
    """Up to ``k`` example prompts per campaign (from its first 20 accounts by id), in one pass over the
    exchanges for all campaigns: the prompt column is the widest in the store, read once, not per campaign."""
    pairs = [(g, a) for g, accounts in groups.items() for a in sorted(accounts)[:20]]
    out: dict[str, list[dict]] = {g: [] for g in groups}
    if not pairs:
        return out
    con.execute("CREATE OR REPLACE TEMP TABLE _sa(grp VARCHAR, account_id VARCHAR)")
    con.executemany("INSERT INTO _sa VALUES (?, ?)", pairs)
    rows = con.execute(f"""SELECT grp, account_id, ts, model, prompt FROM (
                             SELECT s.grp, e.account_id, e.ts, e.model, e.prompt,
                                    row_number() OVER (PARTITION BY s.grp ORDER BY hash(e.prompt)) AS r
                             FROM ({store.exchanges_sql(['account_id', 'ts', 'model', 'prompt'])}) e
                             JOIN _sa s ON s.account_id = e.account_id
                             WHERE e.account_id IN (SELECT account_id FROM _sa) AND e.prompt IS NOT NULL)
                           WHERE r <= {int(k)} ORDER BY grp, r""").fetchall()
    for g, a, t, m, p in rows:
        out[g].append({"account_id": a, "ts": t, "model": m, "prompt": (p or "")[:400]})
    return out


def baseline(store: Store, flagged: set[str]) -> dict:
    """The ``distillguard baseline`` detector itself (bench/baseline.py), compared with the scan's flags.

    One definition: the report and the command flag the same accounts at the same threshold.
    """
    t = baseline_results(store)
    base = {a for a, f in zip(t["account_id"].to_pylist(), t["flagged"].to_pylist(), strict=True) if f}
    return {"threshold": int(t.schema.metadata[b"daily_threshold"]), "n_flagged": len(base),
            "n_accounts": t.num_rows, "overlap": len(base & flagged), "missed": len(flagged - base),
            "only_baseline": len(base - flagged)}


def _inline(name: str) -> str:
    """A static file of the console's chart stack, made safe to place inside a <script> element."""
    text = resources.files("distillguard.console").joinpath("static", name).read_text(encoding="utf-8")
    return text.replace("</script", "<\\/script")


def _daily(con: duckdb.DuckDBPyConnection, accounts: list[str]) -> list[dict]:
    rows = con.execute("""SELECT CAST(date_trunc('day', ts) AS DATE) AS day, model, count(*) AS n FROM exchanges
                          WHERE account_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY 1, 2 ORDER BY 1, 2""",
                       [accounts]).fetchall()
    return [{"day": d, "model": m, "n": n} for d, m, n in rows]


def render_report(store: Store, con: duckdb.DuckDBPyConnection, res: ScanResult) -> str:
    env = _env()
    tpl = env.from_string(env.template_tpl)  # type: ignore[attr-defined]
    feats = res.step.features
    flagged = set(res.account_risk.filter(res.account_risk["flagged"])["account_id"].to_pylist())
    risk_by = {r["account_id"]: r for r in res.account_risk.to_pylist()}
    camps = []
    members: dict[str, list[str]] = {c["campaign_id"]: [] for c in res.campaigns}
    for a, cid in res.campaign_members.items():
        if cid in members:
            members[cid].append(a)
    samples = _samples(store, con, members)
    # The tables scan just wrote, read exactly as the console reads them: the same counts on both.
    scon = store.connect()
    released = {m: t for m, t in res.released}
    for c in res.campaigns:
        accts = members[c["campaign_id"]]
        infra = orjson.loads(c["infrastructure"])
        top_accts = sorted(accts, key=lambda a: -risk_by[a]["risk"])[:8]
        board = evidence.campaign_evidence(scon, c["campaign_id"], max_groups=40)
        h = evidence.harvest(scon, accts, c["campaign_id"], prefer_console=False)
        camps.append({**c, "infra": infra, "board": board, "harvest_info": h,
                      "timeline": charts.campaign_timeline(_daily(scon, accts), released.get(c.get("pivot_model"))),
                      "signals": charts.signal_bars(evidence.signal_shares(scon, accts, prefer_console=False),
                                                    signal_words),
                      "harvest": charts.harvest(h), "samples": samples[c["campaign_id"]],
                      "top_accounts": [risk_by[a] for a in top_accts]})
    all_members = sorted({a for v in members.values() for a in v})
    headline = {
        "campaigns": len(res.campaigns), "accounts": len(flagged), "members": len(all_members), "exchanges": sum(c["n_exchanges"] for c in res.campaigns),
        "all_exchanges": res.n_exchanges, "all_accounts": feats.num_rows,
        "signals": charts.signal_bars(evidence.signal_shares(scon, all_members, prefer_console=False), signal_words),
    }
    scon.close()
    scripts = [_inline("chart.umd.min.js"), _inline("console.js")]
    csp_hashes = " ".join("'sha256-" + base64.b64encode(hashlib.sha256(js.encode()).digest()).decode() + "'"
                          for js in scripts)
    return tpl.render(h=headline, campaigns=camps, base=baseline(store, flagged), replay=res.replay,
                      released=res.released, ban_links=res.ban_links[:20], model_update=res.model_update,
                      generated=datetime.now(UTC), store=store.location, scripts=scripts, csp_hashes=csp_hashes)
