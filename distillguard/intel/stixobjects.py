"""The STIX vocabulary distillguard adds, registered with ``stix2`` so bundles parse strictly.

STIX 2.1 has native objects for IPs, networks, ASNs and domains but nothing for a JA4 TLS
fingerprint, a header-order fingerprint, a payment-instrument fingerprint or a prompt-template
signature, and no place for a keyed hash. Each gap is filled the way STIX 2.1 prescribes: an
``extension-definition`` (fixed ids below, shipped in every bundle) declaring either a new SCO
type or a property extension. Because the types are registered with ``stix2``, a receiver parses
our bundles with ``allow_custom=False``; anything unregistered still fails.

Patterns are the normative content of an indicator (any STIX tool can read them); the
``x-distillguard`` indicator extension only repeats what a pattern means in our terms (which
kind, hashed or raw, which group key) so import does not have to guess.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import lru_cache

import stix2
from stix2.properties import BooleanProperty, FloatProperty, IntegerProperty, StringProperty
from stix2.v21 import CustomExtension, CustomObservable, ExtensionDefinition, Identity
from stix2patterns.v21.pattern import Pattern

#: Namespace for deterministic object ids (the same value exported twice is the same indicator).
NS = uuid.UUID("c786e81c-885e-4f3c-be32-39741bb68c09")

EXT_KEYED_HASH = "extension-definition--d917dc62-5b55-4d70-b19f-951772fc2288"
EXT_INDICATOR = "extension-definition--43ec17b4-ac7e-46be-a020-ce163c217013"
EXT_TLS_FP = "extension-definition--ef05c1e0-3dda-4028-9db0-684642080b73"
EXT_CLIENT_FP = "extension-definition--59889461-c212-4775-a8d6-7eb2e84f1215"
EXT_PAYMENT = "extension-definition--9cc6c836-4806-4fb8-af99-76b9b585d822"
EXT_TEMPLATE = "extension-definition--f5ee7e9d-457e-4411-84ce-aa66e4989bd1"

#: The project identity that authors the extension definitions (not the exporting provider).
DISTILLGUARD_IDENTITY_ID = "identity--3fe8a4e5-4734-4b1f-940b-9adff0669382"
SCHEMA_URL = "https://github.com/distillguard/distillguard/blob/main/docs/intel.md#custom-stix-objects"

TLP = {"white": stix2.TLP_WHITE, "clear": stix2.TLP_WHITE, "green": stix2.TLP_GREEN,
       "amber": stix2.TLP_AMBER, "red": stix2.TLP_RED}
TLP_BY_ID = {m.id: name for name, m in TLP.items() if name != "clear"}


# ---------------------------------------------------------------------------- registration
@CustomExtension(EXT_KEYED_HASH, [("hmac_sha256", StringProperty(required=True))])
class KeyedHashExtension:
    extension_type = "property-extension"


@CustomExtension(EXT_INDICATOR, [
    ("kind", StringProperty(required=True)),
    ("value_form", StringProperty(required=True)),  # raw | hmac-sha256 | minhash
    ("key_id", StringProperty()),
    ("support_accounts", IntegerProperty(min=0)),
    ("benign_accounts", IntegerProperty(min=0)),
    ("benign_share", FloatProperty(min=0.0, max=1.0)),
    ("template_scheme", StringProperty()),
    ("num_perm", IntegerProperty(min=1)),
    ("seed", IntegerProperty()),
    ("shingle_size", IntegerProperty(min=1)),
    ("n_shingles", IntegerProperty(min=1)),
    ("keyed", BooleanProperty()),
])
class IndicatorExtension:
    extension_type = "property-extension"


_VALUE_PROPS = [("value", StringProperty()), ("hmac_sha256", StringProperty())]


@CustomObservable("x-distillguard-tls-fingerprint",
                  [("fingerprint_type", StringProperty(required=True))] + _VALUE_PROPS,
                  ["fingerprint_type", "value", "hmac_sha256"], extension_name=EXT_TLS_FP)
class TLSFingerprint:
    pass


@CustomObservable("x-distillguard-client-fingerprint",
                  [("fingerprint_type", StringProperty(required=True))] + _VALUE_PROPS,
                  ["fingerprint_type", "value", "hmac_sha256"], extension_name=EXT_CLIENT_FP)
class ClientFingerprint:
    pass


@CustomObservable("x-distillguard-payment-instrument", list(_VALUE_PROPS), ["value", "hmac_sha256"],
                  extension_name=EXT_PAYMENT)
class PaymentInstrument:
    pass


@CustomObservable("x-distillguard-prompt-template", [
    ("scheme", StringProperty(required=True)),
    ("signature", StringProperty(required=True)),
    ("masked_text", StringProperty()),
], ["scheme", "signature"], extension_name=EXT_TEMPLATE)
class PromptTemplate:
    pass


_EXT_DOCS = [
    (EXT_KEYED_HASH, "distillguard keyed hash", "property-extension",
     "HMAC-SHA256 of a canonicalised value under a sharing group's key, on ipv4-addr, ipv6-addr, "
     "autonomous-system and domain-name, so partners match identifiers without disclosing them.", []),
    (EXT_INDICATOR, "distillguard indicator metadata", "property-extension",
     "Kind of value an indicator carries, whether hashed, the group key id, local support and benign overlap, "
     "and template-signature parameters.", []),
    (EXT_TLS_FP, "distillguard TLS client fingerprint", "new-sco", "x-distillguard-tls-fingerprint: a JA4 "
     "TLS client fingerprint, raw (value) or keyed hash (hmac_sha256).", []),
    (EXT_CLIENT_FP, "distillguard HTTP client fingerprint", "new-sco", "x-distillguard-client-fingerprint: "
     "header-order fingerprint or user agent, raw (value) or keyed hash (hmac_sha256).", []),
    (EXT_PAYMENT, "distillguard payment instrument", "new-sco", "x-distillguard-payment-instrument: the "
     "provider's payment-instrument fingerprint, raw (value) or keyed hash (hmac_sha256).", []),
    (EXT_TEMPLATE, "distillguard prompt-template signature", "new-sco", "x-distillguard-prompt-template: "
     "keyed MinHash signature of a prompt template's skeleton (no prompt text).", []),
]


def project_identity() -> Identity:
    return Identity(id=DISTILLGUARD_IDENTITY_ID, name="distillguard project", identity_class="system",
                    created="2026-02-23T00:00:00.000Z", modified="2026-02-23T00:00:00.000Z",
                    description="Author of the distillguard STIX extension definitions.")


def extension_definitions() -> list[ExtensionDefinition]:
    return [ExtensionDefinition(id=eid, created_by_ref=DISTILLGUARD_IDENTITY_ID, name=name, description=desc,
                                schema=SCHEMA_URL, version="1.0.0", extension_types=[etype],
                                created="2026-02-23T00:00:00.000Z", modified="2026-02-23T00:00:00.000Z")
            for eid, name, etype, desc, _ in _EXT_DOCS]


# ---------------------------------------------------------------------------- patterns
def _q(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _unq(s: str) -> str:
    if len(s) >= 2 and s[0] == "'" and s[-1] == "'":
        s = s[1:-1]
        out, i = [], 0
        while i < len(s):
            if s[i] == "\\" and i + 1 < len(s):
                out.append(s[i + 1])
                i += 2
            else:
                out.append(s[i])
                i += 1
        return "".join(out)
    return s


_FP_TYPE = {"ja4": ("x-distillguard-tls-fingerprint", "ja4"),
            "header_fp": ("x-distillguard-client-fingerprint", "header-order"),
            "user_agent": ("x-distillguard-client-fingerprint", "user-agent")}
_NATIVE = {"ip24": "ipv4-addr", "asn": "autonomous-system", "email_domain": "domain-name"}


def _ip_type(v: str) -> str:
    return "ipv6-addr" if ":" in v else "ipv4-addr"


def build_pattern(kind: str, value: str, hashed: bool, ip_version_hint: str | None = None) -> str:
    """The STIX pattern for one value. ``value`` is the canonical form, or its HMAC when hashed."""
    if kind in ("ip", "ip24", "asn", "email_domain"):
        typ = (ip_version_hint or _ip_type(value)) if kind in ("ip", "ip24") else _NATIVE[kind]
        if hashed:
            return f"[{typ}:extensions.'{EXT_KEYED_HASH}'.hmac_sha256 = {_q(value)}]"
        if kind == "ip":
            return f"[{typ}:value = {_q(value)}]"
        if kind == "ip24":
            return f"[{typ}:value ISSUBSET {_q(value)}]"
        if kind == "asn":
            return f"[autonomous-system:number = {int(value)}]"
        return f"[domain-name:value = {_q(value)}]"
    if kind in _FP_TYPE:
        typ, fpt = _FP_TYPE[kind]
        if kind == "user_agent" and not hashed:
            return f"[network-traffic:extensions.'http-request-ext'.request_header.'User-Agent' = {_q(value)}]"
        prop = "hmac_sha256" if hashed else "value"
        return f"[{typ}:fingerprint_type = {_q(fpt)} AND {typ}:{prop} = {_q(value)}]"
    if kind == "payment":
        return f"[x-distillguard-payment-instrument:{'hmac_sha256' if hashed else 'value'} = {_q(value)}]"
    if kind == "template":
        return f"[x-distillguard-prompt-template:signature = {_q(value)}]"
    raise ValueError(f"unknown indicator kind {kind!r}")


@dataclass(frozen=True)
class ParsedPattern:
    kind: str  # one of keys.KINDS, "cidr" (a foreign network of another size) or "unsupported"
    value_form: str  # raw | hmac-sha256 | minhash
    value: str


@lru_cache(maxsize=4096)
def _inspect(pattern: str):
    """The parsed pattern, or None; cached because the ANTLR parse costs milliseconds per call."""
    try:
        return Pattern(pattern).inspect()
    except Exception:  # the stix2patterns parser raises its own error types
        return None


def parse_pattern(pattern: str, ext: dict | None = None) -> ParsedPattern:
    """What one indicator's pattern says, in our terms; foreign patterns we cannot match are ``unsupported``.

    Only single-observation patterns with ``=`` / ``ISSUBSET`` / ``LIKE '%@domain'`` comparisons
    are understood; anything with observation operators or qualifiers is kept but not matched.
    """
    data = _inspect(pattern)
    if data is None:
        return ParsedPattern("unsupported", "raw", "")
    if data.observation_ops or data.qualifiers or len(data.comparisons) != 1:
        return ParsedPattern("unsupported", "raw", "")
    (typ, comps), = data.comparisons.items()
    props = {".".join(p): (op, _unq(v) if isinstance(v, str) else str(v)) for p, op, v in comps}
    hint = (ext or {}).get("kind")
    keyed = f"extensions.{EXT_KEYED_HASH}.hmac_sha256"
    if keyed in props and props[keyed][0] == "=":
        kind = hint or {"ipv4-addr": "ip", "ipv6-addr": "ip", "autonomous-system": "asn",
                        "domain-name": "email_domain"}.get(typ, "unsupported")
        return ParsedPattern(kind, "hmac-sha256", props[keyed][1].lower())
    if typ in ("ipv4-addr", "ipv6-addr") and "value" in props:
        op, v = props["value"]
        if op == "=":
            return ParsedPattern("ip", "raw", v)
        if op == "ISSUBSET":
            prefix = v.rsplit("/", 1)[-1] if "/" in v else ""
            kind = "ip24" if (typ == "ipv4-addr" and prefix == "24") or (typ == "ipv6-addr" and prefix == "48") \
                else "cidr"
            return ParsedPattern(kind, "raw", v)
    if typ == "autonomous-system" and props.get("number", ("",))[0] == "=":
        return ParsedPattern("asn", "raw", props["number"][1])
    if typ == "domain-name" and props.get("value", ("",))[0] == "=":
        return ParsedPattern("email_domain", "raw", props["value"][1])
    if typ == "email-addr" and props.get("value", ("",))[0] == "LIKE" and props["value"][1].startswith("%@"):
        return ParsedPattern("email_domain", "raw", props["value"][1][2:])
    if typ == "network-traffic":
        ua = props.get("extensions.http-request-ext.request_header.User-Agent")
        if ua and ua[0] == "=":
            return ParsedPattern("user_agent", "raw", ua[1])
    if typ in ("x-distillguard-tls-fingerprint", "x-distillguard-client-fingerprint"):
        fpt = props.get("fingerprint_type", ("", ""))[1]
        kind = {"ja4": "ja4", "header-order": "header_fp", "user-agent": "user_agent"}.get(fpt, "unsupported")
        if "hmac_sha256" in props:
            return ParsedPattern(kind, "hmac-sha256", props["hmac_sha256"][1].lower())
        if "value" in props:
            return ParsedPattern(kind, "raw", props["value"][1])
    if typ == "x-distillguard-payment-instrument":
        if "hmac_sha256" in props:
            return ParsedPattern("payment", "hmac-sha256", props["hmac_sha256"][1].lower())
        if "value" in props:
            return ParsedPattern("payment", "raw", props["value"][1])
    if typ == "x-distillguard-prompt-template" and "signature" in props:
        return ParsedPattern("template", "minhash", props["signature"][1].lower())
    return ParsedPattern("unsupported", "raw", "")


def det_id(stix_type: str, *parts: str) -> str:
    return f"{stix_type}--{uuid.uuid5(NS, '|'.join(parts))}"
