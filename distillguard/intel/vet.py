"""What a partner may say: limits on a bundle before it is parsed, and on each indicator after.

A bundle is input from outside the provider. Parsing it strictly (``stix2``, registered types only)
proves it is well-formed STIX, not that it is reasonable: ``[ipv4-addr:value ISSUBSET '0.0.0.0/0']``
is valid STIX and names every client there is, and fifty thousand copies of one ASN indicator are
valid STIX that a noisy-OR would add up to certainty. So two gates sit around the parse:

* ``read_bundle`` refuses the whole bundle when it is too big, not UTF-8 JSON, has too many objects,
  or uses an extension this project did not define (cheap checks first, before ``stix2`` spends
  seconds and memory on it);
* ``vet_rows`` rejects single indicators that are broader than a configured network prefix,
  empty, wildcards or malformed hashes, and collapses repeated values into one, so each rejected
  indicator comes with a reason and the good ones are still stored.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

import orjson

from distillguard.errors import DistillguardError
from distillguard.intel.config import ImportLimits
from distillguard.intel.keys import canonical
from distillguard.intel.stixobjects import (
    EXT_CLIENT_FP,
    EXT_INDICATOR,
    EXT_KEYED_HASH,
    EXT_PAYMENT,
    EXT_TEMPLATE,
    EXT_TLS_FP,
)

#: The only extension definitions a bundle may use or ship (docs/intel.md "Custom STIX objects").
KNOWN_EXTENSIONS = frozenset({EXT_KEYED_HASH, EXT_INDICATOR, EXT_TLS_FP, EXT_CLIENT_FP, EXT_PAYMENT, EXT_TEMPLATE})

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX = re.compile(r"^[0-9a-f]+$")
_WILDCARD = re.compile(r"[%*?]")


class BundleRefused(DistillguardError):
    """The whole bundle was refused; nothing of it was stored."""


@dataclass
class Vetting:
    """Outcome of checking one bundle's indicators: what is kept, what was rejected and why."""

    kept: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    duplicates: int = 0


def read_bundle(data: bytes, limits: ImportLimits, source: str) -> dict:
    """The bundle as a JSON document, after the checks that need no STIX parse; raises ``BundleRefused``."""
    if len(data) > limits.max_bundle_bytes:
        raise BundleRefused(f"bundle is {len(data):,} bytes, over the limit of {limits.max_bundle_bytes:,} "
                            "(intel.limits.max_bundle_bytes)", source=source)
    if b"\x00" in data:
        raise BundleRefused("not a STIX bundle: the file is binary (contains NUL bytes)", source=source)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BundleRefused(f"not a STIX bundle: not UTF-8 text (byte {e.start})", source=source) from None
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise BundleRefused(f"not a STIX bundle: invalid JSON ({e})", source=source) from None
    if not isinstance(doc, dict) or doc.get("type") != "bundle":
        raise BundleRefused("expected a STIX bundle (an object with \"type\": \"bundle\") at the top level",
                            source=source)
    objs = doc.get("objects", [])
    if not isinstance(objs, list) or not all(isinstance(o, dict) for o in objs):
        raise BundleRefused("bundle \"objects\" must be a list of objects", source=source)
    n_ind = sum(1 for o in objs if o.get("type") == "indicator")
    if n_ind > limits.max_indicators:
        raise BundleRefused(f"bundle has {n_ind:,} indicators, over the limit of {limits.max_indicators:,} "
                            "(intel.limits.max_indicators)", source=source)
    if len(objs) > limits.max_objects:
        raise BundleRefused(f"bundle has {len(objs):,} objects, over the limit of {limits.max_objects:,} "
                            "(intel.limits.max_objects)", source=source)
    for o in objs:
        oid = str(o.get("id", "?"))[:120]
        if o.get("type") == "extension-definition" and o.get("id") not in KNOWN_EXTENSIONS:
            raise BundleRefused(f"unknown extension definition {oid}: only distillguard's are accepted", source=source)
        exts = o.get("extensions")
        if exts is None:
            continue
        if not isinstance(exts, dict):
            raise BundleRefused(f"object {oid}: \"extensions\" must be an object", source=source)
        for k in exts:
            if str(k).startswith("extension-definition--") and k not in KNOWN_EXTENSIONS:
                raise BundleRefused(f"object {oid} uses unknown extension {str(k)[:80]}: refused", source=source)
    return doc


def collapse_repeats(doc: dict) -> int:
    """Keep one indicator per (pattern, extensions), the most confident; returns how many copies were dropped.

    Done on the JSON before the STIX parse, because validating a pattern costs milliseconds and a
    repeated indicator would otherwise cost that once per copy.
    """
    best: dict[tuple, int] = {}
    keep: list[dict] = []
    dropped = 0
    for o in doc.get("objects", []):
        if o.get("type") != "indicator":
            keep.append(o)
            continue
        k = (str(o.get("pattern")), str(o.get("pattern_type")), bool(o.get("revoked")),
             orjson.dumps(o.get("extensions"), option=orjson.OPT_SORT_KEYS))
        conf = o.get("confidence") if isinstance(o.get("confidence"), int) else -1
        if k in best:
            dropped += 1
            i = best[k]
            prev = keep[i].get("confidence") if isinstance(keep[i].get("confidence"), int) else -1
            if conf > prev:
                keep[i] = o
            continue
        best[k] = len(keep)
        keep.append(o)
    doc["objects"] = keep
    return dropped


def _network_reason(value: str, limits: ImportLimits) -> str | None:
    try:
        net = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return "not an IP network"
    floor = limits.min_prefix_v4 if net.version == 4 else limits.min_prefix_v6
    if net.prefixlen < floor:
        key = "min_prefix_v4" if net.version == 4 else "min_prefix_v6"
        return f"network /{net.prefixlen} is broader than /{floor} (intel.limits.{key})"
    return None


def _reason(r: dict, limits: ImportLimits) -> tuple[str | None, str | None]:
    """(why the indicator is rejected or None, the value's identity for duplicate detection)."""
    kind, form, value = r["kind"], r["value_form"], r["value"] or ""
    if kind == "unsupported":
        return None, None  # kept for the record, never matched (counted separately)
    if not value.strip():
        return "empty value", None
    if form == "hmac-sha256":
        return (None, value) if _HEX64.match(value) else ("keyed hash is not 64 hex digits", None)
    if form == "minhash":
        ok = _HEX.match(value) and len(value) % 8 == 0
        return (None, value) if ok else ("template signature is not hex of 8-digit values", None)
    if kind in ("cidr", "ip24"):
        why = _network_reason(value, limits)
        return (why, None) if why else (None, str(ipaddress.ip_network(value.strip(), strict=False)))
    if kind == "asn":
        c = canonical("asn", value)
        if c is None or not 0 < int(c) < 2**32:
            return "not a usable AS number", None
        return None, c
    if kind == "ip" and "/" in value:
        return _network_reason(value, limits) or "a network compared with '=' (use ISSUBSET)", None
    if kind in ("email_domain", "user_agent", "ja4", "header_fp", "payment", "ip"):
        if _WILDCARD.search(value) and kind != "user_agent":
            return "wildcard value: indicators must name one value", None
        c = canonical(kind, value)
        if c is None:
            return f"not a valid {kind} value", None
        if kind == "email_domain" and "." not in c:
            return "domain without a dot (a top-level domain names everyone under it)", None
        return None, c
    return None, value


def vet_rows(rows: list[dict], limits: ImportLimits) -> Vetting:
    """Reject bad indicators (with reasons) and collapse repeats of one value to its most confident copy."""
    out = Vetting()
    best: dict[tuple, dict] = {}
    order: list[tuple] = []
    for r in rows:
        why, ident = _reason(r, limits)
        if why:
            out.rejected.append({"indicator_id": r["indicator_id"], "kind": r["kind"],
                                 "value": (r["value"] or "")[:80], "reason": why})
            continue
        if ident is None:  # unsupported: stored as before, one row per id
            out.kept.append(r)
            continue
        k = (r["kind"], r["value_form"], ident, r["key_id"] if r["value_form"] != "raw" else None)
        if k in best:
            out.duplicates += 1
            if (r["confidence"] or 0) > (best[k]["confidence"] or 0):
                best[k] = r
            continue
        best[k] = r
        order.append(k)
    out.kept.extend(best[k] for k in order)
    return out
