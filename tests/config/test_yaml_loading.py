"""Every stage's YAML loader gives one kind of clear error: file, and every key that is wrong."""

import pytest

from distillguard.console.config import load_settings
from distillguard.errors import ConfigError
from distillguard.intel.config import load_config as load_intel
from distillguard.intel.taxii import load_taxii_config
from distillguard.scan.config import load_config as load_scan

LOADERS = [load_intel, load_taxii_config, load_scan, load_settings]


@pytest.mark.parametrize("load", LOADERS)
def test_bad_yaml_is_a_config_error_naming_the_file(load, tmp_path):
    p = tmp_path / "cfg.yaml"
    p.write_text("a: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML") as e:
        load(p)
    assert str(p) in str(e.value)


@pytest.mark.parametrize("load", LOADERS)
def test_missing_file_and_non_mapping(load, tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load(tmp_path / "nope.yaml")
    p = tmp_path / "list.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load(p)


def test_every_bad_key_is_named_not_only_the_first(tmp_path):
    p = tmp_path / "scan.yaml"
    p.write_text("scoring:\n  flag_threshold: 7\n  min_evidence_groups: 0\n")
    with pytest.raises(ConfigError) as e:
        load_scan(p)
    assert "scoring.flag_threshold" in str(e.value) and "scoring.min_evidence_groups" in str(e.value)
