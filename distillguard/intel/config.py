"""Intel configuration: validated data, every key documented in docs/intel.md.

Loaded from the ``intel:`` section (or the whole document) of a YAML file; every command also
takes the common keys as options, which override the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from distillguard.config import load_section
from distillguard.errors import ConfigError
from distillguard.intel.keys import KINDS

TLP_LEVELS = ("white", "clear", "green", "amber", "red")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProviderIdentity(_Model):
    name: str = "distillguard provider"
    identity_class: Literal["organization", "individual", "group", "system", "class", "unknown"] = "organization"
    sectors: list[str] = Field(default_factory=lambda: ["technology"])
    contact_information: str | None = None


class ExportConfig(_Model):
    tlp: Literal["white", "clear", "green", "amber", "red"] = "amber"
    #: Days an indicator stays valid after the export, per kind (infrastructure churns fastest).
    valid_days: dict[str, int] = Field(default_factory=lambda: {
        "ip": 30, "ip24": 60, "asn": 90, "email_domain": 180, "ja4": 90, "header_fp": 90, "user_agent": 60,
        "payment": 365, "template": 180})
    kinds: list[str] = Field(default_factory=lambda: list(KINDS))
    #: A value must be used by at least this many campaign accounts to become an indicator.
    min_accounts: int = Field(2, ge=1)
    #: Drop a value when more than this share of the local accounts using it are benign ...
    max_benign_share: float = Field(0.2, ge=0.0, le=1.0)
    #: ... or when more than this many benign local accounts use it (a university NAT, gmail.com).
    max_benign_accounts: int = Field(5, ge=0)
    #: Keep dropped-for-benign-overlap values, labelled ``benign-overlap`` at low confidence, instead of dropping.
    keep_benign_overlap: bool = False
    #: Template groups: minimum exchanges and accounts behind one template before it is exported.
    min_template_exchanges: int = Field(5, ge=1)
    #: Prompts sampled per template to compute its skeleton.
    template_sample: int = Field(200, ge=3)
    skeleton_min_share: float = Field(0.5, gt=0.0, le=1.0)
    include_note: bool = True
    #: Risk at or above which a non-member account counts as "not benign" for the benign check.
    benign_risk_below: float = Field(0.5, ge=0.0, le=1.0)

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, v: list[str]) -> list[str]:
        bad = [k for k in v if k not in KINDS]
        if bad:
            raise ValueError(f"unknown kinds {bad}; choose from {list(KINDS)}")
        return v

    @field_validator("valid_days")
    @classmethod
    def _valid_days(cls, v: dict[str, int]) -> dict[str, int]:
        bad = [k for k in v if k not in KINDS]
        if bad:
            raise ValueError(f"unknown kinds {bad}; choose from {list(KINDS)}")
        if any(d < 1 for d in v.values()):
            raise ValueError("valid_days must be at least 1")
        return v


class MatchConfig(_Model):
    #: How strongly one match of each kind speaks for "this account is in the partner's campaign".
    kind_weights: dict[str, float] = Field(default_factory=lambda: {
        "ip": 0.5, "ip24": 0.3, "asn": 0.1, "email_domain": 0.4, "ja4": 0.3, "header_fp": 0.3,
        "user_agent": 0.1, "payment": 0.9, "template": 0.6})
    #: Minimum estimated Jaccard similarity between a local template skeleton and an imported signature.
    template_threshold: float = Field(0.6, gt=0.0, le=1.0)
    #: LSH candidate threshold (lower finds more candidates to verify).
    lsh_threshold: float = Field(0.5, gt=0.0, lt=1.0)
    #: Local prompts sampled per account / template group for its skeleton.
    template_sample: int = Field(200, ge=3)
    skeleton_min_share: float = Field(0.5, gt=0.0, le=1.0)
    min_prompts: int = Field(3, ge=2)
    #: Risk at or above which ``apply_intel`` flags an account.
    flag_threshold: float = Field(0.5, gt=0.0, le=1.0)
    #: Ignore indicators below this confidence (0-100, after scaling by the partner's trust).
    min_confidence: int = Field(0, ge=0, le=100)
    #: An indicator matching more than this many local accounts ... (catch-alls that slipped past validation,
    #: a hashed value of a huge cloud network) ...
    broad_min_accounts: int = Field(25, ge=1)
    #: ... and more than this share of the local accounts that have a value of its kind is ignored as too broad.
    broad_share: float = Field(0.25, gt=0.0, le=1.0)

    @field_validator("kind_weights")
    @classmethod
    def _weights(cls, v: dict[str, float]) -> dict[str, float]:
        bad = [k for k in v if k not in KINDS]
        if bad:
            raise ValueError(f"unknown kinds {bad}; choose from {list(KINDS)}")
        if any(not 0.0 <= w <= 1.0 for w in v.values()):
            raise ValueError("kind weights must be in [0, 1]")
        return v


class TaxiiSource(_Model):
    """One TAXII collection a partner serves: a poll of it is attributed to that partner."""

    url: str = Field(min_length=1)
    collection: str = Field(min_length=1)


class Partner(_Model):
    """A member of the sharing group, as this provider decided to trust it (never as a bundle describes itself)."""

    name: str = Field(min_length=1, max_length=128)
    #: Multiplies every indicator's confidence from this partner (0 ignores the partner, 1 takes it at its word).
    trust: float = Field(0.5, ge=0.0, le=1.0)
    #: Whether `--enforce` may turn this partner's evidence into enforcement rows (needs `enforce.allow` too).
    may_enforce: bool = False
    #: Collections this partner serves; `intel poll` of one of them stores the indicators under this partner.
    taxii: list[TaxiiSource] = Field(default_factory=list)


class ImportLimits(_Model):
    """What a partner may say: anything past these limits is refused (whole bundle) or rejected (one indicator)."""

    #: Bundle size in bytes; a larger file or TAXII pull is refused before parsing.
    max_bundle_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    #: STIX objects per bundle (indicators, relationships, identities, ...).
    max_objects: int = Field(50_000, ge=1)
    #: Indicator objects per bundle (repeats of one value count: they are collapsed only after this check).
    max_indicators: int = Field(10_000, ge=1)
    #: Narrowest-allowed IPv4 network an indicator may name: nothing broader than this prefix length.
    min_prefix_v4: int = Field(16, ge=0, le=32)
    #: The same for IPv6.
    min_prefix_v6: int = Field(32, ge=0, le=128)


class PollLimits(_Model):
    #: Pages fetched per `intel poll` run; the rest waits for the next run (incremental state is kept).
    max_pages: int = Field(100, ge=1)
    #: Wall-clock seconds per `intel poll` run (checked between pages).
    max_seconds: float = Field(300.0, gt=0)
    #: Connect / read timeout of each TAXII request, seconds.
    request_timeout_s: float = Field(30.0, gt=0)


class EnforceConfig(_Model):
    #: Intel never blocks on its own: `--enforce` writes enforcement rows only when this is true, the action is
    #: in `actions`, and every partner behind the account's boost has `may_enforce`. Otherwise the accounts become
    #: recommendations for review (`intel_recommendations`).
    allow: bool = False
    actions: list[Literal["throttle", "require_verification", "protect_reasoning", "block"]] = Field(
        default_factory=lambda: ["require_verification"])


class IntelConfig(_Model):
    provider: ProviderIdentity = Field(default_factory=ProviderIdentity)
    export: ExportConfig = Field(default_factory=ExportConfig)
    match: MatchConfig = Field(default_factory=MatchConfig)
    partners: list[Partner] = Field(default_factory=list)
    limits: ImportLimits = Field(default_factory=ImportLimits)
    poll: PollLimits = Field(default_factory=PollLimits)
    enforce: EnforceConfig = Field(default_factory=EnforceConfig)

    @field_validator("partners")
    @classmethod
    def _unique_partners(cls, v: list[Partner]) -> list[Partner]:
        names = [p.name for p in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"partner names must be unique; repeated: {dup}")
        return v

    def partner(self, name: str) -> Partner:
        """The configured partner called ``name``; an unknown name is an error, never a new partner."""
        for p in self.partners:
            if p.name == name:
                return p
        known = ", ".join(repr(p.name) for p in self.partners) or "none configured"
        raise ConfigError(f"unknown partner {name!r}: add it under intel.partners in the config (known: {known})")

    def partners_by_name(self) -> dict[str, Partner]:
        return {p.name: p for p in self.partners}


def load_config(path: str | Path | None) -> IntelConfig:
    """The ``intel`` section (file, then DISTILLGUARD_INTEL__* variables; docs/configuration.md)."""
    return load_section(IntelConfig, "intel", path)
