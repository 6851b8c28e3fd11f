"""Who is calling: API key -> account, the client's real IP, and a fingerprint of the client software.

Keys are never stored: the keys file and the store's ``api_keys`` table hold HMAC-SHA256(pepper,
key), so a leaked file does not leak credentials, and lookup stays one hash plus one dict probe.
The pepper is a server secret (environment or a 0600 file, see ``pepper.py``); hashes made with
one pepper only match under the same pepper, so keys files record the pepper's public id.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import xxhash
import yaml

from distillguard.config import ref_name
from distillguard.errors import ConfigError
from distillguard.gateway.config import IdentityConfig
from distillguard.gateway.pepper import Pepper, check_pepper_ids, default_pepper_file, load_pepper, pepper_id

log = logging.getLogger("distillguard.gateway")

#: Memory of one key-cache entry: a 16-byte digest (49 B as bytes), a 64-char hex str (113 B) and the
#: dict slot with its share of spare capacity (about 100 B).
_CACHE_ENTRY_BYTES = 262

@dataclass(frozen=True, slots=True)
class Identity:
    key_id: str
    account_id: str
    org_id: str | None


def pepper_from_env(env: str) -> bytes:
    """The pepper in ``env``; an error when unset (there is no public fallback any more)."""
    v = os.environ.get(env)
    if not v:
        raise ConfigError(f"no key pepper: {env} is not set")
    return v.encode()


def hash_key(key: str, pepper: bytes) -> str:
    return hmac.new(pepper, key.encode(), hashlib.sha256).hexdigest()


def load_keys_file(path: Path, pepper: Pepper | None = None) -> dict[str, Identity]:
    """{key hash: Identity} from a YAML/JSON keys file; errors name the entry and field.

    With ``pepper``, hashes recorded under another pepper id are refused (they could never match).
    """
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise ConfigError("keys file not found", source=str(path)) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"keys file is not valid YAML: {e}", source=str(path)) from None
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ConfigError("keys: expected a list of {key_hash, key_id, account_id, org_id}", source=str(path))
    ids = {str(data.get("pepper_id") or "")} | {str(e.get("pepper_id") or "") for e in entries if isinstance(e, dict)}
    if pepper is not None:
        check_pepper_ids(ids, pepper, str(path))
        if entries and ids == {""}:
            log.warning("keys file records no pepper id; a wrong pepper would show only as 401s. Re-add the keys "
                        "with `distillguard gateway-keys` to record it", extra={"keys_file": str(path)})
    out = {}
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise ConfigError(f"keys.{i}: expected a mapping", source=str(path))
        for req in ("key_hash", "account_id"):
            if not e.get(req):
                raise ConfigError(f"keys.{i}.{req}: missing", source=str(path))
        h = str(e["key_hash"]).lower()
        if len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
            raise ConfigError(f"keys.{i}.key_hash: expected 64 hex characters (HMAC-SHA256)", source=str(path))
        out[h] = Identity(str(e.get("key_id") or h[:12]), str(e["account_id"]),
                          str(e["org_id"]) if e.get("org_id") else None)
    return out


def add_key(path: Path, account_id: str, org_id: str | None, pepper: bytes, key: str | None = None,
            key_id: str | None = None) -> tuple[str, str]:
    """Append a key to the keys file; returns (key, key_id). The key is shown once and never stored.

    The file records the pepper's id; adding under a different pepper than the file's is refused.
    """
    key = key or "sk-dg-" + secrets.token_urlsafe(32)
    pid = pepper_id(pepper)
    data = {"pepper_id": pid, "keys": []}
    if path.exists():
        data = yaml.safe_load(path.read_text()) or {"keys": []}
        data.setdefault("keys", [])
        old = data.get("pepper_id")
        if old and old != pid:
            raise ConfigError(f"this keys file was hashed with pepper {old}, the pepper given is {pid}; use the "
                              "original pepper (or start a new keys file)", source=str(path))
        if not old and data["keys"]:
            raise ConfigError("this keys file records no pepper id, so it cannot be told whether its keys match "
                              "this pepper; start a new keys file", source=str(path))
        data = {"pepper_id": pid, **{k: v for k, v in data.items() if k != "pepper_id"}}
    h = hash_key(key, pepper)
    key_id = key_id or f"key-{h[:10]}"
    data["keys"] = [e for e in data["keys"] if e.get("key_hash") != h]
    data["keys"].append({"key_hash": h, "key_id": key_id, "account_id": account_id, "org_id": org_id})
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    os.replace(tmp, path)
    return key, key_id


class KeyRing:
    """Resolves a presented API key to an Identity from the keys file and the store's api_keys table."""

    def __init__(self, cfg: IdentityConfig, pepper: Pepper | None = None):
        self.cfg = cfg
        if pepper is None:
            pepper = load_pepper(ref_name(cfg.pepper), cfg.pepper_file or default_pepper_file(cfg.keys_file))
        self.pepper_info = pepper
        self.pepper = pepper.secret
        self.file_keys: dict[str, Identity] = load_keys_file(cfg.keys_file, pepper) if cfg.keys_file else {}
        self.store_keys: dict[str, tuple[str, str, str | None]] = {}
        #: keyed digest of a presented key -> its HMAC, so hot keys are HMAC'd once. The digest (16 bytes,
        #: keyed with a per-process secret so nobody can aim a collision at another key) stands in for the
        #: key: the cache holds no credentials, and every entry costs the same, so its memory is bounded
        #: by ``key_cache_bytes`` whatever length of keys clients send.
        self._hash_cache: dict[bytes, str] = {}
        self._cache_secret = os.urandom(32)
        self._cache_max = cfg.key_cache_bytes // _CACHE_ENTRY_BYTES

    @property
    def cache_bytes(self) -> int:
        """Upper bound of the cache's memory (entries x per-entry cost)."""
        return len(self._hash_cache) * _CACHE_ENTRY_BYTES

    def reload_file(self) -> None:
        if self.cfg.keys_file:
            self.file_keys = load_keys_file(self.cfg.keys_file, self.pepper_info)

    def resolve(self, key: str) -> Identity | None:
        kb = key.encode()
        d = hashlib.blake2b(kb, digest_size=16, key=self._cache_secret).digest()
        h = self._hash_cache.get(d)
        if h is None:
            h = hmac.new(self.pepper, kb, hashlib.sha256).hexdigest()
            if self._cache_max:
                if len(self._hash_cache) >= self._cache_max:
                    self._hash_cache.clear()
                self._hash_cache[d] = h
        ident = self.file_keys.get(h)
        if ident is not None:
            return ident
        row = self.store_keys.get(h)
        if row is not None:
            return Identity(*row)
        if self.cfg.unknown_keys == "hash":
            return Identity(f"key-{h[:10]}", f"key-{h[:16]}", None)
        return None


#: Headers a client may put its API key in: OpenAI's ``Authorization: Bearer``, Anthropic's
#: ``x-api-key`` and Azure OpenAI's ``api-key``.
CREDENTIAL_HEADERS = (b"authorization", b"x-api-key", b"api-key")


class CredentialError(ValueError):
    """The request's credentials are ambiguous (``code`` multiple_credentials) or unusable (invalid_api_key)."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


def credential(raw_headers, max_chars: int = 512, headers: dict | None = None) -> str | None:
    """The request's one API key, or None when it sends none.

    Identity and the upstream must see the same credential, so a request carrying two (a repeated
    header, or Authorization and x-api-key that differ) is refused rather than resolved by picking one:
    otherwise a blocked key sent next to a clean one is judged by one and billed to the other.
    ``headers`` (the same headers as a dict) allows a fast path: when no header name repeats, the
    credential headers are three lookups instead of a scan.
    """
    found: list[tuple[bytes, bytes]] = []
    if headers is not None and len(headers) == len(raw_headers):
        pairs = [(k, headers[k]) for k in CREDENTIAL_HEADERS if k in headers]
    else:
        pairs = raw_headers
    for k, v in pairs:
        if k in CREDENTIAL_HEADERS:
            if k == b"authorization":
                if v[:7].lower() != b"bearer ":
                    raise CredentialError("unsupported Authorization scheme; send 'Authorization: Bearer <key>'",
                                          "invalid_api_key")
                v = v[7:]
            found.append((k, v.strip()))
    if not found:
        return None
    if len(found) > 1:
        names = [k for k, _ in found]
        dup = next((k for k in names if names.count(k) > 1), None)
        if dup is not None:
            raise CredentialError(f"more than one {dup.decode()} header; send exactly one credential",
                                  "multiple_credentials")
        if len({v for _, v in found}) > 1:
            raise CredentialError(" and ".join(k.decode() for k in names) + " carry different keys; "
                                  "send exactly one credential", "multiple_credentials")
    key = found[0][1]
    if len(key) > max_chars:
        raise CredentialError(f"API key longer than {max_chars} characters", "invalid_api_key")
    return key.decode("latin-1") or None


class ClientIP:
    """Client address from the socket, or from X-Forwarded-For when the socket peer is a trusted proxy."""

    def __init__(self, cfg: IdentityConfig):
        self.nets = [ipaddress.ip_network(n, strict=False) for n in cfg.trusted_proxies]
        self.header = cfg.forwarded_header.lower().encode()

    def from_trusted_peer(self, scope) -> bool:
        """The socket peer is a trusted proxy: headers it sets about the client (address, TLS fingerprint,
        ASN) are believed; from anyone else they are the client's own claims."""
        peer = scope.get("client")
        return bool(self.nets) and peer is not None and self._trusted(peer[0])

    def _trusted(self, ip: str) -> bool:
        try:
            a = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(a in n for n in self.nets)

    def __call__(self, scope, headers: dict[bytes, bytes]) -> str | None:
        peer = scope.get("client")
        ip = peer[0] if peer else None
        if not self.nets or ip is None or not self._trusted(ip):
            return ip
        xff = headers.get(self.header)
        if not xff:
            return ip
        hops = [h.strip() for h in xff.decode("latin-1").split(",") if h.strip()]
        for hop in reversed(hops):
            if not self._trusted(hop):
                try:
                    ipaddress.ip_address(hop)
                except ValueError:
                    return ip
                return hop
        return hops[0] if hops else ip


def edge_client_facts(headers: dict[bytes, bytes], ja4_header: bytes | None, asn_header: bytes | None) -> dict:
    """What a trusted edge says about the client (``identity.ja4_header`` / ``asn_header``), as exchange fields:
    ``tls_ja4`` (at most 64 characters) and ``client_asn`` ("13335" or "AS13335"; anything else is dropped).
    The caller checks the peer is trusted."""
    out: dict = {}
    v = headers.get(ja4_header) if ja4_header else None
    if v:
        out["tls_ja4"] = v.decode("latin-1").strip()[:64] or None
    v = headers.get(asn_header) if asn_header else None
    if v:
        t = v.decode("latin-1").strip().upper().removeprefix("AS")
        if t.isdigit() and len(t) <= 10:
            out["client_asn"] = int(t)
    return {k: x for k, x in out.items() if x is not None}


def fingerprint(raw_headers: list[tuple[bytes, bytes]], headers: dict[bytes, bytes]) -> tuple[str, str | None, str | None]:
    """(header-order hash, sdk name, sdk version): cheap client-software evidence that survives IP rotation."""
    fp = xxhash.xxh64_hexdigest(b",".join(k.lower() for k, _ in raw_headers))
    ua = headers.get(b"user-agent", b"").decode("latin-1")
    name = version = None
    head = ua.split(" ", 1)[0] if ua else ""
    if "/" in head:
        prod, _, rest = head.partition("/")
        # Stainless SDKs send "OpenAI/Python 1.2.3" / "Anthropic/Python 0.40.0".
        parts = ua.split(" ")
        if len(parts) > 1 and rest.isalpha():
            name, version = f"{prod}-{rest}".lower(), parts[1]
        else:
            name, version = prod.lower(), rest or None
    lang = headers.get(b"x-stainless-lang")
    if name is None and lang:
        name = "stainless-" + lang.decode("latin-1")
    pv = headers.get(b"x-stainless-package-version")
    if pv and version is None:
        version = pv.decode("latin-1")
    return fp, name, version
