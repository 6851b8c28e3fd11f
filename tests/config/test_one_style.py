"""One configuration style for every stage: one file with sections, DISTILLGUARD_<SECTION>__<KEY> overrides,
secrets only as ${ENV_VAR} references, errors naming key and source, old forms warned for one release."""

from __future__ import annotations

import pytest

from distillguard.config import ConfigDeprecationWarning, env_var, ref_name, ref_value
from distillguard.console.config import load_settings
from distillguard.errors import ConfigError
from distillguard.gateway.config import load_config as load_gateway
from distillguard.intel.config import load_config as load_intel
from distillguard.intel.taxii import TaxiiConfig, load_taxii_config
from distillguard.scan.config import load_config as load_scan

ONE_FILE = """
scan:
  threads: 3
  alerts: {webhook_url: "${DG_TEST_HOOK}"}
gateway:
  upstream: {url: "http://up:1/v1", api_key: "${DG_TEST_UPSTREAM}"}
  limits: {account: {requests: {rate: 50}}}
console:
  port: 9100
  secret_key: "${DG_TEST_CONSOLE}"
intel:
  export: {min_accounts: 4}
taxii:
  max_page_size: 7
  tokens: ["${DG_TEST_TOKEN}"]
"""


@pytest.fixture
def one_file(tmp_path, monkeypatch):
    p = tmp_path / "distillguard.yaml"
    p.write_text(ONE_FILE)
    for k, v in {"DG_TEST_HOOK": "https://hooks.example/x", "DG_TEST_UPSTREAM": "sk-up", "DG_TEST_CONSOLE": "sig",
                 "DG_TEST_TOKEN": "tok"}.items():
        monkeypatch.setenv(k, v)
    return p


def test_one_file_holds_every_stage(one_file):
    assert load_scan(one_file).threads == 3
    assert ref_value(load_scan(one_file).alerts.webhook_url) == "https://hooks.example/x"
    gw = load_gateway(one_file)
    assert gw.upstream.url == "http://up:1/v1" and ref_value(gw.upstream.api_key) == "sk-up"
    assert gw.limits.account.requests.rate == 50
    c = load_settings(one_file)
    assert c.port == 9100 and c.secret_key.get_secret_value() == "sig"
    assert load_intel(one_file).export.min_accounts == 4
    t = load_taxii_config(one_file)
    assert t.max_page_size == 7 and t.resolved_tokens() == [b"tok"]


def test_the_file_from_DISTILLGUARD_CONFIG_when_no_option(one_file, monkeypatch):
    monkeypatch.setenv("DISTILLGUARD_CONFIG", str(one_file))
    assert load_scan(None).threads == 3 and load_gateway().limits.account.requests.rate == 50
    assert load_settings().port == 9100


def test_a_sectioned_file_refuses_an_unknown_section(tmp_path):
    p = tmp_path / "d.yaml"
    p.write_text("gateway: {}\ngatway: {}\n")
    with pytest.raises(ConfigError, match="gatway") as e:
        load_gateway(p)
    assert str(p) in str(e.value)


def test_environment_overrides_nested_keys_and_beats_the_file(one_file, monkeypatch):
    assert env_var("gateway", "limits.account.requests.rate") == "DISTILLGUARD_GATEWAY__LIMITS__ACCOUNT__REQUESTS__RATE"
    monkeypatch.setenv("DISTILLGUARD_GATEWAY__LIMITS__ACCOUNT__REQUESTS__RATE", "1200")
    monkeypatch.setenv("DISTILLGUARD_GATEWAY__IDENTITY__TRUSTED_PROXIES", '["10.0.0.0/8"]')
    monkeypatch.setenv("DISTILLGUARD_SCAN__SCORING__MIN_EVIDENCE_GROUPS", "3")
    monkeypatch.setenv("DISTILLGUARD_INTEL__ENFORCE__ALLOW", "true")
    monkeypatch.setenv("DISTILLGUARD_SCAN__TEMP_MAX_SIZE", "null")
    gw = load_gateway(one_file)
    assert gw.limits.account.requests.rate == 1200 and gw.identity.trusted_proxies == ["10.0.0.0/8"]
    assert gw.upstream.url == "http://up:1/v1"  # the rest of the file still holds
    assert load_scan(one_file).scoring.min_evidence_groups == 3 and load_scan(None).temp_max_size is None
    assert load_intel(None).enforce.allow is True
    # the command line beats the environment
    assert load_gateway(one_file, **{"limits.account.requests.rate": 7}).limits.account.requests.rate == 7


def test_errors_name_the_key_and_its_source(one_file, monkeypatch):
    monkeypatch.setenv("DISTILLGUARD_GATEWAY__LIMITS__ACOUNT__REQUESTS__RATE", "5")  # misspelt: never ignored
    monkeypatch.setenv("DISTILLGUARD_SCAN__THREADS", "zero")
    with pytest.raises(ConfigError) as e:
        load_gateway(one_file)
    assert "limits.acount" in str(e.value)
    assert "environment variable DISTILLGUARD_GATEWAY__LIMITS__ACOUNT__REQUESTS__RATE" in str(e.value)
    with pytest.raises(ConfigError, match=r"'threads' \(environment variable DISTILLGUARD_SCAN__THREADS\)"):
        load_scan(one_file)
    bad = one_file.parent / "bad.yaml"
    bad.write_text("scan: {threads: 0}\n")
    monkeypatch.delenv("DISTILLGUARD_SCAN__THREADS")
    with pytest.raises(ConfigError, match=rf"'threads' \(file {bad}\)"):
        load_scan(bad)
    monkeypatch.setenv("DISTILLGUARD_SCAN__BEHAVIOR____SIGNAL_HIT", "1")
    with pytest.raises(ConfigError, match="empty key"):
        load_scan(None)


def test_secrets_only_by_reference(tmp_path, monkeypatch):
    p = tmp_path / "gw.yaml"
    p.write_text("upstream: {api_key: sk-live-written-in-the-file}\n")
    with pytest.raises(ConfigError, match=r"upstream.api_key.*environment reference") as e:
        load_gateway(p)
    assert "sk-live" not in str(e.value)  # a secret written by mistake is not echoed
    monkeypatch.setenv("DISTILLGUARD_GATEWAY__BINDING__SECRET", "${DG_TEST_BIND}")
    monkeypatch.setenv("DG_TEST_BIND", "b")
    cfg = load_gateway(None)
    assert ref_name(cfg.binding.secret) == "DG_TEST_BIND" and ref_value(cfg.binding.secret) == "b"
    assert ref_value(cfg.upstream.api_key) is None and ref_name(cfg.identity.pepper) == "DISTILLGUARD_KEY_PEPPER"


@pytest.mark.parametrize(("section", "old", "new", "path"), [
    ("gateway", "upstream:\n  api_key_env: DG_X\n", "api_key: '${DG_X}'", ("upstream", "api_key")),
    ("gateway", "identity:\n  pepper_env: DG_X\n", "pepper: '${DG_X}'", ("identity", "pepper")),
    ("gateway", "binding:\n  secret_env: DG_X\n", "secret: '${DG_X}'", ("binding", "secret")),
    ("gateway", "signup:\n  token_env: DG_X\n", "token: '${DG_X}'", ("signup", "token")),
    ("scan", "alerts:\n  webhook_url_env: DG_X\n", "webhook_url: '${DG_X}'", ("alerts", "webhook_url")),
    ("gateway", "upstream:\n  api_key: 'env:DG_X'\n", "'${DG_X}'", ("upstream", "api_key")),
])
def test_old_env_keys_still_work_with_a_warning_naming_the_new_form(tmp_path, section, old, new, path):
    p = tmp_path / "c.yaml"
    p.write_text(old)
    with pytest.warns(ConfigDeprecationWarning, match=new.replace("$", r"\$").replace("{", r"\{").replace("}", r"\}")):
        cfg = (load_gateway if section == "gateway" else load_scan)(p)
    assert getattr(getattr(cfg, path[0]), path[1]) == "${DG_X}"


def test_old_env_key_beside_the_new_one_is_an_error(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("upstream: {api_key_env: A, api_key: '${B}'}\n")
    with pytest.raises(ConfigError, match="keep .api_key."):
        load_gateway(p)


def test_taxii_old_secret_forms_warn(tmp_path, monkeypatch):
    monkeypatch.setenv("DG_TEST_PW", "pw")
    f = tmp_path / "tok"
    f.write_text("from-file\n")
    cfg = TaxiiConfig(users={"a": "env:DG_TEST_PW", "b": f"file:{f}", "c": "inline"})
    with pytest.warns(ConfigDeprecationWarning) as w:
        assert cfg.resolved_users() == {"a": b"pw", "b": b"from-file", "c": b"inline"}
    assert len(w) == 3 and all("${" in str(x.message) for x in w)


def test_console_secret_named_in_the_file_wins_over_the_default_variable(tmp_path, monkeypatch):
    p = tmp_path / "c.yaml"
    p.write_text("console: {secret_key: '${DG_TEST_MINE}'}\n")
    monkeypatch.setenv("DG_TEST_MINE", "mine")
    monkeypatch.setenv("DISTILLGUARD_CONSOLE_SECRET_KEY", "default-variable")
    assert load_settings(p).secret_key.get_secret_value() == "mine"
    assert load_settings(None).secret_key.get_secret_value() == "default-variable"
