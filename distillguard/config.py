"""One configuration style for every stage: a YAML file, environment overrides, secrets by reference.

* **The file.** One YAML file may hold every stage's section (``scan:``, ``gateway:``, ``console:``,
  ``intel:``, ``taxii:``); a file with none of these top-level keys is one stage's section on its own (the
  per-stage files of earlier releases keep working). ``--config FILE`` names it; without it,
  ``$DISTILLGUARD_CONFIG``.
* **Environment overrides.** ``DISTILLGUARD_<SECTION>__<KEY>[__<SUBKEY>...]`` sets one key, nested with
  ``__`` (``DISTILLGUARD_GATEWAY__LIMITS__ACCOUNT__REQUESTS__RATE=1200``); lists and mappings as JSON. They
  beat the file; command-line options beat both. A misspelt variable under a section's prefix is an error,
  never silently ignored (why pydantic-settings' environment source is not used: it drops unknown names and
  cannot say which variable a bad value came from).
* **Secrets** are never written in the file: a secret key holds a reference ``${ENV_VAR}`` and the value is
  read from that variable (``upstream.api_key: ${OPENAI_API_KEY}``).

Operators meet these errors first: a missing file, a YAML typo, a misspelt key or variable should each say
which key and which source (file or environment variable), listing every problem at once.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, BeforeValidator, ValidationError, model_validator

from distillguard.errors import ConfigError

#: Top-level sections of the one configuration file (docs/configuration.md).
SECTIONS = ("scan", "gateway", "console", "intel", "taxii")
#: The configuration file used when a command gets no ``--config``.
CONFIG_ENV = "DISTILLGUARD_CONFIG"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")

M = TypeVar("M", bound=BaseModel)


class ConfigDeprecationWarning(FutureWarning):
    """A configuration form that still works in this release and will not in the next (shown by default)."""


def deprecated(old: str, new: str) -> None:
    """Warn once per use, attributed to the configuration rather than to a line of pydantic."""
    warnings.warn_explicit(f"{old} is deprecated and stops working in the next release; use {new}",
                           ConfigDeprecationWarning, filename="distillguard configuration", lineno=0)


def env_var(section: str, dotted: str) -> str:
    """The environment variable overriding ``dotted`` in ``section``: DISTILLGUARD_GATEWAY__SERVER__PORT."""
    return f"DISTILLGUARD_{section.upper()}__" + "__".join(p.upper() for p in dotted.split("."))


# ---------------------------------------------------------------------------- secrets by reference
def _check_ref(v: Any) -> Any:
    if v is None:
        return v
    if isinstance(v, str):
        if _REF.match(v):
            return v
        if v.startswith("env:") and _NAME.match(v[4:]):
            deprecated(f"the secret form 'env:{v[4:]}'", f"'${{{v[4:]}}}'")
            return "${" + v[4:] + "}"
    raise ValueError("a secret is given only as an environment reference '${ENV_VAR}', never its value")


#: A secret: the reference ``${ENV_VAR}``; the value is read from the variable when needed.
EnvRef = Annotated[str, BeforeValidator(_check_ref)]


def is_ref(v: Any) -> bool:
    return isinstance(v, str) and _REF.match(v) is not None


def ref_name(ref: str | None) -> str | None:
    """``DISTILLGUARD_KEY_PEPPER`` for ``${DISTILLGUARD_KEY_PEPPER}``."""
    return _REF.match(ref).group(1) if ref else None


def ref_value(ref: str | None) -> str | None:
    """The referenced variable's value; None when unset or empty."""
    name = ref_name(ref)
    return (os.environ.get(name) or None) if name else None


def renamed_env_key(old: str, new: str):
    """Accept the deprecated ``old: VAR`` (a key naming a variable) as ``new: ${VAR}`` for one release.

    Used in a model body: ``_compat = renamed_env_key("api_key_env", "api_key")``.
    """

    def _rename(cls, data: Any) -> Any:
        if isinstance(data, dict) and old in data:
            data = dict(data)
            var = data.pop(old)
            if new in data:
                raise ValueError(f"both {old!r} (deprecated) and {new!r} are set; keep {new!r}")
            deprecated(f"the key {old!r}", f"{new}: '${{{var}}}'")
            data[new] = None if var in (None, "") else f"${{{var}}}"
        return data

    return model_validator(mode="before")(classmethod(_rename))


# ---------------------------------------------------------------------------- the file
def read_yaml_mapping(path: str | os.PathLike, what: str = "config", section: str | None = None) -> dict:
    """The top-level mapping of a YAML file, or its ``section`` when the file is sectioned; {} when empty.

    A file is sectioned when its top level holds any of SECTIONS (then a missing section is {} and a
    top-level key that is no section is an error); otherwise the whole file is the one stage's section.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} file not found", source=str(p))
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"not valid YAML: {e}", source=str(p)) from None
    if section is not None and isinstance(data, dict) and any(k in SECTIONS for k in data):
        unknown = sorted(str(k) for k in data if k not in SECTIONS)
        if unknown:
            raise ConfigError(f"unknown section(s) {unknown} (sections: {', '.join(SECTIONS)})", source=str(p))
        data = data.get(section)
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{what} must be a mapping of keys", source=str(p))
    return data


def _put(data: dict, keys: list[str], value: Any) -> None:
    node = data
    for k in keys[:-1]:
        if not isinstance(node.get(k), dict):
            node[k] = {}
        node = node[k]
    node[keys[-1]] = value


def _env_value(raw: str) -> Any:
    """JSON/YAML for lists and mappings, ``null`` for None; anything else stays a string pydantic coerces."""
    s = raw.strip()
    if s[:1] in ("[", "{") and not is_ref(s):
        try:
            return yaml.safe_load(s)
        except yaml.YAMLError:
            return raw
    return None if s.lower() == "null" else raw


def env_overrides(section: str, environ: Mapping[str, str] | None = None) -> list[tuple[list[str], Any, str]]:
    """(key path, value, variable) for every DISTILLGUARD_<SECTION>__... variable set."""
    environ = os.environ if environ is None else environ
    prefix = f"DISTILLGUARD_{section.upper()}__"
    out = []
    for name in sorted(environ):
        if name.upper().startswith(prefix):
            keys = [k.lower() for k in name[len(prefix):].split("__")]
            if not all(keys):
                raise ConfigError(f"empty key in environment variable {name} (nest keys with one '__')")
            out.append((keys, _env_value(environ[name]), name))
    return out


def _describe(e: ValidationError, sources: dict[tuple, str], default_source: str) -> str:
    problems = []
    for err in e.errors():
        loc = tuple(str(x) for x in err["loc"])
        src = next((sources[loc[:i]] for i in range(len(loc), 0, -1) if loc[:i] in sources), None)
        if src is None:  # an unknown key set below ``loc`` (a misspelt variable): name what set it
            src = ", ".join(sorted({v for k, v in sources.items() if k[:len(loc)] == loc})) or default_source
        msg = err["msg"].removeprefix("Value error, ")
        problems.append(f"key {'.'.join(loc) or '(top level)'!r} ({src}): {msg}")
    return "; ".join(problems)


def load_section(model: type[M], section: str, path: str | os.PathLike | None = None, *,
                 what: str | None = None, overrides: Mapping[str, Any] | None = None,
                 layers: list[tuple[str, Mapping[str, Any]]] | None = None,
                 environ: Mapping[str, str] | None = None) -> M:
    """A stage's validated configuration: defaults < file < ``layers`` < environment < ``overrides``.

    ``overrides`` are command-line options by dotted key (None = not given); ``layers`` are (source, dotted
    mapping) pairs a stage adds between file and environment (deprecated forms). Every error names the key
    and where its value came from.
    """
    environ = os.environ if environ is None else environ
    what = what or f"{section} config"
    if path is None and environ.get(CONFIG_ENV):
        path = environ[CONFIG_ENV]
    data = read_yaml_mapping(path, what, section=section) if path is not None else {}
    default_source = f"file {path}" if path is not None else "defaults"
    sources: dict[tuple, str] = {}
    for source, mapping in layers or []:
        for dotted, value in mapping.items():
            _put(data, dotted.split("."), value)
            sources[tuple(dotted.split("."))] = source
    for keys, value, name in env_overrides(section, environ):
        _put(data, keys, value)
        sources[tuple(keys)] = f"environment variable {name}"
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _put(data, dotted.split("."), value)
            sources[tuple(dotted.split("."))] = "command line"
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_describe(e, sources, default_source)) from None


@contextmanager
def naming_the_key(source: str) -> Iterator[None]:
    """Turn a pydantic ValidationError into a ConfigError that names every offending key."""
    try:
        yield
    except ValidationError as e:
        problems = [f"key {'.'.join(str(x) for x in err['loc'])!r}: {err['msg']}" for err in e.errors()]
        raise ConfigError("; ".join(problems), source=source) from None
