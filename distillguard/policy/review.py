"""Which detections enforce by themselves and which wait for an analyst: the enforcement policy.

Detection writes *recommendations*; this policy decides, per action, whether a recommendation
applies at once (``auto``, above a confidence), waits for an analyst (``review``), is only
reported as what it would have done (``shadow``), or is ignored (``off``). The default lets the
cheap, reversible measures act alone — reasoning protection on the accounts, throttling of the
accounts and of clusters made of campaign members only — while blocking and verification demands wait for a person, because a wrong block of a
paying customer costs far more than a few hours of harvest.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from distillguard.policy.model import Action

Mode = Literal["auto", "review", "shadow", "off"]
Subject = Literal["account", "cluster", "org"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ActionRule(_Strict):
    #: ``auto``: applies when the campaign's confidence reaches ``min_confidence`` (below: awaits review);
    #: ``review``: only once an analyst confirms; ``shadow``: written as a shadow row the gateway reports
    #: ("would throttle") but does not apply; ``off``: not recommended at all.
    mode: Mode = "review"
    min_confidence: float = Field(0.0, ge=0, le=1)
    #: Which subjects of the campaign the action is written for. ``cluster`` rows are written only for
    #: clusters whose every account is a campaign member (a cluster row reaches all of them).
    subjects: list[Subject] = Field(default_factory=lambda: ["account"], min_length=1)


def _default_rules() -> dict[str, ActionRule]:
    return {
        "protect_reasoning": ActionRule(mode="auto", min_confidence=0.5, subjects=["account"]),
        "throttle": ActionRule(mode="auto", min_confidence=0.6, subjects=["account", "cluster"]),
        "require_verification": ActionRule(mode="review", subjects=["account"]),
        "block": ActionRule(mode="review", subjects=["account", "cluster"]),
    }


class EnforcementPolicy(_Strict):
    #: Milder actions recommended alongside a campaign's own recommended action while it waits for
    #: review (never one more severe than the recommended action).
    interim: list[Action] = Field(default_factory=lambda: ["protect_reasoning", "throttle"])
    #: Per action; actions not listed keep their default (``mode: off`` removes one).
    rules: dict[Action, ActionRule] = Field(default_factory=_default_rules)
    #: What a confirmed campaign's members get when the campaign is rescanned (new members included).
    confirmed_subjects: list[Subject] = Field(default_factory=lambda: ["account", "cluster"], min_length=1)

    @model_validator(mode="after")
    def _keep_defaults(self):
        self.rules = {**_default_rules(), **self.rules}
        return self

    def rule(self, action: str) -> ActionRule:
        return self.rules.get(action) or ActionRule()
