"""Software-users rule: a strongly coordinated cluster whose core mostly runs one client and holds no hidden tie is
one tool's users and is capped as weakly coordinated — unless it collects long answers (asks for clearly longer
answers than the store and, where output counts are recorded, receives them), or carries a hidden tie (a card), or
is a harvesting sub-cluster."""

import pyarrow as pa
import pytest

from distillguard.scan.config import ScoringConfig
from distillguard.scoring import score_clusters
from tests.scoring.test_member_ties import _con

TEAM = [f"u{i}" for i in range(10)]
OTHERS = [f"o{i}" for i in range(90)]
#: the store's other accounts ask 500-8,000 max_tokens (their own mix)
MIX = [500.0 + 7500.0 * i / 89 for i in range(90)]
#: a team drawing its lengths from the same mix: not shorter, not longer
ORDINARY = [500.0 + 800.0 * i for i in range(10)]
LONG = [9000.0 + 100.0 * i for i in range(10)]
#: the store's other accounts receive 150-1,200 output tokens per exchange
OUT_MIX = [150.0 + 1050.0 * i / 89 for i in range(90)]
#: an agent loop's short steps: a generous ceiling asked, less than the store's typical account received
SHORT_STEPS = [200.0 + 30.0 * i for i in range(10)]
#: a harvest gets the long answers its prompts draw
RECEIVED_LONG = [1500.0 + 50.0 * i for i in range(10)]


def _rows(card: bool, client: bool | str = True) -> list[tuple[str, str, str, float]]:
    """The team shares a tool's user agent and its own system prompt (private content: two evidence groups
    with the client); everyone else has a user agent and prompt of their own. ``client="builds"``: the team runs
    four releases of the tool, none held by half of it."""
    rows = [(a, "system_prompt", "tool-sp", 0.6) for a in TEAM]
    ua = (lambda i, a: f"tool/0.{9 + i % 4}.{i % 3} python-httpx/0.28.1 | tool/0.{9 + i % 4}.{i % 3}") \
        if client == "builds" else (lambda i, a: "tool/1.0" if client else f"ua-{a}")
    rows += [(a, "user_agent", ua(i, a), 0.5) for i, a in enumerate(TEAM)]
    rows += [(a, "email_pattern", "shape-1", 0.5) for a in TEAM]
    if card:
        rows += [(a, "payment", "card-1", 1.5) for a in TEAM]
    rows += [(a, "user_agent", f"ua-{i}", 0.5) for i, a in enumerate(OTHERS)]
    return rows + [(a, "system_prompt", f"sp-{i}", 0.5) for i, a in enumerate(OTHERS)]


def _score(team_tokens, card=False, harvest=False, client=True, alpha=0.05, received=None, received_on=True,
           versions=True):
    ids = TEAM + OTHERS
    cols = {"account_id": ids, "suspicion": [0.8 if a in TEAM else 0.1 for a in ids],
            "c_long_output": [0.0] * len(ids), "mean_max_tokens": list(team_tokens) + MIX,
            "n_exchanges": [200.0] * len(ids), "org_id": [None] * len(ids),
            "verification_level": [0] * len(ids)}
    if received is not None:
        cols["mean_output_tokens"] = list(received) + OUT_MIX
    feats = pa.table(cols)
    cfg = ScoringConfig(software_output_alpha=alpha, software_received_output=received_on,
                        software_client_versions=versions)
    cs, _ = score_clusters(_con(_rows(card, client)), feats, {a: 0 for a in TEAM}, [], cfg, harvest=harvest,
                           parent={a: 0 for a in TEAM} if harvest else None)
    return cs[0], cfg


def _capped(c, cfg) -> bool:
    software = any("one tool's users" in r for r in c.reasons)
    assert software == (c.coordination <= cfg.weak_coordination_cap + 1e-9)
    return software


def test_shared_client_without_hidden_tie_is_capped():
    c, cfg = _score(ORDINARY)
    assert _capped(c, cfg)


def test_off_judges_it_as_before():
    c, cfg = _score(ORDINARY, alpha=None)
    assert not _capped(c, cfg)


def test_shared_card_is_not_capped():
    c, cfg = _score(ORDINARY, card=True)
    assert not _capped(c, cfg)


@pytest.mark.parametrize("tokens,capped", [(LONG, False), (ORDINARY, True), ([t + 200 for t in MIX[-10:]], False)])
def test_longer_answers_than_the_store_are_not_capped(tokens, capped):
    c, cfg = _score(tokens)
    assert _capped(c, cfg) == capped


def test_harvesting_subcluster_is_exempt():
    c, cfg = _score(ORDINARY, harvest=True)
    assert not _capped(c, cfg)


def test_no_shared_client_is_not_this_rule():
    c, cfg = _score(ORDINARY, client=False)
    assert not any("one tool's users" in r for r in c.reasons)


@pytest.mark.parametrize("received,on,capped", [
    (SHORT_STEPS, True, True),       # asks long, receives short steps: one agent framework's users
    (RECEIVED_LONG, True, False),    # asks long and receives long: a harvest through a stock SDK
    (OUT_MIX[-10:], True, False),    # receives what the store's heaviest accounts do: still clearly longer
    (SHORT_STEPS, False, False),     # off: judged by the requested length alone, as first shipped
    ([None] * 10, True, False),      # the core records no output counts: judged by the requested length
])
def test_long_requests_without_long_answers_are_capped(received, on, capped):
    c, cfg = _score(LONG, received=received, received_on=on)
    assert _capped(c, cfg) == capped


def test_short_requests_are_capped_whatever_they_receive():
    c, cfg = _score(ORDINARY, received=RECEIVED_LONG)
    assert _capped(c, cfg)


def test_one_tools_releases_are_one_client():
    """The team runs four releases of one tool (none held by half the core): with ``software_client_versions`` the
    user agents without their version numbers are one client, held by all of it, and the team is one tool's users;
    off, no single build reaches half the core and the rule does not read it (cohorts_mixed scale 0.03: a
    framework's 465 users on 19 user agents flagged as a record, docs/benchmarks.md, branch cm23)."""
    c, cfg = _score(ORDINARY, client="builds")
    assert _capped(c, cfg)
    assert any("100% of its core run one client" in r for r in c.reasons)
    c, cfg = _score(ORDINARY, client="builds", versions=False)
    assert not any("one tool's users" in r for r in c.reasons)


def test_one_tools_releases_with_a_shared_card_are_not_capped():
    """Reading builds as one client changes only the client share: a card held by the core still says operation."""
    c, cfg = _score(ORDINARY, card=True, client="builds")
    assert not _capped(c, cfg)


def test_client_share_strips_version_numbers_only():
    from distillguard.scoring.demand import client_share
    con = _con([("a", "user_agent", "tool/0.9.1 python-httpx/0.28.1 | tool/0.9.1", 0.5),
                ("b", "user_agent", "tool/0.11.2 python-httpx/0.28.1 | tool/0.11.2", 0.5),
                ("c", "user_agent", "other/0.9.1 python-httpx/0.28.1 | other/0.9.1", 0.5),
                ("d", "user_agent", "VeritexCompass/2026.1 OpenAI/Python 1.68.2 | openai-python/1.68.2", 0.5)])
    core = {0: {"a", "b", "c", "d"}}
    assert client_share(con, core) == {0: 0.25}
    assert client_share(con, core, versions=True) == {0: 0.5}
