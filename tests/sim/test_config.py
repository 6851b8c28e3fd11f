from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from distillguard.errors import ConfigError
from distillguard.sim.config import json_schema, load_world, parse_world, shipped_worlds
from distillguard.sim.world import World, check_references

TINY = Path(__file__).parent / "tiny.yaml"
RAW = yaml.safe_load(TINY.read_text())


def _raw():
    return copy.deepcopy(RAW)


def test_unknown_key_is_named():
    raw = _raw()
    raw["personas"][0]["acounts"] = 5
    with pytest.raises(ConfigError) as e:
        parse_world(raw)
    assert "personas[0].acounts: unknown key" in str(e.value)


def test_bad_value_is_named():
    raw = _raw()
    raw["campaigns"][0]["timing"]["mode"] = "burst"
    with pytest.raises(ConfigError, match=r"campaigns\[0\]\.timing\.mode"):
        parse_world(raw)


def test_volume_required():
    raw = _raw()
    del raw["personas"][0]["rate"]
    with pytest.raises(ConfigError, match="exchanges or rate.per_account_day"):
        parse_world(raw)


def test_unknown_pool_and_model():
    raw = _raw()
    raw["campaigns"][0]["network"]["pool"] = "nope"
    with pytest.raises(ConfigError, match="no proxy_pools entry named 'nope'"):
        parse_world(raw)
    raw = _raw()
    raw["campaigns"][0]["models"]["pivot_model"] = "m-x"
    with pytest.raises(ConfigError, match="unknown model 'm-x'"):
        parse_world(raw)


def test_unknown_profile_and_stack(tmp_path):
    raw = _raw()
    raw["personas"][0]["content"] = {"no_such_profile": 1.0}
    with pytest.raises(ConfigError, match="no_such_profile"):
        World(parse_world(raw), TINY.parent, scale=1.0)
    raw = _raw()
    raw["personas"][0]["client"] = {"stacks": {"netscape": 1.0}}
    with pytest.raises(ConfigError, match="unknown client stack"):
        World(parse_world(raw), TINY.parent, scale=1.0)


def test_profile_file_errors(tmp_path):
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"profiles": [
        {"name": "x", "templates": {"en": ["Explain {thing} please"]}}]}))
    raw = _raw()
    raw["content_files"] = [str(tmp_path / "p.yaml")]
    raw["personas"] = [{"name": "a", "accounts": 2, "rate": {"per_account_day": 2}, "content": {"x": 1}}]
    raw["campaigns"] = []
    with pytest.raises(ConfigError, match=r"slot \{thing\}"):
        World(parse_world(raw), tmp_path, scale=1.0)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"profiles": [{"name": "x", "templatez": {}}]}))
    with pytest.raises(ConfigError, match="profiles\\[0\\]"):
        World(parse_world(raw), tmp_path, scale=1.0)


def test_prompt_files_from_elsewhere(tmp_path):
    """A world built only from prompt files this project never saw."""
    (tmp_path / "mine.txt").write_text("first private question\nsecond private question\n")
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"profiles": [
        {"name": "x", "tasks": ["mine"], "typo_rate": 0, "templates": {"en": ["{task}", "Q: {task}"]}}]}))
    raw = {"days": 1, "prompt_files": {"mine": "mine.txt"}, "content_files": ["p.yaml"],
           "models": [{"name": "m"}],
           "personas": [{"name": "a", "accounts": 3, "rate": {"per_account_day": 20}, "content": {"x": 1}}]}
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(raw))
    spec, base = load_world(tmp_path / "w.yaml")
    prompts = World(spec, base).day_chunks(0, 0)[0]["prompt"].to_pylist()
    assert {p.lower().removeprefix("q: ") for p in prompts} == {"first private question", "second private question"}


def test_bad_yaml_and_missing(tmp_path):
    (tmp_path / "bad.yaml").write_text("personas: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_world(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="not found"):
        load_world(tmp_path / "missing.yaml")


def test_shipped_worlds_validate():
    names = shipped_worlds()
    assert {"default", "low_and_slow", "ban_evasion", "shared_proxy", "later_tactics", "heldout_phrasings"} <= set(names)
    for n in names:
        spec, base = load_world(n)
        check_references(spec, base)  # every file, profile, task set and client stack resolves


def test_json_schema_exported():
    s = json_schema()
    assert "personas" in s["properties"] and "campaigns" in s["properties"]
