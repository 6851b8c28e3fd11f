"""How much of a cluster's risk each member inherits, from what it shares with the cluster.

Built directly on the scoring stage's inputs (incidence, edges, accounts, features) so each rule
is checked on its own: a hydra pool of six accounts, plus the kinds of accounts that end up in its
community on a real provider — a home user behind a residential /24 the pool's proxies also
exit through, a pool account that carries ordinary traffic, and a verified company whose own
accounts share their card and office network.
"""

from itertools import combinations

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from distillguard.scan.config import ScoringConfig
from distillguard.scoring import score_clusters
from distillguard.scoring.suspicion import account_suspicion

POOL = [f"pool{i}" for i in range(6)]
OUTSIDE = [f"user{i}" for i in range(60)]


def _incidence() -> list[tuple[str, str, str, float]]:
    rows = []
    for i, a in enumerate(POOL):
        rows += [(a, "payment", f"card{i % 2}", 1.5), (a, "creation_burst", "standard|1", 0.9),
                 (a, "template", "tpl-harvest", 0.4), (a, "ip24", f"198.51.{i % 3}", 0.5),
                 (a, "ip24", f"198.51.{(i + 1) % 3}", 0.5), (a, "user_agent", "OpenAI/Python 1.93.0", 0.12)]
    # a home user on a mobile/residential range the pool's proxies also exit through; stock SDK
    rows += [("home", "ip24", f"198.51.{j}", 0.5) for j in range(3)]
    rows += [("home", "user_agent", "OpenAI/Python 1.93.0", 0.12)]
    # a pool account with half ordinary traffic: it still pays with the pool's card and sends its template
    rows += [("mixed", "payment", "card0", 1.5), ("mixed", "template", "tpl-harvest", 0.4),
             ("mixed", "ip24", "198.51.1", 0.5)]
    # a verified company: its two accounts share the company card and office /24, one proxy exit too
    for a in ("co1", "co2"):
        rows += [(a, "payment", "card-company", 1.5), (a, "ip24", "198.51.2", 0.5), (a, "ip24", "198.51.1", 0.5),
                 (a, "user_agent", "OpenAI/Python 1.93.0", 0.12), (a, "system_prompt", "sp-ide-agent", 0.3)]
    rows += [(a, "system_prompt", "sp-ide-agent", 0.3) for a in POOL[:2]]
    # the rest of the store: ordinary users of the same stock SDK, one of them on a proxy range too. The
    # scorer judges what a cluster shares against the store it sits in (a stock SDK nobody outside the
    # cluster used would be as telling as a private one), so the store must exist around the cluster
    rows += [(a, "user_agent", "OpenAI/Python 1.93.0", 0.12) for a in OUTSIDE]
    rows += [(OUTSIDE[0], "ip24", "198.51.0", 0.5)]
    return rows


def _con(rows) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    df: dict[tuple[str, str], int] = {}
    for _, k, e, _ in rows:
        df[(k, e)] = df.get((k, e), 0) + 1
    inc = pa.table({"account_id": [r[0] for r in rows], "kind": [r[1] for r in rows], "entity": [r[2] for r in rows],
                    "w": [r[3] for r in rows], "df": [df[(r[1], r[2])] for r in rows]})
    by_ent: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for a, k, e, w in rows:
        by_ent.setdefault((k, e), []).append((a, w))
    accounts = {a: (("org-co", 2) if a.startswith("co") else (None, 0)) for a, *_ in rows}
    edges = []
    for (k, e), mem in by_ent.items():
        for (a, wa), (b, wb) in combinations(sorted(mem), 2):
            oa, ob = accounts[a], accounts[b]
            if oa[0] is not None and oa[0] == ob[0]:
                continue  # declared organisation: coordination_edges drops these pairs
            edges.append((a, b, k, e, (wa + wb) / 2 / (len(mem) - 1)))
    con.register("_inc", inc)
    con.execute("CREATE TABLE inc AS SELECT * FROM _inc")
    con.register("_edges", pa.table({"src": [x[0] for x in edges], "dst": [x[1] for x in edges],
                                      "kind": [x[2] for x in edges], "entity": [x[3] for x in edges],
                                      "weight": [x[4] for x in edges]}))
    con.execute("CREATE TABLE edges AS SELECT * FROM _edges")
    con.register("_acc", pa.table({"account_id": list(accounts), "org_id": [v[0] for v in accounts.values()],
                                   "verification_level": pa.array([v[1] for v in accounts.values()], pa.int32())}))
    con.execute("CREATE TABLE accounts AS SELECT * FROM _acc")
    return con


def _features(susp: dict[str, float]) -> pa.Table:
    ids = list(susp)
    return pa.table({"account_id": ids, "suspicion": [susp[a] for a in ids], "n_exchanges": [200.0] * len(ids),
                     "org_id": [("org-co" if a.startswith("co") else None) for a in ids],
                     "verification_level": [(2 if a.startswith("co") else 0) for a in ids]})


@pytest.fixture
def risk() -> dict[str, float]:
    rows = _incidence()
    susp = {a: 0.5 for a in POOL} | {"home": 0.4, "mixed": 0.2, "co1": 0.2, "co2": 0.2}
    con = _con(rows)
    feats = _features(susp | {a: 0.1 for a in OUTSIDE})
    _, out = score_clusters(con, feats, {a: 0 for a in susp}, [], ScoringConfig())
    return dict(zip(out["account_id"].to_pylist(), out["risk"].to_pylist(), strict=True))


def test_pool_accounts_are_flagged(risk):
    assert min(risk[a] for a in POOL) >= 0.5


def test_bystander_on_a_proxy_range_is_not_flagged(risk):
    # tied only by a residential /24 and a stock SDK: its flag would have to rest on its own traffic
    assert risk["home"] < 0.5


def test_pool_account_carrying_ordinary_traffic_is_flagged(risk):
    # its own traffic looks half ordinary, but it shares the pool's card and template
    assert risk["mixed"] >= 0.5


def test_company_sharing_its_own_card_is_not_tied_by_it(risk):
    assert risk["co1"] < 0.5 and risk["co2"] < 0.5


def test_one_request_says_little_about_an_account():
    # the same "100% single-turn, 100% on one template, all coding" shares from 1 and from 300 requests
    t = pa.table({"account_id": ["one", "many"], "n_exchanges": [1, 300], "single_turn_share": [1.0, 1.0],
                  "top_template_share": [1.0, 1.0], "top_capability_share": [1.0, 1.0], "share_cot_elicitation": [1.0, 1.0]})
    s = account_suspicion(t)["suspicion"].to_numpy()
    assert s[0] < 0.5 * s[1]
    assert np.all((s > 0) & (s < 1))


# ---------------------------------------------------------------- calibration to the store at hand

def _store(group: list[str], shared: list[tuple[str, str]], outsiders: int, outsider_holds: list[tuple[str, str]],
           w: float) -> tuple[duckdb.DuckDBPyConnection, pa.Table]:
    """A store: ``group`` accounts holding ``shared`` entities, plus ``outsiders`` ordinary accounts that hold
    ``outsider_holds``; every entity weighs ``w`` (absolute weights deliberately tiny or large)."""
    rows = [(a, k, e, w) for a in group for k, e in shared]
    out = [f"o{i}" for i in range(outsiders)]
    rows += [(a, k, e, w) for a in out for k, e in outsider_holds]
    con = _con(rows)
    susp = {a: 0.6 for a in group} | {a: 0.1 for a in out}
    return con, _features(susp)


def _cluster_risk(con, feats, group) -> tuple[float, dict]:
    cs, out = score_clusters(con, feats, {a: 0 for a in group}, [], ScoringConfig())
    risk = dict(zip(out["account_id"].to_pylist(), out["risk"].to_pylist(), strict=True))
    return min(risk[a] for a in group), cs[0].group_share


GROUP = [f"g{i}" for i in range(12)]


@pytest.mark.parametrize("outsiders,w", [(200, 0.02), (3000, 0.02), (200, 2.0)])
def test_private_evidence_flags_whatever_the_store_size_and_weights(outsiders, w):
    # the pool's own card and template, held by nobody else: the verdict must not hang on absolute weights
    # (a 231-account third-party store gives every entity a tiny idf-discounted weight) or on store size
    con, feats = _store(GROUP, [("payment", "card-x"), ("template", "tpl-own")], outsiders,
                        [("user_agent", "stock-sdk")], w)
    risk, share = _cluster_risk(con, feats, GROUP)
    assert risk >= 0.5, (risk, share)
    assert share["payment"] > 0.9 and share["content"] > 0.9


def test_what_a_random_group_of_this_size_shares_is_not_evidence():
    # the same twelve accounts share only what a third of the store shares (a popular tool's system prompt,
    # its client, a free-mail naming shape): a random group of twelve would share it too
    popular = [("system_prompt", "sp-popular-tool"), ("user_agent", "tool/1.0"), ("email_pattern", "a999@gmail.com")]
    con, feats = _store(GROUP, popular, 60, popular, 1.0)
    risk, share = _cluster_risk(con, feats, GROUP)
    assert risk < 0.5, (risk, share)
    assert all(v < 0.5 for v in share.values()), share


def test_pairwise_coincidences_are_not_a_group():
    # twelve ordinary users, each pair sharing a home /24 nobody else uses (a chain of coincidences that
    # community detection happily groups): no network evidence for the group
    rows = [(GROUP[i], "ip24", f"10.0.{i // 2}.0", 1.0) for i in range(len(GROUP))]
    con = _con(rows)
    feats = _features({a: 0.6 for a in GROUP} | {f"o{i}": 0.1 for i in range(100)})
    _, share = _cluster_risk(con, feats, GROUP)
    assert share.get("network", 0.0) == 0.0


def test_account_model_without_account_facts_still_ranks_harvesters():
    # a store with exchanges only: no limits, creation dates or verification. Volume pressure and output
    # length come from the store's own percentiles, so the heavy long-output account still stands out
    n = 50
    t = pa.table({"account_id": [f"a{i}" for i in range(n)], "n_exchanges": [40.0] * n,
                  "mean_rpd": [5.0] * (n - 1) + [400.0], "mean_max_tokens": [800.0] * (n - 1) + [8192.0],
                  "single_turn_share": [1.0] * n})
    out = account_suspicion(t)
    s = out["suspicion"].to_numpy()
    assert s[-1] > s[:-1].max()
    assert out["c_limit_util"].to_numpy()[-1] > 0.8 and out["c_long_output"].to_numpy()[-1] > 0.8
    assert out["c_low_verification"].to_numpy().max() == 0  # unknown is not "e-mail only"


def test_account_model_weights_come_from_configuration():
    from distillguard.scan.config import AccountModelConfig

    t = pa.table({"account_id": ["a", "b"], "n_exchanges": [100.0, 100.0], "reasoning_share": [1.0, 0.0]})
    base = account_suspicion(t)["suspicion"].to_numpy()
    off = account_suspicion(t, model=AccountModelConfig(weights={"reasoning": 0.0}))["suspicion"].to_numpy()
    assert base[0] > base[1] and off[0] == pytest.approx(off[1])
    with pytest.raises(ValueError, match="unknown account-model components"):
        AccountModelConfig(weights={"reasonnig": 1.0})


# ---------------------------------------------------------------- own traffic unusual for the store

def _home_risk(home_suspicion: float, cfg: ScoringConfig) -> float:
    susp = {a: 0.9 for a in POOL} | {"home": home_suspicion, "mixed": 0.2, "co1": 0.2, "co2": 0.2}
    # the store around the cluster as a real one is: spread, not one value (0.05 … 0.35)
    outside = {a: 0.05 + 0.3 * i / (len(OUTSIDE) - 1) for i, a in enumerate(OUTSIDE)}
    _, out = score_clusters(_con(_incidence()), _features(susp | outside), {a: 0 for a in susp}, [], cfg)
    return dict(zip(out["account_id"].to_pylist(), out["risk"].to_pylist(), strict=True))["home"]


def test_a_bystander_whose_own_traffic_is_unusual_for_the_store_keeps_more_of_the_clusters_risk():
    """Tied only by what ordinary users share with a pool, a member is judged on its own traffic: below the
    cluster's suspicion its inherited risk falls off quadratically. Traffic far above the store's own (0.7
    where the store's accounts send 0.05–0.35) is not what the pool's co-tenants send; the fall-off is spared.
    Traffic within the store's range (0.45 is under its bar) falls off as before; the key (off by default) sets it."""
    rule, off = ScoringConfig(own_traffic_quantile=0.9), ScoringConfig(own_traffic_quantile=None)
    assert _home_risk(0.7, rule) > _home_risk(0.7, off) * 1.5
    assert _home_risk(0.45, rule) == _home_risk(0.45, off)
