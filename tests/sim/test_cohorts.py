"""Benign cohorts, world inheritance (`extends`), custom client stacks, fixed windows, benign pivots."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
import yaml

from distillguard.errors import ConfigError
from distillguard.sim.config import load_world, parse_world
from distillguard.sim.run import simulate
from distillguard.sim.world import World

TINY = Path(__file__).parent / "tiny.yaml"
RAW = yaml.safe_load(TINY.read_text())
COHORTS = {"course_lab", "stepwise_tool_users", "hackathon", "onboarding_wave", "agent_framework_users",
           "eval_teams", "platform_reseller", "tutoring_cohort"}


def _raw():
    return copy.deepcopy(RAW)


def test_benign_cohorts_world_has_no_attackers_and_every_cohort():
    spec, _ = load_world("benign_cohorts")
    assert spec.campaigns == []
    names = {p.name for p in spec.personas}
    assert COHORTS <= names
    assert "chat_users" in names  # inherited from default
    assert all(p.hard_negative for p in spec.personas if p.name in COHORTS)


def test_cohorts_mixed_is_default_plus_cohorts():
    mixed, _ = load_world("cohorts_mixed")
    default, _ = load_world("default")
    assert [c.id for c in mixed.campaigns] == [c.id for c in default.campaigns]
    assert {p.name for p in mixed.personas} == {p.name for p in default.personas} | COHORTS
    assert mixed.name == "cohorts_mixed" and "benign/cohorts.yaml" in mixed.content_files


def _write(tmp_path, name, raw):
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


def test_extends_merges_by_name_and_excludes(tmp_path):
    base = _raw()
    _write(tmp_path, "base", base)
    child = {"extends": ["base.yaml"], "name": "child", "exclude_personas": ["researcher"],
             "personas": [{"name": "chat_users", "accounts": 7, "rate": {"per_account_day": 1},
                           "content": {"chat_general": 1.0}}]}
    spec, _ = load_world(_write(tmp_path, "child", child))
    names = [p.name for p in spec.personas]
    assert "researcher" not in names and names.count("chat_users") == 1
    assert next(p for p in spec.personas if p.name == "chat_users").accounts == 7  # the child's entry wins
    assert [c.id for c in spec.campaigns] == [c["id"] for c in base["campaigns"]] and spec.seed == base["seed"]
    with pytest.raises(ConfigError, match="no inherited persona named"):
        load_world(_write(tmp_path, "bad", {"extends": ["base.yaml"], "exclude_personas": ["nobody"]}))


def test_extends_cycle_is_an_error(tmp_path):
    _write(tmp_path, "a", {"extends": ["b.yaml"]})
    _write(tmp_path, "b", {"extends": ["a.yaml"]})
    with pytest.raises(ConfigError, match="cycle"):
        load_world(tmp_path / "a.yaml")


def test_extends_a_shipped_name_ignores_the_working_directory(tmp_path, monkeypatch):
    """A folder named `default` where the command runs once broke `bench --family` (its worlds extend `default`)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "default").mkdir()
    (tmp_path / "w").mkdir()
    child = _write(tmp_path / "w", "child", {"extends": ["default"], "name": "child"})
    spec, _ = load_world(child)
    assert spec.name == "child" and spec.campaigns  # the shipped default's campaigns came through
    (tmp_path / "default").rmdir()
    (tmp_path / "default").write_text("not: [a world")  # a stray file of that name does not win either
    assert load_world(child)[0].campaigns


def test_unknown_country_is_an_error():
    raw = _raw()
    raw["personas"][0]["identity"] = {"countries": {"XX": 1.0}}
    with pytest.raises(ConfigError, match="unknown country code"):
        parse_world(raw)


def test_benign_pivot_needs_a_release():
    raw = _raw()
    raw["models"] = [raw["models"][0]]
    raw["personas"][0]["models"] = {"pivot_share": 0.9}
    with pytest.raises(ConfigError, match="no model is released"):
        parse_world(raw)


@pytest.fixture(scope="module")
def cohort_world(tmp_path_factory):
    """A small world with a lab on a fixed timetable, a custom-agent tool and a pivoting eval team."""
    raw = _raw()
    raw["campaigns"] = []
    raw["days"] = 7  # Mon 12 Jan to Sun 18 Jan 2026: includes a weekend
    raw["client_stacks"] = {"steptool": {"user_agent": "StepTool/{v} (web)", "sdk_name": "steptool",
                                         "versions": ["1.0", "1.1"], "tls_family": "node"}}
    raw["personas"] = [
        {"name": "lab", "accounts": 40, "rate": {"per_account_day": 8}, "content": {"chat_math": 1.0},
         "timing": {"mode": "jittered", "window_hours": [9, 15], "window_minutes": 60, "jitter_minutes": 1,
                    "weekdays_only": True}},
        {"name": "tool", "accounts": 20, "rate": {"per_account_day": 5}, "content": {"chat_general": 1.0},
         "client": {"stacks": {"steptool": 1.0}}},
        {"name": "evals", "accounts": 3, "exchanges": 3000, "content": {"benchmark_gsm8k": 1.0},
         "timing": {"mode": "flat"}, "models": {"pivot_share": 0.95, "pivot_delay_hours": 2}},
        {"name": "others", "accounts": 30, "rate": {"per_account_day": 10}, "content": {"chat_general": 1.0},
         "timing": {"mode": "flat"}},
    ]
    out = tmp_path_factory.mktemp("cohort") / "w"
    simulate(parse_world(raw), TINY.parent, out, workers=1)
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    con.sql(f"CREATE VIEW e AS SELECT * FROM read_parquet('{out}/exchanges/**/*.parquet') "
            f"JOIN '{out}/labels.parquet' USING (account_id)")
    return con


def test_fixed_windows_and_weekdays(cohort_world):
    hours = dict(cohort_world.sql("SELECT hour(ts), count(*) FROM e WHERE persona='lab' GROUP BY 1").fetchall())
    assert hours and set(hours) <= {8, 9, 10, 14, 15, 16}  # 1-minute jitter around two one-hour windows
    days = {r[0] for r in cohort_world.sql("SELECT dayofweek(ts) FROM e WHERE persona='lab'").fetchall()}
    assert days and not days & {0, 6}  # no Saturday / Sunday traffic
    assert {r[0] for r in cohort_world.sql("SELECT dayofweek(ts) FROM e WHERE persona='others'").fetchall()} & {0, 6}
    others = dict(cohort_world.sql("SELECT hour(ts), count(*) FROM e WHERE persona='others' GROUP BY 1").fetchall())
    assert len(others) > 12


def test_custom_user_agent(cohort_world):
    uas = {r[0] for r in cohort_world.sql("SELECT DISTINCT user_agent FROM e WHERE persona='tool'").fetchall()}
    assert uas and uas <= {"StepTool/1.0 (web)", "StepTool/1.1 (web)"}


def test_benign_persona_pivot_is_applied(cohort_world):
    rel = datetime(2026, 1, 13, 6, tzinfo=UTC)
    share = dict(cohort_world.sql("""SELECT persona, avg((model = 'm-new')::INT) FROM e
                                     WHERE ts > ?::TIMESTAMPTZ + INTERVAL 8 HOUR GROUP BY 1""", params=[rel]).fetchall())
    assert share["evals"] > 0.85  # pivoted within hours
    assert share["others"] < 0.4  # ordinary adoption (max share 0.3)


def test_world_builds_with_all_cohorts_at_small_scale():
    spec, base = load_world("benign_cohorts")
    w = World(spec, base, scale=0.001)
    assert {g.persona for g in w.groups} >= COHORTS
    assert all(g.role == "benign" for g in w.groups)
