"""Pool-share reading (``scoring.pool_share_reading``, scoring/poolshare.py; issue 11, dev standard-117): a residential
proxy relays the pool's private system prompts beside its owner's ordinary traffic, which dilutes its suspicion read
over all its exchanges. Read on the exchanges that carry the prompts its community owns, it is what it relays."""

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from distillguard.scan.config import ScoringConfig
from distillguard.scoring import score_clusters
from distillguard.scoring.poolshare import pool_share_suspicion, window_view
from tests.scoring.test_member_ties import _con
from tests.scoring.test_proxy_pool import OTHERS, POOL, _rows

HOUR = datetime(2026, 1, 1, tzinfo=UTC)
SIGS = ["sig_cot_elicit", "sig_cap_coding", "sig_task_dataset"]


def _partials(pool_relay: int = 100, owner: int = 200) -> pa.Table:
    """Each pool account: ``pool_relay`` exchanges under the pool's three prompts (one-turn, long max_tokens, asking
    for step-by-step reasoning) and ``owner`` ordinary chat under the store's default prompt; everyone else only
    ordinary chat."""
    rows = []

    def add(a, sp, n, harvest):
        rows.append({"account_id": a, "entity": sp, "hour": HOUR, "n": n, "n_single": n if harvest else n // 3,
                     "n_reason": int(0.8 * n) if harvest else 0, "n_maxtok": n,
                     "sum_maxtok": n * (4000 if harvest else 1000), "sum_out": n * 500, "n_out": n, "n_task": 0,
                     "hit_sig_cot_elicit": int(0.8 * n) if harvest else 0, "hit_sig_cap_coding": 0,
                     "hit_sig_task_dataset": n if harvest else 0})
    for a in POOL:
        for j in range(3):
            add(a, f"pool-sp-{j}", pool_relay // 3, True)
        add(a, "default-sp", owner, False)
    for a in OTHERS:
        add(a, "default-sp", 300, False)
    return pa.Table.from_pylist(rows)


def _feats(pool_susp: float = 0.3) -> pa.Table:
    ids = POOL + OTHERS
    return pa.table({"account_id": ids, "suspicion": [pool_susp if a in POOL else 0.1 for a in ids],
                     "n_exchanges": [300.0] * len(ids), "org_id": [None] * len(ids),
                     "verification_level": [0] * len(ids), "c_harvest_shape": [0.1 if a in POOL else 0.02 for a in ids],
                     "mean_max_tokens": [2000.0 if a in POOL else 1000.0 for a in ids],
                     "n_max_tokens": [300.0] * len(ids)})


def _con_with_partials(partials: pa.Table | None = None):
    con = _con(_rows())
    con.register("_bas", partials if partials is not None else _partials())
    con.execute("CREATE TABLE beh_as AS SELECT * FROM _bas")
    con.unregister("_bas")
    assert window_view(con, SIGS, ("sig_task_dataset",), None, None)
    return con


def _score(cfg: ScoringConfig, partials: pa.Table | None = None):
    cs, out = score_clusters(_con_with_partials(partials), _feats(), {a: 0 for a in POOL + OTHERS[:4]}, [], cfg)
    return cs[0], dict(zip(out["account_id"].to_pylist(), out["risk"].to_pylist(), strict=True))


def test_the_window_view_names_hits_by_role_and_keeps_the_window():
    con = _con_with_partials()
    cols = {r[0] for r in con.execute("DESCRIBE beh_as_w").fetchall()}
    assert {"hiti_sig_cot_elicit", "hitc_sig_cap_coding"} <= cols
    assert not any("task_dataset" in c for c in cols)   # a non-intent signal is neither intent nor capability
    window_view(con, SIGS, ("sig_task_dataset",), HOUR, None)   # nothing before the first hour
    assert con.execute("SELECT count(*) FROM beh_as_w").fetchall()[0][0] == 0


def test_a_diluted_pool_is_read_on_what_it_relays():
    on, risk_on = _score(ScoringConfig())
    off, risk_off = _score(ScoringConfig(pool_share_reading=False))
    assert off.suspicion == pytest.approx(0.3) and max(risk_off[a] for a in POOL) < 0.5
    assert on.suspicion > 0.5 and any("system prompts only it sends" in r for r in on.reasons)
    assert min(risk_on[a] for a in POOL) >= 0.5, {a: round(risk_on[a], 3) for a in POOL}
    # the ordinary users in its community send none of its prompts: read as before, and not lifted by it
    assert max(risk_on[a] for a in OTHERS[:4]) <= max(risk_off[a] for a in OTHERS[:4]) + 1e-9


def test_a_member_whose_relay_is_ordinary_is_not_lifted():
    """The pool's prompts carrying ordinary chat read no more suspicious than all the account's traffic: no change."""
    flat = _partials().to_pylist()
    for r in flat:
        r.update(n_reason=0, hit_sig_cot_elicit=0, n_single=r["n"] // 3, sum_maxtok=r["n"] * 1000)
    on, _ = _score(ScoringConfig(), pa.Table.from_pylist(flat))
    assert on.suspicion == pytest.approx(0.3)


def test_without_the_partial_nothing_is_read():
    con = _con(_rows())
    assert not window_view(con, SIGS, (), None, None)
    assert pool_share_suspicion(con, {a: 0 for a in POOL}, {0: set(POOL)}, {}, None, 100, ScoringConfig()) == {}
