"""Console configuration: who may log in, with which role, and how sessions are signed.

Passwords and tokens are stored only as salted scrypt hashes so a leaked console.yaml does not
hand out logins. The ``console`` section of the configuration file; every key can be overridden from the
environment (``DISTILLGUARD_CONSOLE__<KEY>``, lists as JSON), and the signing key is an environment
reference (``${DISTILLGUARD_CONSOLE_SECRET_KEY}`` by default), never written in the file.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import secrets
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from distillguard.config import (
    CONFIG_ENV,
    deprecated,
    env_var,
    is_ref,
    load_section,
    read_yaml_mapping,
    ref_value,
)
from distillguard.errors import ConfigError

Role = Literal["viewer", "analyst", "admin"]
ROLE_RANK = {"viewer": 0, "analyst": 1, "admin": 2}

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def hash_secret(secret: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` — the only form a password or token is kept in."""
    if not secret:
        raise ConfigError("cannot hash an empty password or token")
    salt = salt or secrets.token_bytes(16)
    dk = hashlib.scrypt(secret.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32)
    b64 = lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")  # noqa: E731
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${b64(salt)}${b64(dk)}"


def verify_secret(secret: str, encoded: str) -> bool:
    try:
        scheme, n, r, p, salt_s, dk_s = encoded.split("$")
        if scheme != "scrypt":
            return False
        pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
        salt = base64.urlsafe_b64decode(pad(salt_s))
        want = base64.urlsafe_b64decode(pad(dk_s))
        got = hashlib.scrypt(secret.encode(), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(want),
                             maxmem=128 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def _check_hash(v: str) -> str:
    parts = v.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("must be a scrypt hash made by `distillguard console-hash` (scrypt$N$r$p$salt$hash), "
                         "never the plain password")
    return v


class User(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    role: Role = "viewer"
    password_hash: str

    _v = field_validator("password_hash")(classmethod(lambda cls, v: _check_hash(v)))


class Token(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    role: Role = "viewer"
    token_hash: str

    _v = field_validator("token_hash")(classmethod(lambda cls, v: _check_hash(v)))


#: The variable the session-signing key is read from unless ``secret_key`` names another.
SECRET_ENV = "DISTILLGUARD_CONSOLE_SECRET_KEY"
#: Before one configuration style, every key was overridden by ``DISTILLGUARD_CONSOLE_<KEY>``.
_OLD_PREFIX = "DISTILLGUARD_CONSOLE_"
SECRET_REF = f"${{{SECRET_ENV}}}"


class ConsoleSettings(BaseModel):
    """Keys of the ``console`` section; see docs/configuration.md for each."""

    model_config = ConfigDict(extra="forbid")

    #: Signs session cookies, as an environment reference; unset: a random key per process (sessions then
    #: end at a restart).
    secret_key: SecretStr | None = Field(SECRET_REF, validate_default=True)
    users: list[User] = Field(default_factory=list)
    tokens: list[Token] = Field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = Field(8600, ge=1, le=65535)
    session_max_age_s: int = Field(8 * 3600, ge=60)
    session_idle_s: int = Field(2 * 3600, ge=60)
    cookie_secure: bool = False
    login_max_failures: int = Field(10, ge=1)
    login_max_failures_per_user: int = Field(30, ge=1)
    login_window_s: float = Field(600.0, gt=0)
    trusted_proxies: list[str] = Field(default_factory=list)
    allow_days: float | None = Field(None, gt=0)
    text_scan_rows: int = Field(500_000, ge=1000)
    sample_prompts: int = Field(12, ge=1, le=200)
    account_samples: int = Field(10, ge=1, le=200)
    graph_max_accounts: int = Field(60, ge=2, le=500)  # account-group nodes in a campaign's evidence graph
    graph_max_entities: int = Field(24, ge=1, le=200)  # entity nodes in it (at most three per kind)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, v: list[str]) -> list[str]:
        import ipaddress

        for x in v:
            try:
                ipaddress.ip_network(x, strict=False)
            except ValueError:
                raise ValueError(f"{x!r} is not an IP address or network") from None
        return v

    @field_validator("secret_key", mode="before")
    @classmethod
    def _secret_ref(cls, v):
        # ``${VAR}`` is read here; a value given directly (tests, embedding code) is kept as it is.
        return ref_value(v) if is_ref(v) else v


def _deprecated_env(inline_secret: bool) -> list[tuple[str, dict]]:
    """``DISTILLGUARD_CONSOLE_<KEY>`` (the old override form) as a layer below the new variables, with a warning."""
    layer: dict = {}
    for name in sorted(os.environ):
        if not name.startswith(_OLD_PREFIX) or name.startswith(_OLD_PREFIX + "_") or name == SECRET_ENV:
            continue
        key = name[len(_OLD_PREFIX):].lower()
        if key in ConsoleSettings.model_fields:
            deprecated(f"environment variable {name}", env_var("console", key))
            raw = os.environ[name]
            layer[key] = yaml.safe_load(raw) if raw[:1] in ("[", "{") else raw
    out = [("deprecated environment variables DISTILLGUARD_CONSOLE_<KEY>", layer)] if layer else []
    if inline_secret and os.environ.get(SECRET_ENV):  # as before: the variable beats a key written in the file
        out.append((f"environment variable {SECRET_ENV}", {"secret_key": SECRET_REF}))
    return out


def load_settings(path: str | os.PathLike | None = None, **overrides) -> ConsoleSettings:
    """The ``console`` section: file, DISTILLGUARD_CONSOLE__* variables, then command-line options."""
    path = path if path is not None else os.environ.get(CONFIG_ENV)
    inline = None
    if path is not None:
        inline = read_yaml_mapping(path, "console config", section="console").get("secret_key")
        if inline is not None and not is_ref(inline):
            deprecated(f"a secret_key written in {path}", f"secret_key: '${{{SECRET_ENV}}}' (or another variable)")
    override = env_var("console", "secret_key")
    if os.environ.get(override) and not is_ref(os.environ[override]):
        raise ConfigError(f"must be a reference such as '${{{SECRET_ENV}}}' (the key itself goes in that variable)",
                          source=f"environment variable {override}")
    return load_section(ConsoleSettings, "console", path, what="console config", overrides=overrides,
                        layers=_deprecated_env(inline is not None and not is_ref(inline)))


@functools.cache
def dummy_hash() -> str:
    return hash_secret(secrets.token_urlsafe(16))


def authenticate(settings: ConsoleSettings, username: str, secret: str) -> tuple[str, str] | None:
    """(name, role) for a matching user password, or — with no username — a matching token.

    A known and an unknown user name cost the same: exactly one scrypt, against a throwaway hash
    when the name is unknown (or the password empty), so timing does not tell which names exist.
    """
    if username:
        user = None
        for u in settings.users:
            if hmac.compare_digest(u.name.encode(), username.encode()):
                user = u
        ok = verify_secret(secret or "-", user.password_hash if user else dummy_hash())
        return (user.name, user.role) if (ok and user is not None and secret) else None
    if not secret:
        return None
    for t in settings.tokens:
        if verify_secret(secret, t.token_hash):
            return t.name, t.role
    return None
