"""Pull a partner's TAXII 2.1 collection into ``intel_indicators`` with ``taxii2-client``.

Polls are incremental: the ``X-TAXII-Date-Added-Last`` header of the last page (captured with a
``requests`` response hook, since ``taxii2-client`` returns only bodies) is remembered per
collection URL in ``intel_poll_state`` and sent as ``added_after`` next time. The pulled
objects are validated exactly like a bundle file (strict ``stix2`` parse) before any is stored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
import pyarrow as pa
import requests
from taxii2client.exceptions import TAXIIServiceException
from taxii2client.v21 import ApiRoot, Collection, Server, as_pages

from distillguard.errors import DistillguardError
from distillguard.intel.importer import import_bundle
from distillguard.store import Store

_TS = pa.timestamp("us", tz="UTC")
STATE_SCHEMA = pa.schema([("url", pa.string()), ("collection_id", pa.string()), ("last_added", _TS),
                          ("polled_at", _TS), ("objects", pa.int64())])


class BearerAuth(requests.auth.AuthBase):
    """``Authorization: Bearer <token>`` (taxii2-client's own TokenAuth sends the ``Token`` scheme)."""

    def __init__(self, token: str):
        self._token = token

    def __call__(self, r):
        r.headers["Authorization"] = f"Bearer {self._token}"
        return r

    def __repr__(self) -> str:
        return "BearerAuth(***)"


@dataclass
class PollReport:
    url: str
    collection_id: str
    objects: int
    pages: int
    indicators: int
    added_after: str | None
    last_added: str | None

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def _find_collection(url: str, collection_id: str, auth_kw: dict) -> Collection:
    url = url if url.endswith("/") else url + "/"
    try:
        if url.rstrip("/").endswith("/taxii2"):
            roots = Server(url, **auth_kw).api_roots
        else:
            roots = [ApiRoot(url, **auth_kw)]
        for root in roots:
            for col in root.collections:
                if col.id == collection_id or getattr(col, "alias", None) == collection_id:
                    return col
    except requests.HTTPError as e:
        status = e.response.status_code if e.response is not None else "?"
        raise DistillguardError(f"TAXII server refused the request (HTTP {status})", source=url) from e
    except (requests.ConnectionError, TAXIIServiceException) as e:
        raise DistillguardError(f"cannot talk TAXII 2.1 to the server: {e}", source=url) from e
    raise DistillguardError(f"no collection {collection_id!r} at this server (or no access to it)", source=url)


def _last_state(store: Store, url: str, collection_id: str) -> datetime | None:
    if not store.has_table("intel_poll_state"):
        return None
    t = store.read_table("intel_poll_state").to_pylist()
    vals = [r["last_added"] for r in t if r["url"] == url and r["collection_id"] == collection_id and r["last_added"]]
    return max(vals) if vals else None


def poll_collection(url: str, collection_id: str, store: Store, *, user: str | None = None,
                    password: str | None = None, token: str | None = None, added_after: datetime | str | None = None,
                    per_request: int = 100, source: str | None = None, incremental: bool = True) -> PollReport:
    auth_kw: dict = {}
    if token:
        auth_kw["auth"] = BearerAuth(token)
    elif user:
        auth_kw.update(user=user, password=password or "")
    col = _find_collection(url, collection_id, auth_kw)
    state_url = col.url  # the resolved collection URL: the same whether found via discovery or the API root
    if added_after is None and incremental:
        added_after = _last_state(store, state_url, collection_id)
    if isinstance(added_after, datetime):
        added_after = added_after.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    seen_last: list[str] = []

    def hook(resp, *a, **k):
        v = resp.headers.get("X-TAXII-Date-Added-Last")
        if v:
            seen_last.append(v)

    col._conn.session.hooks["response"].append(hook)
    objects: list[dict] = []
    pages = 0
    try:
        kw = {"added_after": added_after} if added_after else {}
        for env in as_pages(col.get_objects, per_request=per_request, **kw):
            pages += 1
            objects.extend(env.get("objects", []))
    except requests.HTTPError as e:
        status = e.response.status_code if e.response is not None else "?"
        raise DistillguardError(f"TAXII server refused the request (HTTP {status})", source=url) from e
    finally:
        col._conn.session.hooks["response"].remove(hook)
    indicators = 0
    if objects:
        text = orjson.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}).decode()
        rep = import_bundle(text, store, source=source)
        indicators = rep.indicators
    last = seen_last[-1] if seen_last else None
    if last:
        store.append_table("intel_poll_state", pa.Table.from_pylist([{
            "url": state_url, "collection_id": collection_id,
            "last_added": datetime.fromisoformat(last.replace("Z", "+00:00")),
            "polled_at": datetime.now(UTC), "objects": len(objects)}], schema=STATE_SCHEMA))
    return PollReport(url=url, collection_id=collection_id, objects=len(objects), pages=pages,
                      indicators=indicators, added_after=added_after, last_added=last)
