"""The policy document: which enforcement decisions and live signals lead to which gateway action.

Operators edit this YAML while the gateway runs, so it is validated strictly (unknown keys are
errors, messages name the dotted key path) and a bad edit is refused while the previous policy
stays in force.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from distillguard.errors import ConfigError

#: Enforcement/policy action names, as in docs/tables.md, from least to most severe.
ACTIONS = ("allow", "protect_reasoning", "throttle", "require_verification", "block")
Action = Literal["allow", "protect_reasoning", "throttle", "require_verification", "block"]
SEVERITY = {a: i for i, a in enumerate(ACTIONS)}
#: The short word each action is recorded as in exchanges.action.
RECORD_WORD = {"allow": "allow", "protect_reasoning": "protect", "throttle": "throttle",
               "require_verification": "verify", "block": "block"}
SUBJECT_TYPES = ("account", "cluster", "org", "ip24", "payment")
BINDING_STATES = ("valid", "unsigned", "altered", "foreign")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def live_signal_names() -> tuple[str, ...] | None:
    """The signals the gateway's request classifier scores, named as the ``exchange_signals`` columns
    (``sig_cot_elicitation``); None when the classifier cannot be imported (then names cannot be checked)."""
    try:
        from distillguard.signals.score import PROMPT_SIGNALS
    except ImportError:
        return None
    return PROMPT_SIGNALS


class SignalAbove(_Strict):
    """Fires when the request classifier's score ``name`` is at least ``above``.

    Names are checked at load against what the classifier really returns, so a rule on a signal
    that does not exist (and would silently never fire) is refused. When no classifier can be
    imported the condition is false: a missing signal never blocks anyone.
    """

    name: str
    above: float = Field(ge=0, le=1)

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        valid = live_signal_names()
        if valid is None:
            if not v.startswith("sig_"):
                raise ValueError(f"signal names start with sig_ (got {v!r})")
            return v
        if v not in valid:
            hint = f"; did you mean sig_{v}?" if f"sig_{v}" in valid else ""
            raise ValueError(f"unknown live signal {v!r}{hint} (valid: {', '.join(valid)})")
        return v


class When(_Strict):
    """Conditions of a rule; all that are set must hold."""

    enforcement_in: list[Action] | None = None
    signal: SignalAbove | None = None
    account_age_days_below: float | None = Field(None, gt=0)
    pathway_in: list[str] | None = None
    verification_below: int | None = Field(None, ge=0, le=4)
    region_in: list[str] | None = None
    reasoning_binding_in: list[Literal["unsigned", "altered", "foreign"]] | None = None
    reasoning_requested: bool | None = None
    model_in: list[str] | None = None
    endpoint_in: list[Literal["chat.completions", "responses", "messages"]] | None = None
    allowlisted: bool | None = None
    account_status_in: list[str] | None = None

    @model_validator(mode="after")
    def _not_empty(self):
        if not any(v is not None for v in self.__dict__.values()):
            raise ValueError("a rule's `when` needs at least one condition")
        if self.region_in is not None:
            self.region_in = [r.upper() for r in self.region_in]
        return self


class Rule(_Strict):
    name: str = Field(min_length=1)
    when: When
    action: Action
    reason: str | None = None
    #: Evaluate and log this rule but never let it change what happens (per-rule roll-out).
    shadow: bool = False
    #: Error code sent to the client when this rule blocks or asks for verification.
    error_code: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]*$")


class LeakCheck(_Strict):
    enabled: bool = True
    #: Length in words of the sequences compared between answer and hidden reasoning.
    ngram: int = Field(8, ge=3, le=64)
    #: Withhold the answer when at least this many of its n-grams appear in the reasoning.
    min_matches: int = Field(3, ge=1)


class ReasoningPolicy(_Strict):
    #: ``strip`` removes reasoning; ``summary`` replaces it with a short extractive summary.
    mode: Literal["strip", "summary"] = "strip"
    summary_chars: int = Field(160, ge=0, le=4000)
    leak_check: LeakCheck = LeakCheck()


class Policy(_Strict):
    version: Literal[1] = 1
    #: ``shadow``: decide and record everything, enforce nothing.
    mode: Literal["enforce", "shadow"] = "enforce"
    default_action: Action = "allow"
    #: Subject types whose rows in the ``enforcement`` table are applied.
    honour_enforcement: list[Literal["account", "cluster", "org", "ip24", "payment"]] = list(SUBJECT_TYPES)
    #: An ``allow`` row for an account exempts it from cluster/org/ip24/payment rows (analyst dismissal).
    account_allow_overrides: bool = True
    reasoning: ReasoningPolicy = ReasoningPolicy()
    rules: list[Rule] = []

    @model_validator(mode="after")
    def _unique_names(self):
        seen = set()
        for i, r in enumerate(self.rules):
            if r.name in seen:
                raise ValueError(f"rules.{i}.name: duplicate rule name {r.name!r}")
            seen.add(r.name)
        return self

    def needs_signals(self) -> set[str]:
        return {r.when.signal.name for r in self.rules if r.when.signal is not None}


DEFAULT_POLICY = Policy(rules=[
    Rule(name="reasoning-replay", when=When(reasoning_binding_in=["altered", "foreign"]), action="block",
         reason="request carries reasoning issued to another account or conversation, or altered",
         error_code="reasoning_signature_invalid"),
    Rule(name="suspended-account", when=When(account_status_in=["suspended", "banned"]), action="block",
         reason="account is not active", error_code="account_blocked"),
])


def _key_path(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def parse_policy(data, source: str = "<policy>") -> Policy:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("policy top level must be a mapping", source=source)
    try:
        return Policy.model_validate(data)
    except ValidationError as e:
        msgs = [f"{_key_path(err['loc'])}: {err['msg']}" for err in e.errors()]
        raise ConfigError("invalid policy: " + "; ".join(msgs), source=source) from None


def load_policy(path: str | os.PathLike) -> Policy:
    source = str(path)
    try:
        text = Path(path).read_text()
    except FileNotFoundError as e:
        raise ConfigError("policy file not found", source=source) from e
    if not text.strip():
        # An editor or `>` truncates before it writes: a reload that lands in between must not install an empty
        # policy (no rules) as if it were meant.
        raise ConfigError("policy file is empty (mid-write?); write `{}` for the built-in defaults", source=source)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"policy is not valid YAML: {e}", source=source) from e
    return parse_policy(data, source)
