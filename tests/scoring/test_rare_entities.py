"""Evidence shares from rare entities (scoring.rare_entity_chance): an entity most of the store holds — a small
provider's one default system prompt — must not cancel what a group's members share that nobody else sends."""

import pyarrow as pa
import pytest

from distillguard.scan.config import ScoringConfig
from distillguard.scoring import score_clusters
from tests.scoring.test_member_ties import _con

TEAM = [f"u{i}" for i in range(6)]
OTHERS = [f"o{i}" for i in range(94)]


def _rows(private: bool) -> list[tuple[str, str, str, float]]:
    """Every account sends the store's default system prompt; the team also sends its own prompts (``private``)
    or nothing more."""
    rows = [(a, "system_prompt", "default-sp", 0.1) for a in TEAM + OTHERS]
    if private:
        rows += [(a, "system_prompt", f"team-sp-{j}", 0.6) for a in TEAM for j in range(3)]
    return rows + [(a, "user_agent", f"ua-{a}", 0.5) for a in TEAM + OTHERS]


def _content_share(private: bool, cut):
    ids = TEAM + OTHERS
    feats = pa.table({"account_id": ids, "suspicion": [0.8 if a in TEAM else 0.1 for a in ids],
                      "n_exchanges": [50.0] * len(ids), "org_id": [None] * len(ids),
                      "verification_level": [0] * len(ids)})
    cs, _ = score_clusters(_con(_rows(private)), feats, {a: 0 for a in TEAM}, [],
                           ScoringConfig(rare_entity_chance=cut, rare_content_chance=None))
    return cs[0].group_share.get("content", 0.0)


def test_a_store_wide_prompt_cancels_private_ones_when_off():
    # every member's chance of sharing *some* prompt with a random group is ~1 (the default prompt): share ~0
    assert _content_share(True, None) < 0.1


@pytest.mark.parametrize("cut", [0.0, 0.05, 0.5])
def test_private_prompts_count_when_only_rare_entities_are_read(cut):
    assert _content_share(True, cut) > 0.9


@pytest.mark.parametrize("cut", [None, 0.05, 0.5])
def test_the_store_wide_prompt_alone_is_no_evidence(cut):
    assert _content_share(False, cut) < 0.1
