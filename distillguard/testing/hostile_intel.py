"""Hostile partner input for the intel tests and ``bench/chaos/intel.py``: bundles and a TAXII server.

Each bundle is plain STIX 2.1 JSON written by hand (not through ``stix2``), so it can be exactly as
wrong as an outsider would make it: catch-all networks at confidence 100, one value repeated
fifty thousand times, an extension nobody defined, tens of megabytes, raw bytes. The endless
server answers every objects request with one more page and ``more: true``.
"""

from __future__ import annotations

import os
import uuid

import orjson

T0 = "2026-02-01T00:00:00.000Z"


def identity(name: str) -> dict:
    return {"type": "identity", "spec_version": "2.1", "id": f"identity--{uuid.uuid4()}", "created": T0,
            "modified": T0, "name": name, "identity_class": "organization"}


def indicator(pattern: str, confidence: int = 100, creator: str | None = None, extensions: dict | None = None,
              ind_id: str | None = None) -> dict:
    o = {"type": "indicator", "spec_version": "2.1", "id": ind_id or f"indicator--{uuid.uuid4()}", "created": T0,
         "modified": T0, "pattern": pattern, "pattern_type": "stix", "valid_from": T0, "confidence": confidence,
         "labels": ["distillation"]}
    if creator:
        o["created_by_ref"] = creator
    if extensions:
        o["extensions"] = extensions
    return o


def bundle(objects: list[dict]) -> bytes:
    return orjson.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects})


def _with_identity(name: str, patterns: list[str], **kw) -> bytes:
    ident = identity(name)
    return bundle([ident] + [indicator(p, creator=ident["id"], **kw) for p in patterns])


CATCH_ALL_PATTERNS = [
    "[ipv4-addr:value ISSUBSET '0.0.0.0/0']",
    "[ipv6-addr:value ISSUBSET '::/0']",
    "[ipv4-addr:value ISSUBSET '0.0.0.0/1']",
    "[ipv4-addr:value ISSUBSET '128.0.0.0/1']",
    "[ipv4-addr:value ISSUBSET '10.0.0.0/8']",
    "[ipv4-addr:value = '0.0.0.0/0']",
    "[email-addr:value LIKE '%@%']",
    "[domain-name:value = '%']",
    "[domain-name:value = 'com']",
    "[network-traffic:extensions.'http-request-ext'.request_header.'User-Agent' = ' ']",
    "[autonomous-system:number = 0]",
]


def catch_all() -> bytes:
    """Networks that contain every client (and wildcard / empty values), all at confidence 100."""
    return _with_identity("Provider A", CATCH_ALL_PATTERNS)


def repeated_asn(asn: int, copies: int) -> bytes:
    """One ASN indicator ``copies`` times under fresh ids (noisy-OR would add them up to certainty)."""
    return _with_identity("Provider A", [f"[autonomous-system:number = {asn}]"] * copies)


def unknown_extension() -> bytes:
    ext = f"extension-definition--{uuid.uuid4()}"
    ident = identity("Provider A")
    return bundle([ident, indicator("[ipv4-addr:value = '203.0.113.9']", creator=ident["id"],
                                    extensions={ext: {"extension_type": "property-extension", "verdict": "block"}})])


def huge(target_bytes: int = 61 * 1024 * 1024) -> bytes:
    """A bundle of ``target_bytes``: valid indicators padded with long descriptions."""
    ident = identity("Provider A")
    pad = "x" * 60_000
    objs = [ident]
    size = 0
    i = 0
    while size < target_bytes:
        o = indicator(f"[ipv4-addr:value = '198.51.{(i // 250) % 250}.{i % 250 + 1}']", creator=ident["id"])
        o["description"] = pad
        objs.append(o)
        size += len(pad) + 400
        i += 1
    return bundle(objs)


def binary(n: int = 4096, seed: int = 1) -> bytes:
    import random

    return random.Random(seed).randbytes(n)


def impersonation(ips: list[str]) -> bytes:
    """An outsider's bundle that names itself "Provider A"."""
    return _with_identity("Provider A", [f"[ipv4-addr:value = '{ip}']" for ip in ips])


# ---------------------------------------------------------------------------------------- endless TAXII
TAXII = "application/taxii+json;version=2.1"


def endless_taxii_app(collection_id: str = "91a7b528-80eb-42ed-a74d-c6fbd5a26116", hang_s: float = 0.0):
    """A TAXII 2.1 server whose objects endpoint always has one more page (``more: true``), after ``hang_s``
    seconds of silence per page."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    def j(doc, **headers):
        return Response(orjson.dumps(doc), media_type=TAXII, headers=headers)

    def discovery(request):
        return j({"title": "endless", "api_roots": [str(request.url_for("root"))]})

    def root(request):
        return j({"title": "endless root", "versions": [TAXII], "max_content_length": 10_000_000})

    def collections(request):
        return j({"collections": [{"id": collection_id, "title": "endless", "can_read": True, "can_write": False,
                                   "media_types": [TAXII]}]})

    def collection(request):
        return j({"id": collection_id, "title": "endless", "can_read": True, "can_write": False})

    async def objects(request):
        if hang_s:
            import asyncio

            await asyncio.sleep(hang_s)
        n = int(request.query_params.get("next") or 0)
        ip = f"198.18.{(n // 250) % 250}.{n % 250 + 1}"
        return j({"more": True, "next": str(n + 1), "objects": [indicator(f"[ipv4-addr:value = '{ip}']", 50)]},
                 **{"X-TAXII-Date-Added-First": T0, "X-TAXII-Date-Added-Last": T0})

    return Starlette(routes=[
        Route("/taxii2/", discovery), Route("/api/", root, name="root"), Route("/api/collections/", collections),
        Route("/api/collections/{cid}/", collection), Route("/api/collections/{cid}/objects/", objects)])


def write(path: str | os.PathLike, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return str(path)

