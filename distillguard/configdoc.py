"""Render docs/configuration.md from the configuration models, so the one reference cannot drift from the code.

Every key of every section is listed with its type, default, environment variable and meaning; the
meaning is the ``#:`` comment above the field (or the comment on its line) in the model's source.
Regenerate with ``python -m distillguard.configdoc``; a test fails when the page and the code disagree.
"""

from __future__ import annotations

import inspect
import json
import re
import sys
import types
import typing
from pathlib import Path

from pydantic import BaseModel, TypeAdapter

from distillguard.config import CONFIG_ENV, env_var

_FIELD = re.compile(r"^\s{4}([a-z_][a-z0-9_]*)\s*:")
_INLINE = re.compile(r"#\s*(?!noqa)(.+)$")

#: Meanings of keys whose model field has no ``#:`` comment (kept here so the models' files stay as they are);
#: by ``section:key`` or by the key's last parts (``requests.rate``). New keys get a ``#:`` comment instead.
MEANINGS = {
    "requests.rate": "requests allowed per `per_seconds` (GCRA; unset: no request limit in this dimension)",
    "requests.per_seconds": "the window of `requests.rate`",
    "requests.burst": "requests allowed at once (default: `rate`)",
    "tokens.rate": "tokens (input estimate + output) allowed per `per_seconds` (unset: no token limit)",
    "tokens.per_seconds": "the window of `tokens.rate`",
    "tokens.burst": "tokens allowed at once (default: `rate`)",
    "scan:graph.kind_weights": "weight of each entity kind in the coordination graph (0 = kind off)",
    "scan:graph.min_entity_count": "... or at least this many of its exchanges",
    "scan:graph.common_entity_quantile": "... the suspicion quantile such a common entity's accounts must reach to be kept",
    "scan:graph.dense_epsilon": "batch-peeling slack of the dense-block search",
    "scan:graph.seed": "random seed of Leiden and of ring sampling (with the order-independent sums, "
                       "two scans of one store give the same results)",
    "scan:scoring.account_model.bias": "bias of the account model: suspicion = σ(bias + Σ weight·component)",
    "scan:scoring.account_model.weights": "weight per component: `intent`, `capability`, `task_items`, `reasoning`, "
                                          "`single_turn`, `template_reuse`, `limit_util`, `volume`, `long_output`, "
                                          "`harvest_shape`, `received_output`, `new_account`, `low_verification`, `fast_pivot` "
                                          "(unknown names are errors)",
    "scan:scoring.weak_coordination_cap": "coordination cap of a cluster that is not strongly coordinated",
    "scan:campaigns.enforcement.rules.<name>.min_confidence": "`auto`: the campaign confidence from which the action applies by itself",
    "scan:alerts.timeout_s": "seconds per webhook request",
    "scan:threads": "DuckDB threads of the scan",
    "scan:temp_free_margin": "space left free on the spill disk when `temp_max_size` is null",
    "gateway:server.host": "address to listen on (`--host` overrides)",
    "gateway:server.port": "port to listen on (`--port` overrides)",
    "gateway:server.max_request_bytes": "request body size; 413 above",
    "gateway:server.graceful_timeout_s": "on shutdown, seconds open requests may take to finish",
    "gateway:upstream.url": "base URL of the model API, including `/v1`; the client's path after `/v1` is appended",
    "gateway:upstream.connect_timeout_s": "seconds to open a connection to the upstream",
    "gateway:upstream.max_connections": "upstream connections open at once (the pool)",
    "gateway:upstream.max_keepalive": "idle upstream connections kept for reuse",
    "gateway:upstream.keepalive_expiry_s": "idle upstream connections are closed after this",
    "gateway:upstream.ready_path": "`/readyz` asks the upstream `GET <url><ready_path>` (< 500 = up)",
    "gateway:upstream.ready_timeout_s": "timeout of that readiness request",
    "gateway:upstream.ready_cache_s": "seconds a readiness answer is reused",
    "gateway:identity.forwarded_header": "header trusted proxies put the client address in",
    "gateway:limits.enabled": "rate limits on (false: only the policy's block / require-verification act)",
    "gateway:limits.redis_url": "Redis of the shared limiter (`backend: redis`)",
    "gateway:limits.key_prefix": "prefix of the limiter's Redis keys",
    "gateway:limits.redis_timeout_ms": "longest wait for Redis per request before `on_redis_error` applies",
    "gateway:limits.redis_retry_seconds": "how often an unreachable Redis is tried again",
    "gateway:limits.backend": "`memory`: each replica limits on its own; `redis`: one shared bucket per subject across replicas",
    "gateway:recorder.mode": "`spool`: fsync'd local segments compacted into the store; `redis`: a Redis stream read by `gateway-writer`",
    "gateway:logging.level": "log level of the gateway process",
    "console:users[].role": "`viewer` reads, `analyst` also decides, `admin` also manages allow-lists and standing decisions",
    "console:tokens[].role": "the token's role (as for users)",
    "intel:provider.identity_class": "STIX identity class of the exporting provider",
    "intel:export.tlp": "TLP marking of exported bundles",
    "intel:enforce.actions": "actions `--enforce` may write (with `allow` and partners' `may_enforce`)",
    "gateway:recorder.enabled": "record every exchange (false: nothing is recorded; `gateway-check` runs so)",
    "gateway:recorder.flush_interval_ms": "the group-commit window (batch durability): at most this long between admission and fsync",
    "gateway:recorder.batch_max": "records per group commit at most",
    "gateway:recorder.segment_max_bytes": "a spool segment is closed (and compacted) at this size; bounds a compaction's memory",
    "gateway:recorder.segment_max_seconds": "... or at this age",
    "gateway:recorder.redis_url": "Redis of the recording stream (`mode: redis`)",
    "gateway:recorder.redis_stream": "the stream `gateway-writer` / `watch` read",
    "gateway:recorder.redis_maxlen": "approximate length the stream is trimmed to",
    "gateway:recorder.full_wait_ms": "when the queue is full, a new request waits this long for room, then 503 `recorder_unavailable`",
    "gateway:binding.enabled": "HMAC-bind every reasoning block the gateway returns (a replayed or forged block is refused)",
    "gateway:signup.enabled": "serve `POST /v1/accounts/assess`",
    "gateway:signup.common_min": "... and held by more than this many accounts",
    "gateway:signup.burst_min": "... sign-ups that make a burst",
    "gateway:clusters_file": "account clusters from a Parquet/JSONL file (`account_id`, `cluster_id`)",
    "gateway:enforcement_redis_prefix": "key prefix of that snapshot in Redis",
    "console:users": "who logs in with a password: `{name, role, password_hash}` (hash from `distillguard console-hash`)",
    "console:users[].name": "user name",
    "console:users[].password_hash": "scrypt hash from `distillguard console-hash`; plain text is refused",
    "console:tokens": "who logs in with a token (empty user name): `{name, role, token_hash}`",
    "console:tokens[].name": "token name (shown in the audit log)",
    "console:tokens[].token_hash": "scrypt hash of the token",
    "console:host": "address to listen on (`--host` overrides)",
    "console:port": "port to listen on (`--port` overrides)",
    "console:session_max_age_s": "absolute session lifetime in seconds",
    "console:session_idle_s": "a session unused this long is over",
    "console:cookie_secure": "mark the cookie `Secure` and send HSTS (set when served over HTTPS)",
    "console:login_max_failures": "login attempts per client address within `login_window_s`, then 429",
    "console:login_max_failures_per_user": "the same per user name across all addresses",
    "console:login_window_s": "the window of the login limits",
    "console:trusted_proxies": "reverse proxies whose `X-Forwarded-For` is believed (docs/console.md)",
    "console:allow_days": "expiry (days) of the allow entries a dismiss writes; null = until changed",
    "console:text_scan_rows": "most exchanges a prompt-text search reads (newest days first)",
    "console:sample_prompts": "sample prompts kept and shown per campaign",
    "console:account_samples": "recent prompts kept per account",
    "intel:provider.name": "the exporting provider's name (the STIX identity's id is derived from it)",
    "intel:provider.sectors": "STIX identity sectors",
    "intel:provider.contact_information": "STIX identity contact",
    "intel:export.kinds": "indicator kinds exported",
    "intel:export.skeleton_min_share": "a template's skeleton keeps shingles present in at least this share of its prompts",
    "intel:export.include_note": "attach a note with the campaign's evidence in words",
    "intel:match.skeleton_min_share": "the same, for the local side of a template match",
    "intel:match.min_prompts": "local prompts a template group needs before it is matched",
    "intel:partners": "the sharing group's members, as this provider trusts them",
    "intel:partners[].name": "the partner's name (unique; `intel import --partner NAME`)",
    "intel:partners[].taxii[].url": "TAXII API root URL",
    "intel:partners[].taxii[].collection": "collection id",
    "taxii:title": "server title (discovery)",
    "taxii:description": "server description (discovery)",
    "taxii:contact": "contact shown in discovery",
    "taxii:api_root": "path segment of the single API root",
    "taxii:collections": "collections served",
    "taxii:collections[].id": "collection UUID",
    "taxii:collections[].title": "collection title",
    "taxii:collections[].description": "collection description",
    "taxii:collections[].alias": "a second name the collection answers to",
    "taxii:users": "basic-auth users: name → password reference `${ENV_VAR}`",
    "taxii:tokens": "bearer tokens, each a reference `${ENV_VAR}`",
    "taxii:allow_anonymous": "serve without credentials (the server refuses to start with none otherwise)",
    "taxii:max_page_size": "objects per page at most (a client's `limit` is capped)",
    "taxii:max_content_length": "largest response body announced in the API root information",
}


def _fallback(section: str, key: str) -> str:
    if f"{section}:{key}" in MEANINGS:
        return MEANINGS[f"{section}:{key}"]
    parts = key.split(".")
    return next((MEANINGS[".".join(parts[i:])] for i in range(len(parts)) if ".".join(parts[i:]) in MEANINGS), "")


def sections() -> list[tuple[str, type[BaseModel], str]]:
    """(section, model, what it configures) for every section of the file."""
    from distillguard.console.config import ConsoleSettings
    from distillguard.gateway.config import GatewayConfig
    from distillguard.intel.config import IntelConfig
    from distillguard.intel.taxii import TaxiiConfig
    from distillguard.scan.config import ScanConfig

    return [
        ("scan", ScanConfig, "detection: `scan`, `watch` (thresholds, the account model, review before "
                             "enforcement, alerts, resources)"),
        ("gateway", GatewayConfig, "the inline gateway, `gateway-check` and the LiteLLM guardrail"),
        ("console", ConsoleSettings, "the investigation console (`console`)"),
        ("intel", IntelConfig, "indicator sharing (`intel export/import/match/poll/apply`)"),
        ("taxii", TaxiiConfig, "the TAXII 2.1 server (`intel serve`)"),
    ]


def _comments(model: type[BaseModel]) -> dict[str, str]:
    """Field name -> its ``#:`` comment block (or same-line comment), over the model's classes."""
    out: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        try:
            lines = inspect.getsource(cls).splitlines()
        except (OSError, TypeError):
            continue
        block: list[str] = []
        for line in lines[1:]:
            s = line.strip()
            if s.startswith("#:"):
                block.append(s[2:].strip())
                continue
            m = _FIELD.match(line)
            if m and not line.startswith("     "):
                text = " ".join(block)
                if not text and (im := _INLINE.search(line.split("=", 1)[-1])) and '"' not in im.group(1)[:1]:
                    text = im.group(1).strip()
                if text:
                    out[m.group(1)] = text
            if not s.startswith("#"):
                block = []
    return out


def _inner_model(ann) -> tuple[str, type[BaseModel]] | None:
    """('', M) for M or M | None; ('<name>', M) for dict[str, M]; ('[]', M) for list[M]."""
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return "", ann
    if origin in (typing.Union, types.UnionType):
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        return ("", models[0]) if len(models) == 1 else None
    if origin is dict and len(args) == 2 and isinstance(args[1], type) and issubclass(args[1], BaseModel):
        return "<name>", args[1]
    if origin is list and args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        return "[]", args[0]
    return None


def _type(ann) -> str:
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is typing.Annotated:
        return "secret `${ENV_VAR}`" if any("check_ref" in repr(a) for a in args[1:]) else _type(args[0])
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        parts = [_type(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if origin is list:
        return f"list of {_type(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping {_type(args[0])} → {_type(args[1])}" if args else "mapping"
    if ann is typing.Any:
        return "any"
    name = getattr(ann, "__name__", str(ann))
    return {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "Path": "path",
            "SecretStr": "secret `${ENV_VAR}`", "PosixPath": "path"}.get(name, name)


_UNSET = object()


def _default(field, value=_UNSET) -> str:
    """The default as JSON; ``value`` is the key's value in its parent's default (limits.account → 600)."""
    if value is _UNSET:
        if field.is_required():
            return "required"
        value = field.get_default(call_default_factory=True)
    try:
        value = TypeAdapter(field.annotation).dump_python(value, mode="json")
    except Exception:  # noqa: BLE001 - an annotation TypeAdapter cannot take: show the value as it is
        value = str(value)
    text = json.dumps(value, default=str, ensure_ascii=False)
    text = text if len(text) <= 90 else text[:87] + "…"
    return "`" + text.replace("|", "\\|") + "`"


def rows(section: str, model: type[BaseModel], prefix: str = "", env_ok: bool = True,
         inst: BaseModel | None = None) -> list[str]:
    """One table row per key under ``prefix``; ``inst`` is the parent's default value of this part (or None)."""
    out = []
    docs = _comments(model)
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        inner = _inner_model(field.annotation)
        value = getattr(inst, name) if inst is not None else _UNSET
        meaning = docs.get(name, field.description or "") or _fallback(section, key)
        env = f"`{env_var(section, key.replace('<name>', '<NAME>'))}`" if env_ok else "—"
        if inner and inner[0] == "":
            if value is _UNSET and not field.is_required():
                value = field.get_default(call_default_factory=True)
            if meaning:
                out.append(f"| **`{key}`** | section | | | {meaning} |")
            out += rows(section, inner[1], key + ".", env_ok, value if isinstance(value, BaseModel) else None)
            continue
        meaning = meaning.replace("|", "\\|").replace("\n", " ")
        secret = any("check_ref" in repr(m) for m in field.metadata) or "SecretStr" in repr(field.annotation)
        typ = "secret `${ENV_VAR}`" + (" or null" if field.default is None else "") if secret else _type(field.annotation)
        out.append(f"| `{key}` | {typ} | {_default(field, value)} | {env} | {meaning} |")
        if inner:
            sub = f"{key}.<name>." if inner[0] == "<name>" else f"{key}[]."
            out += rows(section, inner[1], sub, env_ok and inner[0] == "<name>")
    return out


HEAD = f"""# Configuration reference

Generated from the configuration models by `python -m distillguard.configdoc`; a test fails when this page
and the code disagree. Every stage is configured the same way:

1. **One YAML file** with one section per stage: `scan`, `gateway`, `console`, `intel`, `taxii`. Commands take it
   with `--config FILE` (each reads its own section); without `--config`, `${CONFIG_ENV}` names it. A file with
   none of these top-level keys is read as the one section of the command that loads it (the per-stage files of
   earlier releases keep working). A top-level key that is no section is an error.
2. **Environment overrides**: `DISTILLGUARD_<SECTION>__<KEY>`, nested keys joined by `__`
   (`DISTILLGUARD_GATEWAY__LIMITS__ACCOUNT__REQUESTS__RATE=1200`); lists and mappings as JSON
   (`DISTILLGUARD_GATEWAY__IDENTITY__TRUSTED_PROXIES='["10.0.0.0/8"]'`), `null` for none. A variable under a
   section's prefix that names no key is an error, never ignored.
3. **Secrets only by environment reference**: a secret key holds `${{ENV_VAR}}` and the value is read from that
   variable (`upstream.api_key: ${{OPENAI_API_KEY}}`); writing the secret itself is refused (the console's
   `secret_key` and TAXII `users`/`tokens` still accept it for one release, with a warning).
4. **Precedence**: defaults < file < environment < command-line options.
5. **Errors** name every offending key and where its value came from, at once:
   `key 'limits.acount' (environment variable DISTILLGUARD_GATEWAY__LIMITS__ACOUNT__REQUESTS__RATE): ...;
   key 'threads' (file distillguard.yaml): ...`. A missing file, a YAML syntax error or a top level that is not a
   mapping names the file. Exit code 2.

```yaml
# distillguard.yaml — one file for every stage (each key optional)
scan:
  scoring: {{min_evidence_groups: 2}}
  alerts: {{webhook_url: "${{DISTILLGUARD_ALERT_WEBHOOK}}"}}
gateway:
  upstream: {{url: "https://api.example.com/v1", api_key: "${{UPSTREAM_API_KEY}}"}}
  limits: {{backend: redis, account: {{requests: {{rate: 600}}}}}}
console:
  secret_key: "${{DISTILLGUARD_CONSOLE_SECRET_KEY}}"
intel:
  export: {{tlp: amber}}
taxii:
  tokens: ["${{PARTNER_B_TOKEN}}"]
```

## Deprecated forms (work in this release, with a warning naming the new form)

| old | new |
|---|---|
| `upstream.api_key_env: VAR` | `upstream.api_key: ${{VAR}}` |
| `identity.pepper_env: VAR` | `identity.pepper: ${{VAR}}` |
| `binding.secret_env: VAR` | `binding.secret: ${{VAR}}` |
| `signup.token_env: VAR` | `signup.token: ${{VAR}}` |
| `alerts.webhook_url_env: VAR` (scan) | `alerts.webhook_url: ${{VAR}}` |
| `"env:VAR"` (TAXII `users`, `tokens`; any secret key) | `"${{VAR}}"` |
| `"file:PATH"` or the secret itself (TAXII `users`, `tokens`), `secret_key: <key>` (console) | `"${{VAR}}"` |
| `DISTILLGUARD_CONSOLE_<KEY>` | `DISTILLGUARD_CONSOLE__<KEY>` (`DISTILLGUARD_CONSOLE_SECRET_KEY` stays: it is the variable `secret_key` refers to by default) |

## Configured elsewhere

| what | where | reference |
|---|---|---|
| ingest | `distillguard ingest PATH... --store DIR --format auto\\|native\\|accounts\\|openai\\|anthropic\\|litellm\\|otel` | [ingest.md](ingest.md) |
| your own log format | mapping YAML (`ingest --map FILE`): `fields`, `constants`, `timestamp_formats`, `format`, `csv`, `keep_unmapped` | [ingest.md](ingest.md#your-own-log-format---map-file) |
| policy | policy YAML (`gateway.policy`; hot-reloaded; `signal` names = `exchange_signals` columns) | [gateway.md](gateway.md) |
| LiteLLM guardrail | LiteLLM `config.yaml` (`guardrails:` entry: `distillguard_config` = this file, `account_from`, `org_from`) | [deploy/litellm.md](deploy/litellm.md) |
| simulated worlds | world YAML (`simulate --config`; a world description, not a stage's configuration) | [simulator.md](simulator.md) |
| continuous detection | `watch` options (interval, Redis stream, publishing) + the `scan` section | [detection.md](detection.md#continuous-detection-distillguard-watch) |
| the store | `--store DIR` on every command; `ingest` and `simulate` create it, every other command refuses a directory without `store.json` | [architecture.md](architecture.md#the-store) |
| process-wide variables | `DISTILLGUARD_CACHE` (lexical model cache), `DISTILLGUARD_TASKSETS` (extra task sets), `DISTILLGUARD_INTEL_GROUP_KEY[_FILE]` (sharing-group key), `DISTILLGUARD_LITELLM_CONFIG` | [signals.md](signals.md), [intel.md](intel.md) |

Secrets referred to by default: `DISTILLGUARD_KEY_PEPPER` (`gateway.identity.pepper`; else the pepper file),
`DISTILLGUARD_REASONING_SECRET` (`gateway.binding.secret`), `DISTILLGUARD_ASSESS_TOKEN` (`gateway.signup.token`),
`DISTILLGUARD_ALERT_WEBHOOK` (`scan.alerts.webhook_url`), `DISTILLGUARD_CONSOLE_SECRET_KEY` (`console.secret_key`).
"""

TAIL = """
## Stores on object storage

`--store s3://BUCKET/PREFIX` (also `gs://`, `abfs://`) for `ingest`, `stats`, `export`, `scan`, `signals` and
`console`; credentials, endpoint and the storage layer's environment variables (`DISTILLGUARD_SCRATCH`,
`DISTILLGUARD_LOCK_WAIT`, `DISTILLGUARD_SYNC_INTERVAL`) are in [object-storage.md](object-storage.md).

## Exit codes (every command)

| code | meaning |
|---|---|
| 0 | success |
| 1 | not done, nothing lost: an internal error (one line; rerun with `--debug` for the traceback), a retry-later state (`gateway-compact`: a spool segment left in place), or `console-verify-audit` finding the audit log broken (the problems are printed) |
| 2 | bad usage, bad configuration or unreadable input (the message names the file/key); a command whose optional stage is not installed (the message names the extra) |
| 3 | finished, but some records were quarantined (see `STORE/quarantine/`) |

The codes are `EXIT_*` in `distillguard/cli.py`. Errors go to stderr; with `--json`, stdout holds exactly one
JSON document. Commands with `--json`: `ingest`, `stats`, `export`, `baseline`, `scan`, `bench`, `gateway-demo`,
`gateway-keys` (`{key_id, account, org, keys_file, key}`; `key` only when generated), `gateway-writer`
(`{exchanges, store}`), `intel keygen` (`{key_file, key_id}`, never the key), `intel publish`
(`{published, collection}`), `intel export/import/match/poll`. Off a terminal, output is plain and full width.
"""


def render() -> str:
    parts = [HEAD, "## The keys", ""]
    parts += ["| section | configures | variables |", "|---|---|---|"]
    for section, _, what in sections():
        parts.append(f"| [`{section}`](#{section}) | {what} | `DISTILLGUARD_{section.upper()}__*` |")
    parts.append("")
    for section, model, _ in sections():
        parts += [f"### {section}", "", "| key | type | default | environment variable | meaning |",
                  "|---|---|---|---|---|"]
        parts += rows(section, model)
        parts.append("")
    return "\n".join(parts) + TAIL


def main(argv: list[str]) -> int:
    """An argument that looks like an option is refused, so `--help` never becomes a file of that name."""
    if any(a.startswith("-") for a in argv):
        print("usage: python -m distillguard.configdoc [OUT.md]\n"
              "Render the configuration reference (default: docs/configuration.md).")
        return 0 if set(argv) <= {"-h", "--help"} else 2
    if len(argv) > 1:
        print("usage: python -m distillguard.configdoc [OUT.md]", file=sys.stderr)
        return 2
    out = Path(argv[0]) if argv else Path(__file__).parents[1] / "docs" / "configuration.md"
    out.write_text(render())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
