"""The key pepper: the server secret API-key hashes are made with, and a public id naming it.

A key hash only matches under the pepper it was made with, so a pepper that silently changes
(an environment variable set after the keys were added, a lost file) turns every key into a 401.
Hence: there is no built-in fallback pepper; one is read from the environment or from a file
(generated with 0600 permissions when asked); and every keys file records the *pepper id* —
an HMAC of a fixed label, which names the pepper without revealing it — so a mismatch is a
clear start-up error instead of a wall of 401s.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from distillguard.errors import ConfigError

_ID_LABEL = b"distillguard-pepper-id-v1"


@dataclass(frozen=True)
class Pepper:
    secret: bytes
    #: Public name of the pepper (12 hex); recorded next to the hashes it made.
    id: str
    #: Where it came from, for messages: ``env DISTILLGUARD_KEY_PEPPER`` or ``file /path``.
    source: str


def pepper_id(secret: bytes) -> str:
    return hmac.new(secret, _ID_LABEL, hashlib.sha256).hexdigest()[:12]


def default_pepper_file(keys_file: Path | None, store: Path | None = None) -> Path | None:
    """Where a generated pepper lives when none is configured: next to the keys file, else in the store."""
    if keys_file is not None:
        p = Path(keys_file)
        return p.with_name(p.name + ".pepper")
    if store is not None:
        return Path(store) / "key_pepper"
    return None


def _read_file(path: Path) -> bytes:
    st = path.stat()
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"pepper file is readable by other users (mode {stat.S_IMODE(st.st_mode):o}); "
                          "run `chmod 600` on it", source=str(path))
    secret = path.read_bytes().strip()
    if len(secret) < 16:
        raise ConfigError("pepper file holds fewer than 16 bytes", source=str(path))
    return secret


def _create_file(path: Path) -> bytes:
    secret = secrets.token_hex(32).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others, not even briefly
    with os.fdopen(fd, "wb") as f:
        f.write(secret + b"\n")
        f.flush()
        os.fsync(f.fileno())
    return secret


def load_pepper(env: str, pepper_file: Path | None, create: bool = False) -> Pepper:
    """The pepper from ``env`` (wins when set), else from ``pepper_file`` (created when ``create``)."""
    v = os.environ.get(env)
    if v:
        s = v.encode()
        return Pepper(s, pepper_id(s), f"env {env}")
    if pepper_file is not None:
        pepper_file = Path(pepper_file)
        if pepper_file.exists():
            s = _read_file(pepper_file)
            return Pepper(s, pepper_id(s), f"file {pepper_file}")
        if create:
            s = _create_file(pepper_file)
            return Pepper(s, pepper_id(s), f"file {pepper_file} (generated)")
    where = f" or create {pepper_file} (mode 600)" if pepper_file is not None else ""
    raise ConfigError(f"no key pepper: set {env}{where}; API keys are hashed with it and never stored in clear")


def check_pepper_ids(ids: set[str], pepper: Pepper, source: str) -> None:
    """Refuse hashes recorded under another pepper: they would all fail to match."""
    foreign = sorted(i for i in ids if i and i != pepper.id)
    if foreign:
        raise ConfigError(
            f"API keys here were hashed with pepper {', '.join(foreign)}, but the gateway's pepper ({pepper.source}) "
            f"is {pepper.id}: every such key would be refused with 401. Restore the original pepper (environment "
            "variable or pepper file), or re-add the keys with `distillguard gateway-keys` under the new one",
            source=source)
