"""The base of every scan configuration model: unknown keys are errors, so a misspelt threshold never silently
falls back to its default."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
