"""Every count and every name a campaign or a cluster is described with, from one definition.

A campaign's title, its evidence sentences, the cluster summaries beside it, the console's evidence board,
an account's partner list and report.html used to count shared evidence in different ways (the scan's
incidence table, edges inside a cluster, edges touching one account) and disagreed: a title said 25
accounts while its first evidence line said 27 shared payment fingerprints. They all count here now.

The definition: an account *holds* an entity (a /24, a payment fingerprint, a template ...) when it is an
endpoint of a coordination edge of that (kind, entity) — the ``coordination_edges`` table (docs/tables.md),
or, during a scan, the same edges before they are written. A group (a campaign's members, a cluster's
members) *shares* an entity when at least two of its accounts hold it, and the count for an entity is the
number of the group's accounts that hold it. A count of accounts is therefore always a subset of the group
and the words say whose accounts they are: "12 of the campaign's 25 accounts share 2 payment fingerprints",
never "27 accounts share" under a title of 25.

Kinds are ranked by how rare a shared value is among honest customers: two accounts on one payment card
or one TLS fingerprint say far more than two accounts on one /24 or one ASN.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple

import duckdb
import pyarrow as pa

from distillguard.graph.edges import KIND_GROUP
from distillguard.scoring.reasons import KIND_WORDS
from distillguard.store.sqltext import sql_string

#: Rarest (strongest) evidence first; kinds not listed sort after these, networks last.
KIND_ORDER = ("payment", "payment_burst", "ja4", "header_fp", "creation_burst", "sync", "email_pattern", "user_agent", "template",
              "system_prompt", "task_item", "email_domain", "intel", "ip24", "asn")


def kind_rank(kind: str) -> int:
    return KIND_ORDER.index(kind) if kind in KIND_ORDER else KIND_ORDER.index("email_domain") + 1


def kind_words(kind: str, n: int = 1) -> str:
    one, many = KIND_WORDS.get(kind, (kind.replace("_", " "), kind.replace("_", " ") + "s"))
    return one if n == 1 else many


class Edges(NamedTuple):
    """Where the coordination edges are: the store's table, or the scan's own relation before it is written."""
    table: str
    src: str
    dst: str


STORE_EDGES = Edges("coordination_edges", "src_account", "dst_account")
#: the temp table ``graph.edges.coordination_edges`` builds inside a scan's detect step
SCAN_EDGES = Edges("edges", "src", "dst")


@dataclass
class KindCount:
    """One kind of evidence a group shares: how many distinct entities, how many of the group's accounts
    hold at least one of them, and the most widely held one."""
    kind: str
    n_entities: int
    n_accounts: int
    top_entity: str
    top_accounts: int


@dataclass
class Shared:
    """What a group's accounts share: per kind (rarest first), the most-held entities, per evidence group."""
    n_members: int
    kinds: list[KindCount] = field(default_factory=list)
    top: dict[str, list[tuple[str, int]]] = field(default_factory=dict)   # kind -> [(entity, n)], most held first
    groups: dict[str, int] = field(default_factory=dict)                 # evidence group -> accounts holding any

    def kind(self, kind: str) -> KindCount | None:
        return next((k for k in self.kinds if k.kind == kind), None)


#: Name under which ``shared`` registers a group's members on an engine without list parameters (Spark).
MEMBERS_VIEW = "_dg_members"


@contextmanager
def _members_sql(members: dict[str, Sequence[str]], con=None) -> Iterator[tuple[str, list]]:
    """The members as a relation: list parameters on DuckDB; on another engine (Spark), a table registered for
    the statement and unregistered after it, so no members view outlives the call (a later caller with a
    different engine state, or a catalog listing, must not see a stale group)."""
    grp, acc = [], []
    for g, accts in members.items():
        for a in dict.fromkeys(accts):
            grp.append(str(g))
            acc.append(a)
    if con is not None and not isinstance(con, duckdb.DuckDBPyConnection):
        con.register(MEMBERS_VIEW, pa.table({"grp": pa.array(grp, pa.string()),
                                             "account_id": pa.array(acc, pa.string())}))
        try:
            yield f"SELECT grp, account_id FROM {MEMBERS_VIEW}", []
        finally:
            con.unregister(MEMBERS_VIEW)
        return
    yield "SELECT unnest(?::VARCHAR[]) AS grp, unnest(?::VARCHAR[]) AS account_id", [grp, acc]


def _holdings_cte(members_sql: str, edges: Edges, materialized: bool = False) -> str:
    """The one definition: (grp, kind, entity, account_id) for every entity at least two of the group's accounts
    hold, an account holding an entity when it is an endpoint of one of the entity's edges."""
    t, s, d = edges
    return f"""m AS ({members_sql}),
    h AS (SELECT m.grp, e.kind, CAST(e.entity AS VARCHAR) AS entity, m.account_id
          FROM {t} e JOIN m ON e.{s} = m.account_id
          UNION
          SELECT m.grp, e.kind, CAST(e.entity AS VARCHAR) AS entity, m.account_id
          FROM {t} e JOIN m ON e.{d} = m.account_id),
    n AS (SELECT grp, kind, entity, count(*) AS n FROM h GROUP BY 1, 2, 3 HAVING count(*) >= 2),
    s AS {"MATERIALIZED " if materialized else ""}(SELECT h.grp, h.kind, h.entity, h.account_id, n.n
                                                  FROM h JOIN n USING (grp, kind, entity))"""


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Views (store tables) and temp tables alike: a missing table reads as no evidence, not an error."""
    return con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchall()[0][0] > 0


def shared(con: duckdb.DuckDBPyConnection, members: dict[str, Sequence[str]], edges: Edges = STORE_EDGES,
           top: int = 5, members_sql: str | None = None) -> dict[str, Shared]:
    """group id -> what its accounts share (``members``: group id -> account ids; or ``members_sql``, a relation
    with columns grp, account_id, for many groups at once inside a scan). Counted in SQL: a cluster
    of thousands of accounts holding hundreds of task-set items each never comes to Python row by row."""
    if members_sql is not None:
        sizes = dict(con.execute(f"SELECT CAST(grp AS VARCHAR), count(DISTINCT account_id) FROM ({members_sql}) "
                                 "GROUP BY 1").fetchall())
        return _shared(con, members_sql, [], sizes, edges, top)
    sizes = {str(g): len(set(a)) for g, a in members.items()}
    with _members_sql(members, con) as (sql, params):
        return _shared(con, sql, params, sizes, edges, top)


def _shared(con, sql: str, params: list, sizes: dict[str, int], edges: Edges, top: int) -> dict[str, Shared]:
    out = {g: Shared(n) for g, n in sizes.items()}
    if not out or not has_table(con, edges.table):
        return out
    # one statement, the holdings computed once (MATERIALIZED on DuckDB): kinds with their top entities, and
    # evidence groups; written in SQL both engines parse (no list parameters, no ordered list aggregates), so the
    # Spark engine answers it from the same text
    duck = isinstance(con, duckdb.DuckDBPyConnection)
    kg = ", ".join(f"({sql_string(k)}, {sql_string(v)})" for k, v in KIND_GROUP.items()) or "('', '')"
    top = max(int(top), 1)
    rows = con.execute(f"""WITH {_holdings_cte(sql, edges, materialized=duck)},
        kg AS (SELECT * FROM (VALUES {kg}) AS v(kind, kgroup)),
        ent AS (SELECT grp, kind, entity, any_value(n) AS n FROM s GROUP BY grp, kind, entity),
        rk AS (SELECT grp, kind, entity, n, row_number() OVER (PARTITION BY grp, kind ORDER BY n DESC, entity) AS r,
                      count(*) OVER (PARTITION BY grp, kind) AS ne FROM ent),
        kc AS (SELECT grp, kind, count(DISTINCT account_id) AS na FROM s GROUP BY grp, kind),
        gc AS (SELECT s.grp, coalesce(kg.kgroup, s.kind) AS g, count(DISTINCT s.account_id) AS n
               FROM s LEFT JOIN kg ON kg.kind = s.kind GROUP BY s.grp, coalesce(kg.kgroup, s.kind))
        SELECT 'k' AS what, CAST(rk.grp AS VARCHAR) AS grp, rk.kind AS kind, rk.ne AS ne, kc.na AS na,
               rk.entity AS entity, rk.n AS n, rk.r AS r
          FROM rk JOIN kc ON rk.grp = kc.grp AND rk.kind = kc.kind WHERE rk.r <= {top}
        UNION ALL SELECT 'g', CAST(grp AS VARCHAR), g, 0, n, NULL, NULL, 0 FROM gc""", params).fetchall()
    for what, g, k, ne, na, e, n, _ in sorted(rows, key=lambda x: (x[0], x[1], x[2], int(x[7] or 0))):
        if what == "g":
            out[g].groups[k] = int(na)
        elif k not in out[g].top:
            out[g].kinds.append(KindCount(k, int(ne), int(na), e, int(n)))
            out[g].top[k] = [(e, int(n))]
        else:
            out[g].top[k].append((e, int(n)))
    for sh in out.values():
        sh.kinds.sort(key=lambda kc: (kind_rank(kc.kind), kc.kind))
    return out


def holdings(con: duckdb.DuckDBPyConnection, accounts: Sequence[str], edges: Edges = STORE_EDGES
             ) -> list[tuple[str, str, str]]:
    """(kind, entity, account) for every entity at least two of ``accounts`` hold: the rows ``shared`` counts,
    for the evidence board's graph, which needs to know which accounts hold what."""
    if not accounts or not has_table(con, edges.table):
        return []
    with _members_sql({"": accounts}) as (sql, params):
        return [(k, e, a) for k, e, a in con.execute(
            f"WITH {_holdings_cte(sql, edges)} SELECT kind, entity, account_id FROM s ORDER BY 1, 2, 3",
            params).fetchall()]


def entity_holders(con: duckdb.DuckDBPyConnection, account_id: str, edges: Edges = STORE_EDGES
                   ) -> list[tuple[str, str, str]]:
    """(kind, entity, account) for every account holding an entity ``account_id`` holds (the account page:
    everyone on its /24, in its campaign or not). Same definition: the endpoints of the entity's edges."""
    if not has_table(con, edges.table):
        return []
    t, s, d = edges
    return [(k, e, a) for k, e, a in con.execute(f"""
        WITH k AS (SELECT DISTINCT kind, entity FROM {t} WHERE {s} = ? OR {d} = ?),
        e AS (SELECT c.kind, c.entity, c.{s} AS a, c.{d} AS b FROM {t} c JOIN k ON c.kind = k.kind AND c.entity = k.entity)
        SELECT kind, CAST(entity AS VARCHAR), a FROM e UNION SELECT kind, CAST(entity AS VARCHAR), b FROM e""",
        [account_id, account_id]).fetchall()]


# ----------------------------------------------------------------------------------------------- words
def count_phrase(kind: str, n_entities: int) -> str:
    return f"one {kind_words(kind)}" if n_entities == 1 else f"{n_entities} {kind_words(kind, n_entities)}"


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _of(n: int, n_members: int, whose: str) -> str:
    """"12 of the campaign's 25 accounts" / "all 25 of the campaign's accounts"."""
    if n >= n_members:
        return f"all {n_members} of {whose} accounts"
    return f"{n} of {whose} {n_members} accounts"


def kind_line(kc: KindCount, n_members: int, whose: str = "the campaign's") -> str:
    """One kind of shared evidence in words: who holds it, how many distinct values, the most widely held."""
    line = f"{_of(kc.n_accounts, n_members, whose)} share {count_phrase(kc.kind, kc.n_entities)}"
    if kc.n_entities > 1 and kc.top_accounts < kc.n_accounts:
        line += f" (the most widely shared one: {kc.top_accounts} accounts)"
    return line


#: kinds the shared-infrastructure sentence names (creation bursts and schedules have sentences of their own)
SENTENCE_KINDS = ("payment", "payment_burst", "ja4", "header_fp", "email_pattern", "user_agent", "template", "system_prompt",
                  "task_item", "email_domain", "ip24", "asn")


def shared_sentence(sh: Shared, whose: str = "the campaign's", min_cover: float = 0.5, max_kinds: int = 5) -> str | None:
    """The kinds at least ``min_cover`` of the group holds (or rarer than schedules: one shared card among a
    few accounts is worth saying), rarest first, in one sentence whose every count is a subset of the group:
    "Of the campaign's 25 accounts, 12 share 2 payment fingerprints, all 25 share 30 IP /24s"."""
    n = sh.n_members
    parts = []
    for kc in sh.kinds:
        if kc.kind not in SENTENCE_KINDS:
            continue
        if kc.n_accounts >= min_cover * n or (kind_rank(kc.kind) < kind_rank("sync") and kc.n_accounts >= 2):
            who = f"all {n}" if kc.n_accounts >= n else str(kc.n_accounts)
            parts.append(f"{who} share {count_phrase(kc.kind, kc.n_entities)}")
    if not parts:
        return None
    parts = parts[:max_kinds]
    body = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    return _cap(f"of {whose} {n} accounts, {body}")


def burst_sentence(sh: Shared, pathways: Sequence[str], whose: str = "the campaign's") -> str | None:
    kc = sh.kind("creation_burst")
    if kc is None:
        return None
    pw = "/".join(sorted(set(pathways))[:2]) or "?"
    # (a burst is two overlapping time buckets, so the number of burst entities is not a number of bursts)
    return (f"{_cap(_of(kc.n_accounts, sh.n_members, whose))} were created in sign-up bursts on the {pw} "
            f"sign-up pathway (up to {kc.top_accounts} within minutes of each other)")


def sync_sentence(sh: Shared, whose: str = "the campaign's") -> str | None:
    kc = sh.kind("sync")
    if kc is None:
        return None
    return f"{_cap(_of(kc.n_accounts, sh.n_members, whose))} are busy in the same short windows on the same template"


# ----------------------------------------------------------------------------------------------- titles
CAPABILITY_WORDS = {"cap_coding": "coding", "cap_agentic": "agentic tool use", "cap_vision": "vision",
                    "cap_computer_use": "computer use", "cap_data_analysis": "data analysis"}
INTENT_WORDS = {"cot_elicitation": "reasoning extraction", "reward_grading": "reward-model grading",
                "policy_rewrite": "'censorship-safe' rewrites", "task_dataset": "task-set harvesting",
                "cot": "reasoning extraction", "grading": "reward-model grading", "rewrite": "'censorship-safe' rewrites",
                "extraction": "reasoning extraction"}


def _lift(mix: dict[str, float], base: dict[str, float], k: str) -> float:
    return mix.get(k, 0.0) / max(base.get(k, 0.0), 1e-3)


def title_core(mix: dict[str, float], base: dict[str, float], min_share: float = 0.1, min_lift: float = 2.0,
               cap_lift: float = 2.0) -> str:
    """The capability targeted and the extraction intent ("Coding + task-set harvesting"): among the signals the
    campaign sends at least ``min_share`` of its requests with and over-represents against the store (capabilities
    ``cap_lift`` times the store's share — the bar its evidence lines use to name a signal — intents
    ``min_lift``), the one it sends most, so the title names what its evidence lists first and not what everyone
    sends. Failing that, the capability most over-represented, then the one it sends most; "General chat" when it
    sends none."""
    caps = [k for k in mix if k.startswith("cap_") and mix[k] > 0]
    # ties broken as the evidence lines break them (share, then name, both descending)
    lifted = sorted((k for k in caps if mix[k] >= min_share and _lift(mix, base, k) >= cap_lift),
                    key=lambda k: (mix[k], k), reverse=True)
    cap = (lifted or sorted((k for k in caps if mix[k] >= min_share), key=lambda k: (-_lift(mix, base, k), k))
           or sorted(caps, key=lambda k: (-mix[k], k)) or [None])[0]
    intents = sorted((k for k in mix if not k.startswith("cap_") and mix[k] >= min_share
                      and _lift(mix, base, k) >= min_lift), key=lambda k: (mix[k], k), reverse=True)
    cap_w = CAPABILITY_WORDS.get(cap, cap.replace("_", " ")) if cap else "general chat"
    intent = INTENT_WORDS.get(intents[0], intents[0].replace("_", " ")) if intents else None
    core = f"{cap_w} + {intent}" if intent else f"{cap_w} harvesting"
    return core[0].upper() + core[1:]


@dataclass
class TitleFacts:
    """What a title may name besides the capability: everything here is on the campaign page too."""
    core: str
    n_accounts: int
    n_exchanges: int
    models: Sequence[str]            # most exchanges first
    first_seen: object = None        # datetime or None
    strongest: KindCount | None = None   # the rarest evidence at least two accounts share


def _model(f: TitleFacts) -> str | None:
    return f.models[0] if f.models else None


def _infra(f: TitleFacts) -> str | None:
    k = f.strongest
    return f"one {kind_words(k.kind)}" if k and k.n_entities == 1 else (
        f"{k.n_entities} {kind_words(k.kind, k.n_entities)}" if k else None)


def _start(f: TitleFacts) -> str | None:
    return f"from {f.first_seen:%d %b}" if hasattr(f.first_seen, "strftime") else None


def _volume(f: TitleFacts) -> str:
    return f"{f.n_exchanges:,} exchanges"


def titles(facts: Sequence[TitleFacts]) -> list[str]:
    """Distinct titles for a scan's campaigns: the capability core, then — only among records whose core is the
    same — the first trait that tells them apart (main model, start date, strongest shared infrastructure,
    volume), then the account count every title ends with. Records are described against each other, not
    first-come: five coding operations get five different names, none of them the bare core."""
    out = [f"{f.core} — {f.n_accounts} accounts" for f in facts]
    by_core: dict[str, list[int]] = {}
    for i, f in enumerate(facts):
        by_core.setdefault(f.core, []).append(i)
    for idx in by_core.values():
        if len(idx) < 2:
            continue
        quals = {i: [] for i in idx}
        for trait in (_model, _start, _infra, _volume):
            vals = {i: trait(facts[i]) for i in idx}
            if len({v for v in vals.values()}) > 1 and all(v for v in vals.values()):
                for i in idx:
                    quals[i].append(vals[i])
            keys = {i: tuple(quals[i]) for i in idx}
            if len(set(keys.values())) == len(idx):
                break
        for i in idx:
            q = quals[i]
            model = _model(facts[i])
            lead = f" on {q[0]}" if q and q[0] == model else ""
            rest = q[1:] if lead else q
            out[i] = f"{facts[i].core}{lead}" + (f", {', '.join(rest)}" if rest else "") + f" — {facts[i].n_accounts} accounts"
    seen: dict[str, int] = {}
    for i, t in enumerate(out):     # identical on every trait: number them rather than print the same title twice
        seen[t] = seen.get(t, 0) + 1
        if seen[t] > 1:
            out[i] = f"{t} (#{seen[t]})"
    return out
