"""The sharing group's key, and the one canonical form of every shared value.

Two providers can only compare an HMAC if they hashed byte-identical input, so each kind of
value has exactly one canonical form (documented in docs/intel.md) and the kind itself is part
of the hashed message: the same string seen as an IP and as a user agent never collides.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from distillguard.errors import ConfigError

#: Environment variable holding the group key (hex, base64 or raw text; see ``parse_key``).
KEY_ENV = "DISTILLGUARD_INTEL_GROUP_KEY"
#: Environment variable naming a file that holds the group key.
KEY_FILE_ENV = "DISTILLGUARD_INTEL_GROUP_KEY_FILE"

HASH_PREFIX = "distillguard-intel-v1"

#: Every kind of value an indicator can carry, in export order.
KINDS = ("ip", "ip24", "asn", "email_domain", "ja4", "header_fp", "user_agent", "payment", "template")


@dataclass(frozen=True)
class GroupKey:
    """A secret shared by the members of one sharing group. ``key_id`` is public and lets a
    receiver tell "hashed with another key" apart from "no match" without revealing the key."""

    secret: bytes

    def __post_init__(self):
        if len(self.secret) < 16:
            raise ConfigError("group key too short: use at least 16 bytes (e.g. `openssl rand -hex 32`)",
                              source="group key")

    @property
    def key_id(self) -> str:
        return hmac.new(self.secret, b"distillguard-intel-key-id", hashlib.sha256).hexdigest()[:16]

    def hash_value(self, kind: str, canonical: str) -> str:
        """HMAC-SHA256 over ``distillguard-intel-v1|<kind>|<canonical>`` (UTF-8), lower-case hex."""
        msg = f"{HASH_PREFIX}|{kind}|{canonical}".encode()
        return hmac.new(self.secret, msg, hashlib.sha256).hexdigest()

    def shingle_hash32(self, shingle: str) -> int:
        """32-bit keyed hash of one template shingle (the input of the keyed MinHash)."""
        d = hmac.new(self.secret, f"{HASH_PREFIX}|shingle|{shingle}".encode(), hashlib.sha256).digest()
        return int.from_bytes(d[:4], "big")

    def __repr__(self) -> str:  # never print the secret
        return f"GroupKey(key_id={self.key_id})"


def parse_key(text: str, source: str) -> GroupKey:
    """Accept a hex string (what `openssl rand -hex 32` prints) or, failing that, the raw text."""
    t = text.strip()
    if not t:
        raise ConfigError("group key is empty", source=source)
    try:
        raw = bytes.fromhex(t) if len(t) % 2 == 0 else None
    except ValueError:
        raw = None
    return GroupKey(raw if raw else t.encode())


def load_group_key(key_file: str | os.PathLike | None = None, required: bool = True) -> GroupKey | None:
    """The key from ``key_file``, else $DISTILLGUARD_INTEL_GROUP_KEY_FILE, else $DISTILLGUARD_INTEL_GROUP_KEY."""
    path = key_file or os.environ.get(KEY_FILE_ENV)
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError("group key file not found", source=str(p))
        return parse_key(p.read_text(), source=str(p))
    env = os.environ.get(KEY_ENV)
    if env:
        return parse_key(env, source=f"${KEY_ENV}")
    if required:
        raise ConfigError(f"no group key: pass --group-key-file, set ${KEY_FILE_ENV} or ${KEY_ENV} "
                          "(or export raw values with --raw)")
    return None


# ---------------------------------------------------------------------------- canonical forms
def canon_ip(v: str) -> str | None:
    """Compressed text form from ``ipaddress`` (IPv6 lower-case, IPv4-mapped IPv6 unwrapped)."""
    try:
        ip = ipaddress.ip_address(v.strip())
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.compressed


def canon_ip24(v: str) -> str | None:
    """The /24 network of an IPv4 address (``203.0.113.0/24``), the /48 of an IPv6 one."""
    ip = canon_ip(v)
    if ip is None:
        return None
    prefix = 24 if ":" not in ip else 48
    return ipaddress.ip_network(f"{ip}/{prefix}", strict=False).compressed


def canon_asn(v) -> str | None:
    """Decimal without an ``AS`` prefix."""
    s = str(v).strip().upper().removeprefix("AS")
    return str(int(s)) if s.isdigit() else None


def canon_domain(v: str) -> str | None:
    """Lower-case, no trailing dot, IDNA (punycode) for non-ASCII; an e-mail address keeps its domain."""
    s = v.strip().rsplit("@", 1)[-1].strip().rstrip(".").lower()
    if not s or " " in s:
        return None
    try:
        return s.encode("idna").decode("ascii")
    except UnicodeError:
        return s


def canon_token(v: str) -> str | None:
    """Fingerprints (JA4, header order, payment): trimmed, lower-case."""
    s = v.strip().lower()
    return s or None


def canon_user_agent(v: str) -> str | None:
    """User agents: trimmed, inner whitespace runs collapsed to one space, case kept."""
    s = " ".join(v.split())
    return s or None


CANON = {"ip": canon_ip, "ip24": canon_ip24, "asn": canon_asn, "email_domain": canon_domain,
         "ja4": canon_token, "header_fp": canon_token, "user_agent": canon_user_agent, "payment": canon_token}


def canonical(kind: str, value) -> str | None:
    if value is None:
        return None
    return CANON[kind](value if kind == "asn" else str(value))
