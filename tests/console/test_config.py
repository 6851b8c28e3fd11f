"""Console settings: hashed secrets only, env beats file, errors name the key."""

from __future__ import annotations

import pytest

from distillguard.console.config import authenticate, hash_secret, load_settings, verify_secret
from distillguard.errors import ConfigError


def test_hash_roundtrip_and_salt():
    h1, h2 = hash_secret("s3cret"), hash_secret("s3cret")
    assert h1 != h2 and h1.startswith("scrypt$")
    assert verify_secret("s3cret", h1) and verify_secret("s3cret", h2)
    assert not verify_secret("s3cret!", h1) and not verify_secret("s3cret", "garbage")


def test_plain_password_in_config_is_refused(tmp_path):
    p = tmp_path / "console.yaml"
    p.write_text("users:\n  - name: ana\n    role: analyst\n    password_hash: hunter2\n")
    with pytest.raises(ConfigError, match=r"users\.0\.password_hash"):
        load_settings(p)


def test_bad_role_names_key(tmp_path):
    p = tmp_path / "console.yaml"
    p.write_text(f"users:\n  - name: ana\n    role: root\n    password_hash: '{hash_secret('x')}'\n")
    with pytest.raises(ConfigError, match=r"users\.0\.role"):
        load_settings(p)
    p.write_text("nonsense_key: 1\n")
    with pytest.raises(ConfigError, match="nonsense_key"):
        load_settings(p)


def test_env_overrides_file(tmp_path, monkeypatch):
    p = tmp_path / "console.yaml"
    p.write_text("port: 9000\nsecret_key: ${DG_TEST_CONSOLE_KEY}\n")
    monkeypatch.setenv("DG_TEST_CONSOLE_KEY", "from-env")
    monkeypatch.setenv("DISTILLGUARD_CONSOLE__USERS", f'[{{"name": "ops", "role": "admin", "password_hash": "{hash_secret("pw")}"}}]')
    s = load_settings(p)
    assert s.port == 9000 and s.secret_key.get_secret_value() == "from-env"
    assert authenticate(s, "ops", "pw") == ("ops", "admin")
    assert authenticate(s, "ops", "wrong") is None and authenticate(s, "", "pw") is None
    assert "from-env" not in repr(s)  # the signing key never shows up in logs or tracebacks


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml")


def test_old_forms_still_work_for_one_release_with_a_warning(tmp_path, monkeypatch):
    """``DISTILLGUARD_CONSOLE_<KEY>`` and a key written in the file: same result, a warning naming the new form."""
    p = tmp_path / "console.yaml"
    p.write_text("port: 9000\nsecret_key: from-file\n")
    monkeypatch.setenv("DISTILLGUARD_CONSOLE_SECRET_KEY", "from-env")
    monkeypatch.setenv("DISTILLGUARD_CONSOLE_USERS", f'[{{"name": "ops", "role": "admin", "password_hash": "{hash_secret("pw")}"}}]')
    with pytest.warns(FutureWarning) as w:
        s = load_settings(p)
    said = " ".join(str(x.message) for x in w)
    assert "DISTILLGUARD_CONSOLE__USERS" in said and "secret_key: '${DISTILLGUARD_CONSOLE_SECRET_KEY}'" in said
    assert s.port == 9000 and s.secret_key.get_secret_value() == "from-env"  # the variable still beats the file
    assert authenticate(s, "ops", "pw") == ("ops", "admin")


def test_new_override_beats_old_and_a_raw_key_in_the_override_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILLGUARD_CONSOLE_PORT", "9001")
    monkeypatch.setenv("DISTILLGUARD_CONSOLE__PORT", "9002")
    with pytest.warns(FutureWarning, match="DISTILLGUARD_CONSOLE__PORT"):
        assert load_settings(None).port == 9002
    monkeypatch.delenv("DISTILLGUARD_CONSOLE_PORT")
    monkeypatch.setenv("DISTILLGUARD_CONSOLE__SECRET_KEY", "raw-key")
    with pytest.raises(ConfigError, match="DISTILLGUARD_CONSOLE__SECRET_KEY"):
        load_settings(None)
