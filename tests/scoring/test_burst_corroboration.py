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


def _by_definition(inc: list, burst: list, accounts: list[str], alpha: float) -> set[str]:
    """The docstring's test counted pair by pair, as slowly as it reads: each mate's shared entities against every
    other mate (the query counts them in one pass over the mates)."""
    from scipy.stats import binom, poisson

    n = len({a for a, *_ in inc})
    held = {}
    for a, kind, ent, df in inc:
        if kind != "creation_burst":
            held.setdefault(a, {})[(kind, ent)] = df
    bursts = {}
    for a, ent, _ in burst:
        bursts.setdefault(ent, set()).add(a)

    def shared(y, others, k):
        mine = held.get(y, {})
        o = sum(1 for e in mine if any(e in held.get(z, {}) for z in others))
        e = sum(1 - max(1 - (df - 1) / max(n - 1, 1), 0) ** k for df in mine.values())
        return o, e

    def beyond(o, e):
        return o > 0 and poisson.sf(o - 1, max(e, 1e-12)) <= alpha

    out = set()
    for x in accounts:
        mates = set().union(*(m for m in bursts.values() if x in m)) - {x} if any(x in m for m in bursts.values()) else set()
        k = len(mates)
        if k < 2:
            continue
        o, e = shared(x, mates, k)
        om = em = 0.0
        for y in mates:
            oy, ey = shared(y, mates - {y}, k - 1)
            om, em = om + oy, em + ey
        if beyond(o, e) or not beyond(int(om), em) or e <= 0:
            continue
        if binom.cdf(o, o + int(om), e / (e + em)) <= alpha:
            out.add(x)
    return out


def test_the_one_pass_count_is_the_pairwise_definition():
    # random stores with overlapping bursts, hydras sharing proxies and templates, ordinary sign-ups in their minutes:
    # the query's verdicts are the definition's, account by account
    import random

    for seed in range(6):
        rng = random.Random(seed)
        accts = [f"a{i}" for i in range(60)]
        inc, burst = [], []
        ents = [("asn", f"asn{j}") for j in range(12)] + [("template", f"t{j}") for j in range(6)] + \
               [("user_agent", f"ua{j}") for j in range(5)]
        hold = {a: set(rng.sample(ents, rng.randint(0, 5))) for a in accts}
        for b in range(4):
            members = rng.sample(accts, rng.randint(3, 12))
            kit = set(rng.sample(ents, 3))
            for a in members[: len(members) // 2 + 1]:
                hold[a] |= kit
            burst += [(a, f"standard|{b}", 0.004) for a in members]
            inc += [(a, "creation_burst", f"standard|{b}", len(members)) for a in members]
        df = {}
        for es in hold.values():
            for e in es:
                df[e] = df.get(e, 0) + 1
        inc += [(a, k, e, df[(k, e)]) for a, es in hold.items() for k, e in es]
        inc += [(a, "asn", "filler", 1) for a in accts if not hold[a]]
        con = duckdb.connect()
        con.register("_b", pa.table({k: [r[j] for r in burst] for j, k in enumerate(("account_id", "entity", "chance"))}))
        con.execute("CREATE TEMP TABLE burst_members AS SELECT * FROM _b")
        con.register("_i", pa.table({k: [r[j] for r in inc] for j, k in enumerate(("account_id", "kind", "entity", "df"))}))
        con.execute("CREATE TEMP TABLE inc AS SELECT * FROM _i")
        asked = sorted({a for a, *_ in burst})
        for alpha in (0.05, 0.5):
            got = burst_uncorroborated(con, asked, ScoringConfig(burst_corroboration_alpha=alpha))
            assert got == _by_definition(inc, burst, asked, alpha), (seed, alpha)
