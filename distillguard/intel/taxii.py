"""A TAXII 2.1 server over the store: partners poll the campaigns this provider publishes.

Objects live in the store table ``taxii_objects`` (one row per collection, object and version,
with the ``date_added`` the server assigned), written by ``publish_bundle`` (``intel export
--publish`` / ``intel publish``). The server is read-only: partners pull; pushing into someone
else's detection store is deliberately not offered.

Endpoints (TAXII 2.1 §4-5): discovery ``/taxii2/``, API root ``/{root}/``, collections, one
collection, objects (``limit``/``next`` pagination, ``added_after``, ``match[id|type|version|
spec_version]``), one object, its versions, and the manifest. Every response has media type
``application/taxii+json;version=2.1``; requests whose ``Accept`` excludes it get 406. Clients
authenticate with HTTP Basic or a bearer token (``Authorization: Bearer`` or ``Token``); secrets
are compared in constant time and never logged.

``build_taxii_app(store, config)`` returns a Starlette app; the console mounts it with
``Mount("/taxii", app=build_taxii_app(store, cfg))`` and every URL it hands out (the API roots in
discovery) is built with ``url_for`` so it stays right under any mount prefix.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from distillguard.config import deprecated, is_ref, load_section, ref_name
from distillguard.errors import ConfigError, DistillguardError
from distillguard.intel.export import validate_bundle_text
from distillguard.store import Store

MEDIA_TYPE = "application/taxii+json;version=2.1"
STIX_MEDIA_TYPE = "application/stix+json;version=2.1"
TABLE = "taxii_objects"
_TS_US = pa.timestamp("us", tz="UTC")
OBJECT_SCHEMA = pa.schema([
    ("collection_id", pa.string()), ("object_id", pa.string()), ("type", pa.string()), ("version", _TS_US),
    ("spec_version", pa.string()), ("date_added", _TS_US), ("json", pa.string()),
])
DEFAULT_COLLECTION = str(uuid.uuid5(uuid.NAMESPACE_URL, "distillguard:taxii:campaigns"))


class CollectionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = DEFAULT_COLLECTION
    title: str = "distillguard campaigns"
    description: str = "Distillation-campaign indicators (STIX 2.1) published by this provider."
    alias: str | None = None

    @field_validator("id")
    @classmethod
    def _uuid(cls, v: str) -> str:
        try:
            return str(uuid.UUID(v))
        except ValueError as e:
            raise ValueError("collection id must be a UUID (TAXII 2.1 §5.2.1)") from e


class TaxiiConfig(BaseModel):
    """Server configuration. Secrets (``users`` values, ``tokens``) are ``${ENV_VAR}`` references."""

    model_config = ConfigDict(extra="forbid")
    title: str = "distillguard TAXII server"
    description: str = "Indicators of model-distillation campaigns."
    contact: str | None = None
    api_root: str = Field("intel", pattern=r"^[a-z0-9][a-z0-9_-]*$")
    collections: list[CollectionConfig] = Field(default_factory=lambda: [CollectionConfig()])
    users: dict[str, str] = Field(default_factory=dict)
    tokens: list[str] = Field(default_factory=list)
    allow_anonymous: bool = False
    max_page_size: int = Field(100, ge=1, le=10_000)
    max_content_length: int = Field(10 * 1024 * 1024, ge=1024)

    def resolved_users(self) -> dict[str, bytes]:
        return {u: _secret(v, f"users.{u}").encode() for u, v in self.users.items()}

    def resolved_tokens(self) -> list[bytes]:
        return [_secret(v, f"tokens[{i}]").encode() for i, v in enumerate(self.tokens)]


def _secret(ref: str, key: str) -> str:
    """A password or token from its ``${ENV_VAR}`` reference; ``env:VAR``, ``file:PATH`` and inline values
    still work for one release, with a warning naming the new form."""
    if ref.startswith("env:"):
        deprecated(f"taxii key {key!r} as 'env:{ref[4:]}'", f"'${{{ref[4:]}}}'")
        ref = "${" + ref[4:] + "}"
    if is_ref(ref):
        v = os.environ.get(ref_name(ref))
        if not v:
            raise ConfigError(f"key {key!r}: environment variable {ref_name(ref)} is not set")
        return v
    if ref.startswith("file:"):
        deprecated(f"taxii key {key!r} as 'file:PATH'", "'${ENV_VAR}' (load the file into the variable)")
        p = Path(ref[5:])
        if not p.is_file():
            raise ConfigError(f"key {key!r}: secret file not found", source=str(p))
        return p.read_text().strip()
    deprecated(f"a secret given as its value (taxii key {key!r})", "'${ENV_VAR}'")
    return ref


def load_taxii_config(path: str | Path | None) -> TaxiiConfig:
    """The ``taxii`` section (file, then DISTILLGUARD_TAXII__* variables; docs/configuration.md)."""
    return load_section(TaxiiConfig, "taxii", path, what="TAXII config")


# ---------------------------------------------------------------------------- publishing
def _stix_ts(v: str | None) -> datetime | None:
    if not v:
        return None
    return datetime.fromisoformat(str(v).replace("Z", "+00:00")).astimezone(UTC)


def format_ts(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def publish_bundle(store: Store, bundle_text: str, collection_id: str = DEFAULT_COLLECTION,
                   now: datetime | None = None) -> int:
    """Add a bundle's objects to a collection; an (id, version) already present is skipped.

    ``date_added`` strictly increases across publishes (µs steps), so ``added_after`` and the
    pagination cursor never skip or repeat an object.
    """
    bundle = validate_bundle_text(bundle_text)
    raw = orjson.loads(bundle_text)
    existing: set[tuple[str, datetime]] = set()
    last = None
    if store.has_table(TABLE):
        t = store.read_table(TABLE)
        for cid, oid, ver in zip(t["collection_id"].to_pylist(), t["object_id"].to_pylist(),
                                 t["version"].to_pylist(), strict=True):
            if cid == collection_id:
                existing.add((oid, ver))
        if t.num_rows:
            last = max(t["date_added"].to_pylist())
    now = (now or datetime.now(UTC)).astimezone(UTC)
    stamp = max(now, last + timedelta(microseconds=1)) if last else now
    rows = []
    for obj, parsed in zip(raw.get("objects", []), bundle.objects, strict=True):
        ver = _stix_ts(obj.get("modified") or obj.get("created")) or datetime(1970, 1, 1, tzinfo=UTC)
        ver = ver.replace(microsecond=ver.microsecond)
        if (obj["id"], ver) in existing:
            continue
        existing.add((obj["id"], ver))
        rows.append({"collection_id": collection_id, "object_id": obj["id"], "type": parsed.type, "version": ver,
                     "spec_version": obj.get("spec_version", "2.1"), "date_added": stamp,
                     "json": orjson.dumps(obj).decode()})
        stamp += timedelta(microseconds=1)
    if rows:
        store.append_table(TABLE, pa.Table.from_pylist(rows, schema=OBJECT_SCHEMA))
    return len(rows)


# ---------------------------------------------------------------------------- server
def _resp(body: dict | None, status: int = 200, headers: dict | None = None) -> Response:
    content = orjson.dumps(body) if body is not None else b""
    return Response(content, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _error(status: int, title: str, description: str = "", headers: dict | None = None) -> Response:
    return _resp({"title": title, "description": description, "http_status": str(status)}, status, headers)


def _accepts(request: Request) -> bool:
    accept = request.headers.get("accept")
    if not accept:
        return True
    for part in accept.split(","):
        tokens = [t.strip().lower() for t in part.split(";")]
        mt = tokens[0]
        params = {t.split("=", 1)[0]: t.split("=", 1)[1] for t in tokens[1:] if "=" in t}
        if mt in ("application/taxii+json", "*/*", "application/*") and params.get("version", "2.1") == "2.1":
            return True
    return False


def _b64(s: str) -> str:
    return base64.urlsafe_b64encode(s.encode()).decode().rstrip("=")


def _unb64(s: str) -> str:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)).decode()


def build_taxii_app(store: Store, config: TaxiiConfig | None = None) -> Starlette:
    cfg = config or TaxiiConfig()
    users = cfg.resolved_users()
    tokens = cfg.resolved_tokens()
    if not users and not tokens and not cfg.allow_anonymous:
        raise ConfigError("TAXII server has no users or tokens; configure `users`/`tokens` "
                          "(or set allow_anonymous: true for a public collection)")
    collections = {c.id: c for c in cfg.collections}
    for c in cfg.collections:
        if c.alias:
            collections[c.alias] = c
    challenge = {"WWW-Authenticate": 'Basic realm="distillguard-taxii", Bearer realm="distillguard-taxii"'}

    def authorized(request: Request) -> bool:
        if cfg.allow_anonymous:
            return True
        h = request.headers.get("authorization", "")
        scheme, _, cred = h.partition(" ")
        scheme = scheme.lower()
        cred = cred.strip()
        if scheme in ("bearer", "token") and cred:
            given = cred.encode()
            return any(hmac.compare_digest(given, t) for t in tokens)
        if scheme == "basic" and cred:
            try:
                user, _, pw = base64.b64decode(cred, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False
            want = users.get(user)
            # Compare against something even for unknown users so timing says nothing about user names.
            ok = hmac.compare_digest(pw.encode(), want if want is not None else b"\0" * 32)
            return ok and want is not None
        return False

    def guard(fn):
        def endpoint(request: Request) -> Response:
            if not authorized(request):
                return _error(401, "Unauthorized", "valid HTTP Basic or bearer credentials required", challenge)
            if not _accepts(request):
                return _error(406, "Not Acceptable", f"this server answers {MEDIA_TYPE}")
            if "api_root" in request.path_params and request.path_params["api_root"] != cfg.api_root:
                return _error(404, "Unknown API root")
            col = None
            if "collection_id" in request.path_params:
                col = collections.get(request.path_params["collection_id"])
                if col is None:
                    return _error(404, "Unknown collection", "no such collection or no access to it")
            try:
                return fn(request, col)
            except _BadRequest as e:
                return _error(400, "Bad request", str(e))
        return endpoint

    def discovery(request: Request, _col) -> Response:
        root = str(request.url_for("api_root", api_root=cfg.api_root))
        body = {"title": cfg.title, "description": cfg.description, "default": root, "api_roots": [root]}
        if cfg.contact:
            body["contact"] = cfg.contact
        return _resp(body)

    def api_root(request: Request, _col) -> Response:
        return _resp({"title": cfg.title, "description": cfg.description, "versions": [MEDIA_TYPE],
                      "max_content_length": cfg.max_content_length})

    def _col_body(c: CollectionConfig) -> dict:
        body = {"id": c.id, "title": c.title, "description": c.description, "can_read": True, "can_write": False,
                "media_types": [STIX_MEDIA_TYPE]}
        if c.alias:
            body["alias"] = c.alias
        return body

    def list_collections(request: Request, _col) -> Response:
        return _resp({"collections": [_col_body(c) for c in cfg.collections]})

    def get_collection(request: Request, col) -> Response:
        return _resp(_col_body(col))

    def get_objects(request: Request, col, object_id: str | None = None, manifest: bool = False,
                    versions: bool = False) -> Response:
        rows, more, nxt = _query(store, col.id, request, cfg.max_page_size, object_id, versions)
        if object_id and not rows and not request.query_params.get("next"):
            return _error(404, "Object not found")
        headers = {}
        if rows:
            headers["X-TAXII-Date-Added-First"] = format_ts(rows[0][1])
            headers["X-TAXII-Date-Added-Last"] = format_ts(rows[-1][1])
        if manifest:
            body = {"more": more, "objects": [{"id": oid, "date_added": format_ts(da), "version": format_ts(ver),
                                               "media_type": STIX_MEDIA_TYPE} for oid, da, ver, _ in rows]}
        elif versions:
            body = {"more": more, "versions": [format_ts(ver) for _, _, ver, _ in rows]}
        else:
            body = {"more": more, "objects": [orjson.loads(js) for *_, js in rows]}
        if more:
            body["next"] = nxt
        if not rows and not manifest and not versions:
            body.pop("objects")
        return _resp(body, headers=headers)

    routes = [
        Route("/taxii2/", guard(discovery), name="discovery"),
        Route("/{api_root}/", guard(api_root), name="api_root"),
        Route("/{api_root}/collections/", guard(list_collections)),
        Route("/{api_root}/collections/{collection_id}/", guard(get_collection)),
        Route("/{api_root}/collections/{collection_id}/objects/", guard(get_objects)),
        Route("/{api_root}/collections/{collection_id}/manifest/",
              guard(lambda r, c: get_objects(r, c, manifest=True))),
        Route("/{api_root}/collections/{collection_id}/objects/{object_id}/",
              guard(lambda r, c: get_objects(r, c, object_id=r.path_params["object_id"]))),
        Route("/{api_root}/collections/{collection_id}/objects/{object_id}/versions/",
              guard(lambda r, c: get_objects(r, c, object_id=r.path_params["object_id"], versions=True))),
    ]
    return Starlette(routes=routes)


class _BadRequest(DistillguardError):
    pass


def _parse_ts_param(v: str, name: str) -> datetime:
    try:
        return _stix_ts(v)
    except ValueError as e:
        raise _BadRequest(f"{name} must be an RFC 3339 timestamp") from e


def _query(store: Store, collection_id: str, request: Request, max_page: int, object_id: str | None,
           versions: bool) -> tuple[list, bool, str | None]:
    """Rows (object_id, date_added, version, json) for one page, whether more follow, and the next cursor."""
    q = request.query_params
    try:
        limit = min(int(q.get("limit", max_page)), max_page)
    except ValueError as e:
        raise _BadRequest("limit must be an integer") from e
    if limit < 1:
        raise _BadRequest("limit must be at least 1")
    if not store.has_table(TABLE):
        return [], False, None
    conds = ["collection_id = $cid"]
    params: dict = {"cid": collection_id}
    if object_id:
        conds.append("object_id = $oid")
        params["oid"] = object_id
    for name, col in (("match[id]", "object_id"), ("match[type]", "type"), ("match[spec_version]", "spec_version")):
        vals = [x for v in q.getlist(name) for x in v.split(",") if x]
        if vals:
            conds.append(f"{col} IN (SELECT unnest(${col}_vals))")
            params[f"{col}_vals"] = vals
    where = " AND ".join(conds)
    ver_vals = [x for v in q.getlist("match[version]") for x in v.split(",") if x] or (["all"] if versions else ["last"])
    ver_filters = []
    if "all" not in ver_vals:
        if "last" in ver_vals:
            ver_filters.append("version = max(version) OVER (PARTITION BY object_id)")
        if "first" in ver_vals:
            ver_filters.append("version = min(version) OVER (PARTITION BY object_id)")
        stamps = [_parse_ts_param(v, "match[version]") for v in ver_vals if v not in ("last", "first")]
        if stamps:
            ver_filters.append("version IN (SELECT unnest($stamps))")
            params["stamps"] = stamps
    qualify = f"QUALIFY {' OR '.join(ver_filters)}" if ver_filters else ""
    outer = []
    if q.get("added_after"):
        outer.append("date_added > $after")
        params["after"] = _parse_ts_param(q["added_after"], "added_after")
    if q.get("next"):
        try:
            da, oid, ver = _unb64(q["next"]).split("|")
            params.update(c_da=_stix_ts(da), c_oid=oid, c_ver=_stix_ts(ver))
        except (ValueError, binascii.Error, UnicodeDecodeError) as e:
            raise _BadRequest("next is not a cursor this server issued") from e
        outer.append("(date_added, object_id, version) > ($c_da, $c_oid, $c_ver)")
    path = store._duck("tables", TABLE, "*.parquet").replace("'", "''")
    sql = f"""SELECT object_id, date_added, version, json FROM (
                SELECT * FROM read_parquet('{path}', union_by_name=true) WHERE {where} {qualify})
              {'WHERE ' + ' AND '.join(outer) if outer else ''}
              ORDER BY date_added, object_id, version LIMIT {limit + 1}"""
    con = store.duck()
    con.execute("SET TimeZone='UTC'")
    rows = con.execute(sql, params).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = None
    if more:
        oid, da, ver, _ = rows[-1]
        nxt = _b64(f"{format_ts(da)}|{oid}|{format_ts(ver)}")
    return rows, more, nxt
