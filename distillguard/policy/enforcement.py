"""What the detector and analysts decided, as the gateway sees it: a snapshot reloaded on change.

The request path must never touch disk or DuckDB, so every table the gateway needs
(``enforcement``, ``account_clusters``, ``accounts``, ``api_keys``) is read into plain dicts in a
background thread and swapped in whole. A reader therefore always sees one consistent snapshot,
and a half-written table (the store renames parts into place) is never visible.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from distillguard.errors import ConfigError
from distillguard.ingest.normalize import parse_ts
from distillguard.policy.model import ACTIONS, SUBJECT_TYPES

log = logging.getLogger("distillguard.policy")


@dataclass(frozen=True, slots=True)
class EnforcementRow:
    action: str
    reason: str
    source: str | None
    created_at: float
    expires_at: float | None
    campaign_id: str | None
    #: Reported in the exchange record ("would throttle") but never applied: a rule rolled out in shadow.
    shadow: bool = False


@dataclass(frozen=True, slots=True)
class AccountInfo:
    org_id: str | None
    created_at: float | None
    pathway: str | None
    verification_level: int | None
    country: str | None
    status: str | None
    payment: str | None


@dataclass
class Snapshot:
    """Immutable-by-convention view of the store tables the gateway acts on."""

    decisions: dict[tuple[str, str], list[EnforcementRow]] = field(default_factory=dict)
    clusters: dict[str, str] = field(default_factory=dict)
    accounts: dict[str, AccountInfo] = field(default_factory=dict)
    #: key hash (hex) -> (key_id, account_id, org_id), from the store's optional ``api_keys`` table.
    keys: dict[str, tuple[str, str, str | None]] = field(default_factory=dict)
    #: Pepper ids recorded in ``api_keys.pepper_id`` (an optional column), checked against the gateway's pepper.
    key_pepper_ids: set[str] = field(default_factory=set)
    #: Whether any shadow row exists (the request path skips the shadow lookups otherwise).
    has_shadow: bool = False

    def decision(self, subject_type: str, subject_id: str | None, now: float,
                 shadow: bool = False) -> EnforcementRow | None:
        """Newest unexpired row for the subject (rows are kept newest first); shadow rows only when asked."""
        if subject_id is None:
            return None
        rows = self.decisions.get((subject_type, subject_id))
        if not rows:
            return None
        for r in rows:
            if r.shadow == shadow and (r.expires_at is None or r.expires_at > now):
                return r
        return None


def ip24(ip: str | None) -> str | None:
    """The /24 (IPv4) or /48 (IPv6) network of an address, as ``a.b.c.0/24``: the unit cheap proxies rotate within."""
    if not ip:
        return None
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if addr.version == 4:
        a, b, c, _ = ip.split(".")
        return f"{a}.{b}.{c}.0/24"
    return str(ipaddress.ip_network(f"{ip}/48", strict=False))


def canonical_ip24(subject: str) -> str:
    s = subject.strip()
    try:
        if "/" in s:
            net = ipaddress.ip_network(s, strict=False)
            return str(ipaddress.ip_network(f"{net.network_address}/{24 if net.version == 4 else 48}", strict=False))
        if s.count(".") == 2:
            s += ".0"
        return ip24(s) or s
    except ValueError:
        return s


def _epoch(v) -> float | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return (v if v.tzinfo else v.replace(tzinfo=UTC)).timestamp()
    return parse_ts(v).timestamp()


def _read_rows(path: Path) -> list[dict]:
    """Rows of a Parquet or JSON-lines file (the format `scan` writes, or an analyst's hand-made file)."""
    if path.is_dir():
        files = sorted(path.glob("*.parquet"))
        return [r for f in files for r in pq.read_table(f).to_pylist()]
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    rows = []
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(orjson.loads(line))
            except orjson.JSONDecodeError as e:
                raise ConfigError(f"not JSON: {e}", source=str(path), line=n) from None
    return rows


def parse_enforcement(rows: list[dict], source: str) -> dict[tuple[str, str], list[EnforcementRow]]:
    out: dict[tuple[str, str], list[EnforcementRow]] = {}
    for i, r in enumerate(rows, 1):
        st, sid, action = r.get("subject_type"), r.get("subject_id"), r.get("action")
        if st not in SUBJECT_TYPES or not sid or action not in ACTIONS:
            log.warning("enforcement row skipped", extra={"source": source, "row": i,
                                                          "why": "bad subject_type, subject_id or action"})
            continue
        try:
            created = _epoch(r.get("created_at")) or 0.0
            expires = _epoch(r.get("expires_at"))
        except Exception:  # noqa: BLE001 - one bad row must not hide every other decision
            log.warning("enforcement row skipped", extra={"source": source, "row": i, "why": "bad timestamp"})
            continue
        sid = canonical_ip24(str(sid)) if st == "ip24" else str(sid)
        src = r.get("source")
        out.setdefault((st, sid), []).append(EnforcementRow(action, r.get("reason") or "", src, created, expires,
                                                            r.get("campaign_id"), bool(src and src.endswith(":shadow"))))
    for rows_ in out.values():
        rows_.sort(key=lambda x: x.created_at, reverse=True)
    return out


def _fingerprint(paths: list[Path]) -> tuple:
    fp = []
    for p in paths:
        if p.is_dir():
            for f in sorted(p.glob("*")):
                if not f.name.startswith("."):
                    st = f.stat()
                    fp.append((str(f), st.st_mtime_ns, st.st_size))
        elif p.exists():
            st = p.stat()
            fp.append((str(p), st.st_mtime_ns, st.st_size))
        else:
            fp.append((str(p), None))
    return tuple(fp)


class EnforcementSource:
    """Loads a Snapshot from a store and/or files and tells when any of them changed."""

    def __init__(self, store_path: Path | None = None, enforcement_file: Path | None = None,
                 clusters_file: Path | None = None, redis_url: str | None = None,
                 redis_prefix: str = "distillguard:enforcement"):
        self.store_path = Path(store_path) if store_path else None
        self.enforcement_file = Path(enforcement_file) if enforcement_file else None
        self.clusters_file = Path(clusters_file) if clusters_file else None
        self._fp: tuple | None = None
        #: The snapshot `distillguard watch` publishes, for replicas that do not share the store's disk.
        self.redis_url = redis_url
        self.redis_prefix = redis_prefix
        self._redis = None
        self.redis_version: int | None = None
        self._redis_data: dict = {}
        self._redis_failed = False

    def _remote_version(self) -> int | None:
        """The published version (one small GET); on error the last known one, so decisions are never dropped."""
        if self.redis_url is None:
            return None
        import redis

        try:
            if self._redis is None:
                self._redis = redis.Redis.from_url(self.redis_url, socket_timeout=1, socket_connect_timeout=1)
            v = self._redis.get(f"{self.redis_prefix}:version")
        except redis.RedisError as e:
            if not self._redis_failed:
                log.warning("enforcement snapshot unreachable in Redis; keeping the last one",
                            extra={"error": type(e).__name__})
            self._redis_failed = True
            return self.redis_version
        self._redis_failed = False
        return int(v) if v is not None else None

    def _load_remote(self, version: int | None) -> None:
        if version is None or version == self.redis_version:
            return
        import redis

        try:
            raw = self._redis.get(f"{self.redis_prefix}:snapshot")
            doc = orjson.loads(raw) if raw else None
        except (redis.RedisError, orjson.JSONDecodeError) as e:
            log.warning("enforcement snapshot could not be read; keeping the last one", extra={"error": str(e)})
            return
        if doc is not None:
            self._redis_data = doc.get("data") or {}
            self.redis_version = int(doc.get("version") or version)

    def watched(self) -> list[Path]:
        paths = []
        if self.store_path:
            t = self.store_path / "tables"
            paths += [t / "enforcement", t / "account_clusters", t / "api_keys", self.store_path / "accounts"]
        paths += [p for p in (self.enforcement_file, self.clusters_file) if p]
        return paths

    def changed(self) -> bool:
        if self.redis_url is not None:
            v = self._remote_version()
            if v is not None and v != self.redis_version:
                return True
        return _fingerprint(self.watched()) != self._fp

    def load(self) -> Snapshot:
        fp = _fingerprint(self.watched())
        snap = Snapshot()
        rows: list[dict] = []
        cluster_rows: list[dict] = []
        if self.redis_url is not None:
            self._load_remote(self._remote_version())
            rows += self._redis_data.get("enforcement") or []
            cluster_rows += self._redis_data.get("account_clusters") or []
        if self.store_path:
            t = self.store_path / "tables"
            if any((t / "enforcement").glob("*.parquet")):
                rows += _read_rows(t / "enforcement")
            if any((t / "account_clusters").glob("*.parquet")):
                cluster_rows += _read_rows(t / "account_clusters")
            if any((t / "api_keys").glob("*.parquet")):
                for r in _read_rows(t / "api_keys"):
                    if r.get("key_hash") and r.get("account_id"):
                        snap.keys[r["key_hash"]] = (r.get("key_id") or r["key_hash"][:12], r["account_id"], r.get("org_id"))
                        if r.get("pepper_id"):
                            snap.key_pepper_ids.add(str(r["pepper_id"]))
            snap.accounts = load_accounts(self.store_path)
        if self.enforcement_file:
            rows += _read_rows(self.enforcement_file)
        if self.clusters_file:
            cluster_rows += _read_rows(self.clusters_file)
        snap.decisions = parse_enforcement(rows, "enforcement")
        snap.has_shadow = any(r.shadow for rs in snap.decisions.values() for r in rs)
        for r in cluster_rows:
            if r.get("account_id") and r.get("cluster_id") is not None:
                snap.clusters[str(r["account_id"])] = str(r["cluster_id"])
        self._fp = fp
        return snap


def load_accounts(store_path: Path) -> dict[str, AccountInfo]:
    from distillguard.store import Store

    if not any((Path(store_path) / "accounts").glob("*.parquet")):
        return {}
    st = Store(store_path)
    con = st.connect(threads=1)
    try:
        tab: pa.Table = st.accounts(con).select(
            "account_id", "org_id", "created_at", "signup_pathway", "verification_level", "signup_country",
            "status", "payment_fingerprint").to_arrow_table()
    finally:
        con.close()
    out = {}
    cols = tab.to_pydict()
    for i, acct in enumerate(cols["account_id"]):
        c = cols["created_at"][i]
        out[acct] = AccountInfo(cols["org_id"][i], c.timestamp() if c is not None else None, cols["signup_pathway"][i],
                                cols["verification_level"][i], cols["signup_country"][i], cols["status"][i],
                                cols["payment_fingerprint"][i])
    return out


def file_mtime(path: Path | None) -> tuple | None:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size)
