"""Reading YAML configuration files the same way in every stage.

Operators meet these errors first: a missing file, a YAML typo, or a misspelt key should each say
which file and which key, and list every problem at once rather than one per run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from pydantic import ValidationError

from distillguard.errors import ConfigError


def read_yaml_mapping(path: str | os.PathLike, what: str = "config", section: str | None = None) -> dict:
    """The top-level mapping of a YAML file (or its ``section`` when the file has one); {} for an empty file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} file not found", source=str(p))
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"not valid YAML: {e}", source=str(p)) from None
    if section is not None and isinstance(data, dict) and section in data:
        data = data[section]
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{what} must be a mapping of keys", source=str(p))
    return data


@contextmanager
def naming_the_key(source: str) -> Iterator[None]:
    """Turn a pydantic ValidationError into a ConfigError that names every offending key."""
    try:
        yield
    except ValidationError as e:
        problems = [f"key {'.'.join(str(x) for x in err['loc'])!r}: {err['msg']}" for err in e.errors()]
        raise ConfigError("; ".join(problems), source=source) from None
