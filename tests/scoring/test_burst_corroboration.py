"""A hydra signing up in bursts on a common pathway captures the ordinary sign-ups of those minutes. Its own accounts
of one burst share more with each other than the burst (proxy ASNs, templates, naming patterns); the chance sign-up
shares with them only what anyone might. ``scoring.burst_corroboration_alpha`` keeps a member's burst as its one
distinctive tie unless its burst-mates share with each other beyond chance and it shares with them no more than
chance gives it."""

import duckdb
import pyarrow as pa

from distillguard.scan.config import ScoringConfig
from distillguard.scoring.rare import burst_uncorroborated


def _con(n_store: int = 2000):
    """Five hydra accounts and one ordinary sign-up in one burst; the hydra's accounts share three proxy ASNs and a
    template among them, the ordinary user one big ISP's ASN with one of them; the rest of the store is filler
    holding the common entities (its size N is read from the incidence)."""
    hydra = [f"h{i}" for i in range(5)]
    burst = [(a, "standard|1", 0.004) for a in [*hydra, "joe"]]
    inc = []
    for a in hydra:
        inc += [(a, "asn", "proxy1", 40), (a, "asn", "proxy2", 40), (a, "asn", "proxy3", 40),
                (a, "template", "t-harvest", 12)]
    inc += [("joe", "asn", "bigisp", 300), ("h0", "asn", "bigisp", 300), ("joe", "user_agent", "loomwork", 150),
            ("joe", "system_prompt", "step-by-step", 150)]
    inc += [(a, "creation_burst", "standard|1", 6) for a in [*hydra, "joe"]]
    inc += [(f"f{i}", "asn", "bigisp", 300) for i in range(n_store)]
    con = duckdb.connect()
    con.register("_b", pa.table({k: [r[j] for r in burst] for j, k in enumerate(("account_id", "entity", "chance"))}))
    con.execute("CREATE TEMP TABLE burst_members AS SELECT * FROM _b")
    con.register("_i", pa.table({k: [r[j] for r in inc] for j, k in enumerate(("account_id", "kind", "entity", "df"))}))
    con.execute("CREATE TEMP TABLE inc AS SELECT * FROM _i")
    return con, hydra


def test_a_burst_shared_with_nothing_else_is_a_chance_sign_up():
    con, hydra = _con()
    cfg = ScoringConfig()
    assert cfg.burst_corroboration_alpha is not None   # on by default
    out = burst_uncorroborated(con, [*hydra, "joe"], cfg)
    assert out == {"joe"}   # one big ISP's ASN shared with one of five burst-mates: what chance gives
    # only the accounts asked about are judged
    assert burst_uncorroborated(con, hydra, cfg) == set()


def test_a_quiet_hydras_burst_sharing_nothing_else_stays_its_members_tie():
    # a quiet hydra's accounts share nothing but the burst: there is no contrast to call one of them the odd one out
    con, hydra = _con()
    con.execute("DELETE FROM inc WHERE entity IN ('proxy1', 'proxy2', 'proxy3', 't-harvest')")
    assert burst_uncorroborated(con, [*hydra, "joe"], ScoringConfig()) == set()


def test_sharing_an_entity_nearly_nobody_else_holds_corroborates_the_burst():
    # the same one shared entity, held by these two accounts alone in a store of 5,000 where the user's other
    # entities are as rare: five random accounts would share none of them, so the burst is corroborated
    con, _ = _con(n_store=0)
    con.execute("UPDATE inc SET df = 2 WHERE account_id = 'joe' OR entity = 'bigisp'")
    con.execute("INSERT INTO inc SELECT 'f' || range::VARCHAR, 'asn', 'other', 5000 FROM range(5000)")
    assert burst_uncorroborated(con, ["joe"], ScoringConfig()) == set()


def test_a_hydra_account_holding_almost_nothing_is_not_the_odd_one_out():
    # an account of the hydra with no entity but the burst (a quiet proxy, a fresh e-mail): its mates' rate predicts
    # nothing for it, so sharing nothing with them says nothing
    con, hydra = _con()
    con.execute("INSERT INTO burst_members VALUES ('h9', 'standard|1', 0.004)")
    con.execute("INSERT INTO inc VALUES ('h9', 'creation_burst', 'standard|1', 7), ('h9', 'asn', 'lone', 2)")
    assert burst_uncorroborated(con, ["h9", "joe"], ScoringConfig()) == {"joe"}


def test_off_and_without_an_incidence_nothing_is_judged():
    con, hydra = _con()
    assert burst_uncorroborated(con, [*hydra, "joe"], ScoringConfig(burst_corroboration_alpha=None)) == set()
    assert burst_uncorroborated(duckdb.connect(), ["joe"], ScoringConfig()) == set()
