"""Console configuration: who may log in, with which role, and how sessions are signed.

Passwords and tokens are stored only as salted scrypt hashes so a leaked console.yaml does not
hand out logins. Every key can be overridden from the environment (``DISTILLGUARD_CONSOLE_<KEY>``,
lists as JSON) so a deployment can keep the signing key out of the file entirely.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import secrets
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from distillguard.config import naming_the_key, read_yaml_mapping
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


class ConsoleSettings(BaseSettings):
    """Keys of console.yaml; see docs/console.md for each."""

    model_config = SettingsConfigDict(env_prefix="DISTILLGUARD_CONSOLE_", extra="forbid")

    secret_key: SecretStr | None = None
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

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings, file_secret_settings):
        # Environment beats the file: operators override one key without editing console.yaml.
        return (env_settings, init_settings)


def load_settings(path: str | os.PathLike | None = None, **overrides) -> ConsoleSettings:
    data = read_yaml_mapping(path, "console config") if path is not None else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    with naming_the_key(str(path) if path else "console settings"):
        return ConsoleSettings(**data)  # not model_validate: the environment must still override the file


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
