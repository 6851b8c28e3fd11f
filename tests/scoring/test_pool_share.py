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
    assert on.suspicion > 0.5 and any("system prompts or templates only it sends" in r for r in on.reasons)
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


def _kit_partials(harvest_on_templates: bool = True, kit_out: int = 500) -> tuple[pa.Table, pa.Table]:
    """(``beh_as``, ``beh_at``) for a pool whose three private system prompts carry multi-turn orchestration that reads
    like ordinary work and whose three private templates carry the one-turn reasoning harvest (dev3 quiet_hydra-706's
    shape); each pool account also sends 200 ordinary exchanges on the store's default prompt and template."""
    sp, tp = [], []

    def add(rows, key, a, e, n, harvest, out=500):
        rows.append({"account_id": a, key: e, "hour": HOUR, "n": n, "n_single": n if harvest else n // 3,
                     "n_reason": int(0.8 * n) if harvest else 0, "n_maxtok": n,
                     "sum_maxtok": n * (4000 if harvest else 1000), "sum_out": n * out, "n_out": n, "n_task": 0,
                     "hit_sig_cot_elicit": int(0.8 * n) if harvest else 0, "hit_sig_cap_coding": 0,
                     "hit_sig_task_dataset": n if harvest else 0})
    for a in POOL:
        for j in range(3):
            add(sp, "entity", a, f"pool-sp-{j}", 30, False)
            add(tp, "template_key", a, f"pool-t-{j}", 33, harvest_on_templates, kit_out)
        add(sp, "entity", a, "default-sp", 200, False)
        add(tp, "template_key", a, "default-t", 200, False)
    for a in OTHERS:
        add(sp, "entity", a, "default-sp", 300, False)
        add(tp, "template_key", a, "default-t", 300, False)
    return pa.Table.from_pylist(sp), pa.Table.from_pylist(tp)


def _kit_score(cfg: ScoringConfig, harvest_on_templates: bool = True, template_counts: bool = True,
               kit_out: int = 500, feats: pa.Table | None = None):
    rows = _rows() + [(a, "template", f"pool-t-{j}", 0.3) for a in POOL for j in range(3)]
    rows += [(a, "template", "default-t", 0.1) for a in POOL + OTHERS]
    con = _con(rows)
    sp, tp = _kit_partials(harvest_on_templates, kit_out)
    if not template_counts:   # beh_at as built without ``behavior.template_partials``: the exchange count only
        tp = tp.select(["account_id", "template_key", "hour", "n"])
    for name, t in (("beh_as", sp), ("beh_at", tp)):
        con.register("_t", t)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM _t")
        con.unregister("_t")
    assert window_view(con, SIGS, ("sig_task_dataset",), None, None)
    cs, out = score_clusters(con, feats if feats is not None else _feats(), {a: 0 for a in POOL + OTHERS[:4]}, [], cfg)
    return cs[0], dict(zip(out["account_id"].to_pylist(), out["risk"].to_pylist(), strict=True))


def test_a_pool_is_read_on_the_exchanges_carrying_its_private_templates():
    """The harvest rides on the pool's private templates, not on its private system prompts: read on the system
    prompts alone (``pool_share_templates`` off, main's reading) the pool stays at its diluted level; read on the
    templates too, the larger reading counts and the pool is flagged."""
    off, risk_off = _kit_score(ScoringConfig(pool_share_templates=False))
    assert off.suspicion == pytest.approx(0.3) and max(risk_off[a] for a in POOL) < 0.5
    on, risk_on = _kit_score(ScoringConfig())
    assert on.suspicion > 0.5 and min(risk_on[a] for a in POOL) >= 0.5, {a: round(risk_on[a], 3) for a in POOL}
    # its ordinary members send none of its kit: not lifted
    assert max(risk_on[a] for a in OTHERS[:4]) <= max(risk_off[a] for a in OTHERS[:4]) + 1e-9
    # templates carrying ordinary work read no higher than the account; a partial without the counts reads nothing
    flat, _ = _kit_score(ScoringConfig(), harvest_on_templates=False)
    assert flat.suspicion == pytest.approx(0.3)
    bare, _ = _kit_score(ScoringConfig(), template_counts=False)
    assert bare.suspicion == pytest.approx(0.3)


def test_the_kit_is_read_with_what_it_received_and_members_keep_their_yardstick():
    """``pool_share_received``: the kit's exchanges receiving far longer answers than the store's accounts raise the
    community's reading; each member's own traffic is still compared with the community's suspicion before that
    reading, so no member falls off for it (dev3 small_provider-710: a campaign account fell under the threshold when
    it was compared with the lifted level)."""
    ids = POOL + OTHERS
    out = [900.0 if a in POOL else 500.0 + 3 * i for i, a in enumerate(ids)]   # the store: 500–800 tokens an exchange
    feats = _feats().append_column("mean_output_tokens", pa.array(out)).append_column(
        "n_output_tokens", pa.array([300.0] * len(ids)))

    def score(cfg, kit_out):
        return _kit_score(cfg, kit_out=kit_out, feats=feats)
    off, risk_off = score(ScoringConfig(pool_share_received=False), 3000)
    on, risk_on = score(ScoringConfig(), 3000)
    assert on.suspicion > off.suspicion + 0.03 and on.risk > off.risk
    assert any("with the answers they received" in r for r in on.reasons)
    assert not any("with the answers they received" in r for r in off.reasons)
    # every kit sender's factor (its risk over the community's) is what it was without the received reading, and
    # the ordinary users of its community (own 0.1, sending none of the kit) keep the risk they had without it
    # (dev standard-107: a chat user on a hydra's ISPs and schedule went 0.490 -> 0.559 when it took the lifted level)
    for a in POOL:
        assert risk_on[a] / on.risk == pytest.approx(risk_off[a] / off.risk), a
    for a in OTHERS[:4]:
        assert risk_on[a] == pytest.approx(risk_off[a], abs=1e-4) and risk_on[a] < 0.5, a
    # kit exchanges receiving what the store's accounts receive read nothing more
    same, _ = score(ScoringConfig(), 500)
    assert same.suspicion == pytest.approx(off.suspicion)


def test_a_kit_receiving_what_its_senders_other_traffic_receives_is_not_read_for_it():
    """``pool_share_received_alpha``: a developers' community's private templates draw long answers, but no longer than
    the rest of its members' work (dev2 standard-312): the received reading needs the kit to collect more than the
    same accounts' other traffic (a sign test over the core), and without that test it would lift the community."""
    ids = POOL + OTHERS
    out = [900.0 if a in POOL else 500.0 + 3 * i for i, a in enumerate(ids)]
    feats = _feats().append_column("mean_output_tokens", pa.array(out)).append_column(
        "n_output_tokens", pa.array([300.0] * len(ids)))
    off, _ = _kit_score(ScoringConfig(pool_share_received=False), kit_out=900, feats=feats)
    tested, _ = _kit_score(ScoringConfig(), kit_out=900, feats=feats)
    untested, _ = _kit_score(ScoringConfig(pool_share_received_alpha=None), kit_out=900, feats=feats)
    assert tested.suspicion == pytest.approx(off.suspicion)
    assert untested.suspicion > off.suspicion + 0.03
