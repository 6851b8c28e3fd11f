"""Intel configuration: validated data, every key documented in docs/intel.md.

Loaded from the ``intel:`` section (or the whole document) of a YAML file; every command also
takes the common keys as options, which override the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from distillguard.config import naming_the_key, read_yaml_mapping
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
    #: Ignore indicators below this confidence (0-100).
    min_confidence: int = Field(0, ge=0, le=100)

    @field_validator("kind_weights")
    @classmethod
    def _weights(cls, v: dict[str, float]) -> dict[str, float]:
        bad = [k for k in v if k not in KINDS]
        if bad:
            raise ValueError(f"unknown kinds {bad}; choose from {list(KINDS)}")
        if any(not 0.0 <= w <= 1.0 for w in v.values()):
            raise ValueError("kind weights must be in [0, 1]")
        return v


class IntelConfig(_Model):
    provider: ProviderIdentity = Field(default_factory=ProviderIdentity)
    export: ExportConfig = Field(default_factory=ExportConfig)
    match: MatchConfig = Field(default_factory=MatchConfig)


def load_config(path: str | Path | None) -> IntelConfig:
    if path is None:
        return IntelConfig()
    doc = read_yaml_mapping(path, "intel config", section="intel")
    with naming_the_key(str(path)):
        return IntelConfig.model_validate(doc)
