"""Sign-ups on one card (``payment_burst``): a hydra opens a dozen accounts on one card in an afternoon from
distinct networks, pathways and e-mail shapes, so the per-pathway ``creation_burst`` never sees it and the card
alone is one evidence group (issue 14: seeds 4 and 5's camp-coding, thin accounts tied only by a card). A family's
or a company's card gathers its accounts over months; two people opening accounts on one card the same day are
ordinary."""

from datetime import timedelta

from distillguard.graph.edges import KIND_GROUP
from distillguard.scan.config import ScanConfig
from distillguard.scan.engine import detect_step, prepare
from distillguard.testing.factory import BASE_TS, make_account, make_exchange, write_world


def _world(store):
    accts, ex = [], []
    pathways = ("standard", "free_trial", "research", "startup")

    def add(a, card, created, i):
        accts.append(make_account(a, org_id=None, payment_fingerprint=card, created_at=created,
                                  signup_pathway=pathways[i % 4], email_domain=f"mail{i}.example"))
        ex.extend(make_exchange(account_id=a, client_ip=f"10.{len(accts)}.{i}.1", prompt=f"{a} {j}",
                                ts=BASE_TS + timedelta(minutes=7 * j + i)) for j in range(3))

    t0 = BASE_TS - timedelta(days=60)
    for i in range(5):   # the hydra: five accounts on one card within four hours, four pathways
        add(f"hyd{i}", "card-hydra", t0 + timedelta(minutes=50 * i), i)
    for i in range(4):   # a family card: four accounts opened months apart
        add(f"fam{i}", "card-family", t0 - timedelta(days=70 * i), i)
    for i in range(2):   # a couple opening two accounts on one card the same day
        add(f"pair{i}", "card-pair", t0 + timedelta(days=3, hours=i), i)
    for i in range(80):   # the store's sign-up pace: accounts over a year, own cards
        add(f"u{i}", f"card{i}", t0 - timedelta(days=4 * i + 1), i)
    write_world(store, ex, accts)


def _bursts(store, cfg: ScanConfig) -> set[str]:
    con, sigs = prepare(store, cfg)
    r = detect_step(con, sigs, cfg)
    # scoring evidence only (graph.score_only_kinds): in the incidence, never an edge
    assert not [x for x in r.edges.to_pylist() if x["kind"] == "payment_burst"]
    return {a for (a,) in con.execute("SELECT DISTINCT account_id FROM inc WHERE kind = 'payment_burst'").fetchall()}


def test_accounts_opened_on_one_card_within_hours_share_a_sign_up_burst(store):
    _world(store)
    cfg = ScanConfig()
    cfg.graph.max_entity_share = 1.0
    assert KIND_GROUP["payment_burst"] == "creation"
    assert _bursts(store, cfg) == {f"hyd{i}" for i in range(5)}
    # the same accounts, no burst when it is off (by window or by weight)
    cfg.graph.payment_burst_hours = 0
    assert _bursts(store, cfg) == set()
    cfg = ScanConfig()
    cfg.graph.max_entity_share = 1.0
    cfg.graph.kind_weights["payment_burst"] = 0.0
    assert _bursts(store, cfg) == set()


def test_a_window_needs_more_holders_than_the_cards_own_pace_gives(store):
    _world(store)
    cfg = ScanConfig()
    cfg.graph.max_entity_share = 1.0
    # a window as long as the store's whole sign-up history: every card's holders fall in it at their own pace
    cfg.graph.payment_burst_hours = 24 * 2000
    assert _bursts(store, cfg) == set()
    # a minimum of six: five accounts are not enough
    cfg = ScanConfig()
    cfg.graph.max_entity_share = 1.0
    cfg.graph.payment_burst_min = 6
    assert _bursts(store, cfg) == set()
