"""An operation scattered over many clusters (issue 11, dev3 standard-712): a residential-proxy relay's template is
sent by one harvesting sub-cluster's accounts and by more of the relay's accounts in other clusters. Those are
harvest-shaped and send the sub-cluster's other templates (co-holders of its kit), so they are not the template's
background (``scoring.kit_coholder_min_entities``); a popular tool's ordinary users are."""

import pyarrow as pa

from distillguard.scan.config import ScoringConfig
from distillguard.scoring import score_clusters
from tests.scoring.test_member_ties import _con

PIECE = [f"p{i}" for i in range(8)]       # the harvesting sub-cluster scored
RELAY = [f"r{i}" for i in range(6)]       # the relay's accounts in other clusters (harvest-shaped)
OTHERS = [f"o{i:02d}" for i in range(86)]  # ordinary users


def _content_share(cfg: ScoringConfig, relay_kit: int = 3, users_send_kit: bool = False,
                   harvest: bool = True, piece_kit: int = 3) -> float:
    """The piece sends ``piece_kit`` kit templates (all of it) beside the store's commonest system prompt; the relay's
    other accounts send ``relay_kit`` of them; with ``users_send_kit`` six ordinary users send them too (a popular
    tool's templates)."""
    ids = PIECE + RELAY + OTHERS
    rows = [(a, "system_prompt", "default-sp", 0.1) for a in ids]
    rows += [(a, "template", f"kit-{j}", 0.6) for a in PIECE for j in range(piece_kit)]
    rows += [(a, "template", f"kit-{j}", 0.6) for a in RELAY for j in range(relay_kit)]
    if users_send_kit:
        rows += [(a, "template", f"kit-{j}", 0.6) for a in OTHERS[:6] for j in range(3)]
    tail = set(PIECE + RELAY)
    feats = pa.table({"account_id": ids, "suspicion": [0.3] * len(ids), "n_exchanges": [300.0] * len(ids),
                      "org_id": [None] * len(ids), "verification_level": [0] * len(ids),
                      "c_harvest_shape": [0.3 if a in tail else 0.05 for a in ids]})
    cs, _ = score_clusters(_con(rows), feats, {a: 0 for a in PIECE}, [], cfg, harvest=harvest)
    return cs[0].group_share.get("content", 0.0)


def test_a_relays_accounts_in_other_clusters_are_not_its_kits_background():
    assert _content_share(ScoringConfig()) > 0.9
    # as before: the relay's six other accounts hold the kit, so it is "held outside the cluster" and not private
    assert _content_share(ScoringConfig(kit_coholder_min_entities=None)) < 0.1


def test_a_popular_tools_ordinary_users_stay_its_templates_background():
    assert _content_share(ScoringConfig(), users_send_kit=True) < 0.1


def test_an_outside_holder_of_one_template_is_background():
    # a harvest-shaped account outside sending the piece's one template is not a co-holder of a kit (2 of them)
    assert _content_share(ScoringConfig(), piece_kit=1, relay_kit=1) < 0.1
    assert _content_share(ScoringConfig(kit_coholder_min_entities=1), piece_kit=1, relay_kit=1) > 0.9


def test_a_community_is_judged_as_before():
    # only a harvesting sub-cluster (members picked from the harvest-shape tail) reads its kit this way
    assert _content_share(ScoringConfig(), harvest=False) < 0.1
