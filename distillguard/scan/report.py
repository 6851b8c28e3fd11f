"""report.html: one self-contained page (inline CSS and SVG, no scripts, no CDN).

Every string that came from traffic or accounts (prompts, ids, user agents, e-mail patterns) is
attacker-controlled: the template runs with Jinja autoescape on, and nothing is marked safe.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from importlib import resources

import duckdb
import jinja2
import orjson

from distillguard.scan.run import ScanResult
from distillguard.scoring.risk import KIND_WORDS, signal_words
from distillguard.store import Store


def _env() -> jinja2.Environment:
    tpl = resources.files("distillguard.scan").joinpath("templates/report.html").read_text()
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["pct"] = lambda v: f"{(v or 0) * 100:.0f}%"
    env.filters["num"] = lambda v: f"{int(v or 0):,}"
    env.filters["ts"] = lambda v: v.strftime("%Y-%m-%d %H:%M") if v else "—"
    env.globals["kind_words"] = lambda k: KIND_WORDS.get(k, (k, k))[0]
    env.globals["signal_words"] = signal_words
    env.template_tpl = tpl  # type: ignore[attr-defined]
    return env


def _timeline(con: duckdb.DuckDBPyConnection, accounts: list[str], t0, t1, marks: list[tuple[str, datetime]],
              w: int = 640, h: int = 90) -> dict:
    con.execute("CREATE OR REPLACE TEMP TABLE _ra(account_id VARCHAR)")
    con.executemany("INSERT INTO _ra VALUES (?)", [(a,) for a in accounts])
    rows = con.execute("""SELECT date_trunc('day', hour) + INTERVAL (CAST(extract(hour FROM hour) / 6 AS INT) * 6) HOUR AS b,
                                 sum(n) FROM beh_ah JOIN _ra USING (account_id) GROUP BY 1 ORDER BY 1""").fetchall()
    span = max((t1 - t0).total_seconds(), 1.0)
    peak = max((n for _, n in rows), default=1)

    def x(t):
        return round(8 + (w - 16) * (t - t0).total_seconds() / span, 1)

    bars = [{"x": x(b), "h": round((h - 20) * n / peak, 1), "n": int(n), "t": b} for b, n in rows]
    return {"w": w, "h": h, "bars": bars, "bw": max(1.5, (w - 16) * 6 * 3600 / span - 0.5),
            "marks": [{"x": x(t), "label": lab} for lab, t in marks if t is not None and t0 <= t <= t1],
            "t0": t0, "t1": t1}


def _infra_graph(con: duckdb.DuckDBPyConnection, accounts: list[str], max_acc: int = 14, max_ent: int = 8) -> dict:
    """A bipartite picture: sampled accounts on the left, their most-shared entities on the right."""
    con.execute("CREATE OR REPLACE TEMP TABLE _ra(account_id VARCHAR)")
    con.executemany("INSERT INTO _ra VALUES (?)", [(a,) for a in accounts])
    ents = con.execute("""SELECT kind, entity, count(*) AS n FROM inc JOIN _ra USING (account_id)
                          WHERE kind NOT IN ('task_item') GROUP BY 1, 2 HAVING count(*) >= 2
                          ORDER BY n DESC, kind LIMIT ?""", [max_ent]).fetchall()
    acc = sorted(accounts)[:max_acc]
    links = con.execute("""SELECT account_id, kind, entity FROM inc WHERE account_id IN (SELECT unnest(?))""",
                        [acc]).fetchall()
    ekey = {(k, e): i for i, (k, e, _) in enumerate(ents)}
    ah = 22
    height = max(len(acc), len(ents)) * ah + 20
    a_nodes = [{"x": 120, "y": 20 + i * ah * max(1, len(ents)) / max(1, len(acc)) if len(ents) > len(acc) else 20 + i * ah,
                "label": a} for i, a in enumerate(acc)]
    e_nodes = [{"x": 290, "y": 20 + i * ah * max(1, len(acc)) / max(1, len(ents)) if len(acc) > len(ents) else 20 + i * ah,
                "label": f"{KIND_WORDS.get(k, (k,))[0]}: {str(e)[:40]}", "n": int(n)} for i, (k, e, n) in enumerate(ents)]
    aidx = {a: i for i, a in enumerate(acc)}
    edges = [{"x1": a_nodes[aidx[a]]["x"], "y1": a_nodes[aidx[a]]["y"], "x2": e_nodes[ekey[(k, e)]]["x"],
              "y2": e_nodes[ekey[(k, e)]]["y"]} for a, k, e in links if (k, e) in ekey and a in aidx]
    return {"h": height, "accounts": a_nodes, "entities": e_nodes, "edges": edges, "n_total": len(accounts)}


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


def baseline(features, flagged: set[str]) -> dict:
    """What a per-account volume threshold (the usual provider control) would have flagged."""
    rows = features.select(["account_id", "peak_rpd", "rpd_limit", "n_exchanges"]).to_pylist()
    vols = sorted((r["peak_rpd"] or 0) for r in rows)
    thr = vols[int(0.99 * (len(vols) - 1))] if vols else 0
    base = {r["account_id"] for r in rows if (r["peak_rpd"] or 0) > thr
            or (r["rpd_limit"] and (r["peak_rpd"] or 0) >= 0.98 * r["rpd_limit"])}
    return {"threshold": thr, "n_flagged": len(base), "overlap": len(base & flagged),
            "missed": len(flagged - base), "only_baseline": len(base - flagged)}


def render_report(store: Store, con: duckdb.DuckDBPyConnection, res: ScanResult) -> str:
    env = _env()
    tpl = env.from_string(env.template_tpl)  # type: ignore[attr-defined]
    feats = res.step.features
    flagged = set(res.account_risk.filter(res.account_risk["flagged"])["account_id"].to_pylist())
    risk_by = {r["account_id"]: r for r in res.account_risk.to_pylist()}
    camps = []
    total_ex = sum(c["n_exchanges"] for c in res.campaigns) or 1
    capability_total: dict[str, float] = {}
    members: dict[str, list[str]] = {c["campaign_id"]: [] for c in res.campaigns}
    for a, cid in res.campaign_members.items():
        if cid in members:
            members[cid].append(a)
    samples = _samples(store, con, members)
    for c in res.campaigns:
        accts = members[c["campaign_id"]]
        mix = orjson.loads(c["capability_mix"])
        for k, v in mix.items():
            capability_total[k] = capability_total.get(k, 0) + v * c["n_exchanges"]
        marks = [(f"{m} released", t) for m, t in res.released] + [("first flagged", c.get("first_flagged_at"))]
        infra = orjson.loads(c["infrastructure"])
        top_accts = sorted(accts, key=lambda a: -risk_by[a]["risk"])[:8]
        camps.append({**c, "mix": sorted(mix.items(), key=lambda kv: -kv[1]), "infra": infra,
                      "timeline": _timeline(con, accts, c["first_seen"], c["last_seen"], marks),
                      "graph": _infra_graph(con, accts), "samples": samples[c["campaign_id"]],
                      "top_accounts": [risk_by[a] for a in top_accts]})
    headline = {
        "campaigns": len(res.campaigns), "accounts": len(flagged), "exchanges": sum(c["n_exchanges"] for c in res.campaigns),
        "all_exchanges": res.n_exchanges, "all_accounts": feats.num_rows,
        "capabilities": sorted(((k, v / total_ex) for k, v in capability_total.items() if v / total_ex >= 0.01),
                               key=lambda kv: -kv[1]),
    }
    return tpl.render(h=headline, campaigns=camps, base=baseline(feats, flagged), replay=res.replay,
                      released=res.released, ban_links=res.ban_links[:20], generated=datetime.now(UTC),
                      store=str(store.path), math=math)
