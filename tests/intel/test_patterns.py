"""Hostile values (user agents are attacker-chosen) must survive pattern quoting exactly, and config errors name keys."""

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stix2.v21 import Indicator

from distillguard.errors import ConfigError
from distillguard.intel.config import load_config
from distillguard.intel.keys import canonical
from distillguard.intel.stixobjects import build_pattern, parse_pattern


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40))
def test_raw_values_round_trip_through_patterns(value):
    ua = canonical("user_agent", value)
    if ua is None:
        return
    for kind, hashed in (("user_agent", False), ("ja4", False), ("payment", False)):
        v = ua if kind == "user_agent" else value
        pattern = build_pattern(kind, v, hashed)
        Indicator(pattern=pattern, pattern_type="stix", valid_from=datetime(2026, 1, 1, tzinfo=UTC))  # validates
        parsed = parse_pattern(pattern)
        assert (parsed.kind, parsed.value) == (kind, v)


def test_config_errors_name_the_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("intel:\n  match:\n    kind_weights: {ip: 2.0}\n")
    with pytest.raises(ConfigError, match="match.kind_weights"):
        load_config(p)
    p.write_text("intel:\n  export:\n    kinds: [ip, shoe_size]\n")
    with pytest.raises(ConfigError, match="export.kinds"):
        load_config(p)
    p.write_text("intel:\n  exprot: {}\n")
    with pytest.raises(ConfigError, match="exprot"):
        load_config(p)
    p.write_text("intel:\n  provider: {name: Example AI}\n  export: {tlp: red, min_accounts: 3}\n")
    cfg = load_config(p)
    assert cfg.provider.name == "Example AI" and cfg.export.tlp == "red" and cfg.export.min_accounts == 3
