"""A harvesting sub-cluster member's fit is measured against the community it was found in.

The store: a community of 40 users of one tool (its client strings, TLS and header fingerprints) and, inside it, a
quiet pool of 6 accounts on two proxy /24s of their own, sending through the same tool. The pool is found as a
harvesting sub-cluster, and it is strongly coordinated (half its core on a hidden /24 no one else uses). But most
of each pool account's links point at the tool's other users — the community it sits in — so against the
sub-cluster alone its fit is ~0.2, under ``min_member_fit``, and the pool's risk is cut by a third: the quiet-hydra
diagnosis of docs/benchmarks.md (members of small sub-clusters at member factors 0.16–0.60). An account whose
links point mostly *outside* the community is still not lifted.
"""

import pyarrow as pa

from distillguard.scan.config import ScoringConfig
from distillguard.scoring import score_clusters
from distillguard.scoring.subclusters import harvest_subclusters
from tests.scoring.test_member_ties import _con

POOL = [f"pool{i}" for i in range(6)]
USERS = [f"user{i}" for i in range(40)]
OUTSIDE = [f"out{i}" for i in range(60)]
DRIFTER = "drifter"   # on the pool's /24, but most of its links go to accounts outside the community


def _rows() -> list[tuple[str, str, str, float]]:
    rows = [(a, "system_prompt", "sp-popular-tool", 0.3) for a in POOL + USERS + OUTSIDE + [DRIFTER]]
    for kind in ("user_agent", "ja4", "header_fp"):   # the tool's client: what binds the community
        rows += [(a, kind, f"{kind}-tool", 1.0) for a in POOL + USERS]
    rows += [(a, "ip24", f"203.0.{i}", 0.5) for i, a in enumerate(USERS)]   # home /24s of their own
    rows += [(a, "ip24", f"198.51.{i // 3}", 0.5) for i, a in enumerate(POOL)]   # the pool's proxy /24s
    rows += [(DRIFTER, "ip24", "198.51.0", 0.5)]
    rows += [(a, kind, f"{kind}-other", 1.0) for kind in ("user_agent", "ja4", "header_fp") for a in OUTSIDE + [DRIFTER]]
    return rows


def _features() -> pa.Table:
    ids = POOL + USERS + OUTSIDE + [DRIFTER]
    high = set(POOL) | {DRIFTER}
    return pa.table({"account_id": ids, "suspicion": [0.62 if a in high else 0.3 for a in ids],
                     "c_harvest_shape": [0.8 if a in high else 0.0 for a in ids], "n_exchanges": [200.0] * len(ids),
                     "org_id": [None] * len(ids), "verification_level": [0] * len(ids)})


def _best_risk(con, feats: pa.Table, community: dict[str, int], cfg: ScoringConfig,
               expected_sub: set[str]) -> dict[str, float]:
    """Each account's risk at its best level, as the scan takes it: the community, then its harvesting
    sub-cluster (which must be ``expected_sub``) scored against the community it was cut from."""
    _, out = score_clusters(con, feats, community, [], cfg)
    best = dict(zip(out["account_id"].to_pylist(), out["risk"].to_pylist(), strict=True))
    sub = harvest_subclusters(community, feats, cfg)
    assert set(sub) == expected_sub
    _, outh = score_clusters(con, feats, sub, [], cfg, id_prefix="clh", harvest=True, parent=community)
    for a, r in zip(outh["account_id"].to_pylist(), outh["risk"].to_pylist(), strict=True):
        best[a] = max(best[a], r)
    return best


def _risk(cfg: ScoringConfig) -> dict[str, float]:
    return _best_risk(_con(_rows()), _features(), {a: 0 for a in POOL + USERS + [DRIFTER]}, cfg,
                      set(POOL) | {DRIFTER})


def test_pool_in_a_tools_community_is_flagged_with_fit_to_its_community():
    risk = _risk(ScoringConfig())
    assert min(risk[a] for a in POOL) >= 0.5, {a: round(risk[a], 3) for a in POOL}
    assert max(risk[a] for a in USERS) < 0.5


def test_fit_to_the_sub_cluster_alone_misses_it():
    # the same store, fit measured against the sub-cluster (before): the pool's members stay under the flag
    risk = _risk(ScoringConfig(harvest_parent_fit=False))
    assert max(risk[a] for a in POOL) < 0.5


def test_an_account_whose_links_point_outside_its_community_is_not_lifted():
    risk = _risk(ScoringConfig())
    assert risk[DRIFTER] < 0.5


# A quiet pool's members do not all hold a hidden tie: four of six exit through the pool's proxy /24, two share
# only the public template the community's users send too. All six are in the store's top decile on harvest
# shape — that is why they are in the sub-cluster — and the two sit a little lower on the account model.
QUIET = [f"quiet{i}" for i in range(6)]


def _quiet_rows() -> list[tuple[str, str, str, float]]:
    rows = [(a, "template", "tpl-public", 0.4) for a in QUIET + USERS + OUTSIDE]
    for kind in ("user_agent", "ja4", "header_fp"):
        rows += [(a, kind, f"{kind}-tool", 1.0) for a in QUIET + USERS]
    rows += [(a, "ip24", f"203.0.{i}", 0.5) for i, a in enumerate(USERS)]
    rows += [(a, "ip24", "198.51.9", 0.5) for a in QUIET[:4]]
    return rows


def _quiet_risk(cfg: ScoringConfig) -> dict[str, float]:
    ids = QUIET + USERS + OUTSIDE
    susp = {a: 0.7 for a in QUIET[:4]} | {a: 0.48 for a in QUIET[4:]}
    feats = pa.table({"account_id": ids, "suspicion": [susp.get(a, 0.3) for a in ids],
                      "c_harvest_shape": [0.8 if a in QUIET else 0.0 for a in ids], "n_exchanges": [200.0] * len(ids),
                      "org_id": [None] * len(ids), "verification_level": [0] * len(ids)})
    return _best_risk(_con(_quiet_rows()), feats, {a: 0 for a in QUIET + USERS}, cfg, set(QUIET))


def test_sub_cluster_members_without_a_hidden_tie_of_their_own_keep_the_flag():
    risk = _quiet_risk(ScoringConfig())
    assert min(risk[a] for a in QUIET) >= 0.5, {a: round(risk[a], 3) for a in QUIET}
    assert max(risk[a] for a in USERS) < 0.5


def test_bystander_rules_on_sub_cluster_members_drop_them():
    # before: ×½ for public content only and (own ÷ cluster suspicion)² without a distinctive tie
    risk = _quiet_risk(ScoringConfig(harvest_own_evidence=False))
    assert max(risk[a] for a in QUIET[4:]) < 0.5
    assert min(risk[a] for a in QUIET[:4]) >= 0.5
