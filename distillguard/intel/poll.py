"""Pull a partner's TAXII 2.1 collection into ``intel_indicators`` with ``taxii2-client``.

Polls are incremental: the ``X-TAXII-Date-Added-Last`` header of the last page (captured with a
``requests`` response hook, since ``taxii2-client`` returns only bodies) is remembered per
collection URL in ``intel_poll_state`` and sent as ``added_after`` next time. The pulled
objects are validated exactly like a bundle file (size, extensions, strict ``stix2`` parse, each
indicator vetted) before any is stored, and stored under the partner the configuration names for
this collection, never under the name the objects give themselves.

A partner's server is outside input too: every request has a timeout, and a run stops after
``intel.poll.max_pages`` pages, ``max_seconds`` or ``intel.limits.max_objects`` objects, whatever
the server says about ``more``; what arrived is imported and the next run resumes after it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
import pyarrow as pa
import requests
from taxii2client.exceptions import TAXIIServiceException
from taxii2client.v21 import ApiRoot, Collection, Server, as_pages

from distillguard.errors import DistillguardError
from distillguard.intel.config import IntelConfig, Partner
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


class _TimeoutAdapter(requests.adapters.HTTPAdapter):
    """taxii2-client passes no timeout: without one, a server that stops sending holds the poll forever."""

    def __init__(self, timeout: float):
        super().__init__()
        self._timeout = timeout

    def send(self, request, **kw):
        if kw.get("timeout") is None:
            kw["timeout"] = self._timeout
        return super().send(request, **kw)


def _arm(endpoint, timeout: float):
    s = endpoint._conn.session
    s.mount("http://", _TimeoutAdapter(timeout))
    s.mount("https://", _TimeoutAdapter(timeout))
    return endpoint


def partner_for(cfg: IntelConfig, url: str, collection_id: str) -> Partner:
    """The configured partner serving this collection at this URL; polling an unconfigured one is an error."""
    norm = url.rstrip("/")
    for p in cfg.partners:
        for t in p.taxii:
            if t.url.rstrip("/") == norm and t.collection == collection_id:
                return p
    raise DistillguardError(f"no partner in intel.partners serves collection {collection_id!r} at {url}: add "
                            "`taxii: [{url: ..., collection: ...}]` to that partner's entry in the config")


@dataclass
class PollReport:
    url: str
    collection_id: str
    objects: int
    pages: int
    indicators: int
    added_after: str | None
    last_added: str | None
    partner: str = ""
    #: Why the run stopped before the server said it was done (a limit), or None.
    stopped: str | None = None
    rejected: int = 0

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def _find_collection(url: str, collection_id: str, auth_kw: dict, timeout: float) -> Collection:
    url = url if url.endswith("/") else url + "/"
    try:
        if url.rstrip("/").endswith("/taxii2"):
            roots = _arm(Server(url, **auth_kw), timeout).api_roots
        else:
            roots = [ApiRoot(url, **auth_kw)]
        for root in roots:
            for col in _arm(root, timeout).collections:
                if col.id == collection_id or getattr(col, "alias", None) == collection_id:
                    return col
    except requests.HTTPError as e:
        status = e.response.status_code if e.response is not None else "?"
        raise DistillguardError(f"TAXII server refused the request (HTTP {status})", source=url) from e
    except (requests.RequestException, TAXIIServiceException, ValueError) as e:
        raise DistillguardError(f"cannot talk TAXII 2.1 to the server: {e}", source=url) from e
    raise DistillguardError(f"no collection {collection_id!r} at this server (or no access to it)", source=url)


def _last_state(store: Store, url: str, collection_id: str) -> datetime | None:
    if not store.has_table("intel_poll_state"):
        return None
    t = store.read_table("intel_poll_state").to_pylist()
    vals = [r["last_added"] for r in t if r["url"] == url and r["collection_id"] == collection_id and r["last_added"]]
    return max(vals) if vals else None


def poll_collection(url: str, collection_id: str, store: Store, config: IntelConfig, *, user: str | None = None,
                    password: str | None = None, token: str | None = None, added_after: datetime | str | None = None,
                    per_request: int = 100, incremental: bool = True) -> PollReport:
    partner = partner_for(config, url, collection_id)
    limits = config.poll
    auth_kw: dict = {}
    if token:
        auth_kw["auth"] = BearerAuth(token)
    elif user:
        auth_kw.update(user=user, password=password or "")
    col = _find_collection(url, collection_id, auth_kw, limits.request_timeout_s)
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
    objects: list = []
    pages = nbytes = 0
    stopped = None
    t0 = time.monotonic()
    try:
        kw = {"added_after": added_after} if added_after else {}
        pager = as_pages(col.get_objects, per_request=per_request, **kw)
        for env in pager:
            pages += 1
            got = env.get("objects", []) if isinstance(env, dict) else None
            if not isinstance(got, list):
                raise DistillguardError("TAXII server sent an envelope without an objects list", source=url)
            objects.extend(got)
            nbytes += len(orjson.dumps(got))
            if not env.get("more", False):
                break
            # Stop before a page that would take the pull past the bundle limits: the whole pull is imported as one
            # bundle (relationships may span pages), and a refused one would never let the poll state advance.
            if pages >= limits.max_pages:
                stopped = f"{pages} pages (intel.poll.max_pages)"
            elif time.monotonic() - t0 > limits.max_seconds:
                stopped = f"{limits.max_seconds:g} s (intel.poll.max_seconds)"
            elif len(objects) + per_request > config.limits.max_objects:
                stopped = f"{len(objects)} objects (intel.limits.max_objects)"
            elif nbytes + nbytes / pages > config.limits.max_bundle_bytes:
                stopped = f"{nbytes:,} bytes (intel.limits.max_bundle_bytes)"
            if stopped:
                pager.close()
                break
    except requests.HTTPError as e:
        status = e.response.status_code if e.response is not None else "?"
        raise DistillguardError(f"TAXII server refused the request (HTTP {status})", source=url) from e
    except (requests.RequestException, TAXIIServiceException, ValueError) as e:
        raise DistillguardError(f"TAXII server failed mid-poll after {pages} pages: {e}", source=url) from e
    finally:
        col._conn.session.hooks["response"].remove(hook)
    indicators = rejected = 0
    if objects:
        text = orjson.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects})
        rep = import_bundle(text, store, partner, config)
        indicators, rejected = rep.indicators, len(rep.rejected)
    last = seen_last[-1] if seen_last else None
    if last:
        try:
            last_ts = datetime.fromisoformat(last.replace("Z", "+00:00"))
        except ValueError:
            raise DistillguardError(f"TAXII server sent a bad X-TAXII-Date-Added-Last: {last[:60]!r}", source=url) \
                from None
        store.append_table("intel_poll_state", pa.Table.from_pylist([{
            "url": state_url, "collection_id": collection_id, "last_added": last_ts,
            "polled_at": datetime.now(UTC), "objects": len(objects)}], schema=STATE_SCHEMA))
    return PollReport(url=url, collection_id=collection_id, objects=len(objects), pages=pages,
                      indicators=indicators, added_after=added_after, last_added=last, partner=partner.name,
                      stopped=stopped, rejected=rejected)
