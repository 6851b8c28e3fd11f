"""The world config: a validated description of who sends what, when, from where.

Everything a benchmark world varies is data here, not code, so a reviewer can read a world file and
know what the detector was tested against, and a user can build worlds from prompt files this
project never saw. Unknown keys are errors (a misspelt knob silently ignored would make a benchmark
measure something other than what its author meant).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from distillguard.errors import ConfigError
from distillguard.events.schema import ENDPOINTS, SIGNUP_PATHWAYS

DATA_DIR = Path(__file__).parent / "data"
WORLDS_DIR = DATA_DIR / "worlds"


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


Weights = dict[str, float]


def _check_weights(v: dict, what: str) -> dict:
    if not v:
        return v
    if any(w < 0 for w in v.values()):
        raise ValueError(f"{what} weights must be >= 0")
    if sum(v.values()) <= 0:
        raise ValueError(f"{what} weights must not all be 0")
    return v


class PromptFileSpec(_M):
    """A prompt file with a filter: only the items of some categories (e.g. one subject of a corpus)."""

    path: str = Field(..., description="JSONL (a 'text' field per line) or plain text file.")
    categories: list[str] = Field(..., min_length=1, description="Keep lines whose category field is one of these.")
    category_field: str = Field("category", description="JSONL field holding the category.")


def _check_countries(v: dict) -> dict:
    from distillguard.sim.identity import TZ_HOURS

    bad = [k for k in v if k not in TZ_HOURS]
    if bad:
        raise ValueError(f"unknown country code(s) {bad} (no time zone known); choose from {sorted(TZ_HOURS)}")
    return _check_weights(v, "country")


class ModelSpec(_M):
    """A model served during the span; one with ``released`` inside the span is the new model."""

    name: str = Field(..., description="Model id as clients request it.")
    share: float = Field(1.0, ge=0, description="Traffic weight among models available at the start.")
    released: datetime | None = Field(None, description="Release time; null = available before the span starts.")
    benign_adoption_hours: float = Field(72.0, gt=0, description="Time constant of ordinary users moving to it.")
    benign_max_share: float = Field(0.5, ge=0, le=1, description="Share of ordinary traffic it reaches eventually.")
    reasoning: Literal["visible", "summarized", "hidden"] = Field(
        "visible", description="What the API returns of reasoning: all of it, a summary, or only its length.")


class ProxyPoolSpec(_M):
    """A pool of client IPs (a proxy service, a cloud range, a NAT)."""

    kind: Literal["datacenter", "residential", "mobile", "campus"] = Field("residential", description="Which ASNs the IPs come from.")
    size: int = Field(100, ge=1, description="Number of distinct IPs in the pool.")
    asns: list[int] | None = Field(None, description="Restrict to these ASNs (from the built-in ASN table).")
    prefixes_24: int | None = Field(None, ge=1, description="Concentrate the IPs in this many /24 prefixes.")


class NetworkSpec(_M):
    """Where an account's requests come from."""

    pool: str | None = Field(None, description="Name of a world-level proxy_pools entry (shared by groups).")
    kind: Literal["datacenter", "residential", "mobile", "campus"] = Field("residential", description="ASN kind of the group's own IPs (ignored with pool).")
    size: int | None = Field(None, ge=1, description="Own pool size; default = one or two IPs per account.")
    prefixes_24: int | None = Field(None, ge=1, description="Own pool: crowd the IPs into this many /24s.")
    asns: list[int] | None = Field(None, description="Own IPs: restrict to these ASNs.")
    rotation: Literal["sticky", "per_day", "per_session", "per_request"] = Field(
        "sticky", description="How often an account changes IP within the pool.")
    ips_per_account: int = Field(2, ge=1, le=64, description="IPs each account rotates over (own IPs, or with "
                                 "match_country its slice of the pool).")
    match_country: bool = Field(False, description="pool: each account rotates over ips_per_account IPs of the "
                                "pool in its own country (a residential proxy's country targeting) instead of the "
                                "whole pool.")


class ClientStackSpec(_M):
    """A client stack a world defines itself (a popular tool, an agent framework, a platform's relay)."""

    user_agent: str = Field(..., min_length=1, description="User-Agent template; {v} is replaced by the version.")
    sdk_name: str = Field(..., min_length=1, description="sdk_name written with it.")
    versions: list[str] = Field(..., min_length=1, description="Versions drawn uniformly per account.")
    tls_family: Literal["py", "node", "curl", "go", "chrome", "java", "dotnet"] = Field(
        "py", description="HTTP library family: decides the TLS (JA4) fingerprint, shared with real stacks of "
        "that family.")


class ClientSpec(_M):
    stacks: Weights = Field(default_factory=dict, description="Client stack name → weight (built-in table); "
                                                              "empty = the general population mix.")
    custom_share: float = Field(0.0, ge=0, le=1, description="Share of accounts on the group's own modified "
                                "client: a real stack's user agent with its own TLS/header fingerprint.")
    endpoints: Weights = Field(default_factory=lambda: {"chat.completions": 0.6, "responses": 0.25, "messages": 0.15},
                               description="Endpoint → weight; each account mostly uses one (batch sets batch_id).")
    stream_share: float = Field(0.5, ge=0, le=1, description="Share of accounts that stream responses.")

    @field_validator("endpoints")
    @classmethod
    def _ep(cls, v):
        bad = [k for k in v if k not in ENDPOINTS]
        if bad:
            raise ValueError(f"unknown endpoint(s) {bad}; choose from {list(ENDPOINTS)}")
        return _check_weights(v, "endpoint")


class CreationSpec(_M):
    """When accounts were created, relative to the span start (days, negative = before)."""

    from_day: float = Field(-400, description="Earliest creation day (relative to start; negative = before).")
    to_day: float = Field(0, description="Latest creation day; accounts created in the span start sending then.")
    bursts: int = Field(0, ge=0, description="0 = spread evenly; N = created in N bursts.")
    burst_hours: float = Field(2.0, gt=0, description="Width of one burst.")


class PaymentSpec(_M):
    mode: Literal["unique", "org", "pool", "none"] = Field(
        "unique", description="unique per account, one per org, a reused pool of instruments, or none on file.")
    instruments: int = Field(1, ge=1, description="pool: number of instruments shared by the accounts.")
    reuse_share: float = Field(1.0, ge=0, le=1, description="pool: share of accounts paying with a pooled "
                               "instrument; the rest have their own card (rare card reuse = a small share).")
    none_share: float = Field(0.0, ge=0, le=1, description="Share of accounts with no payment on file.")


class IdentitySpec(_M):
    """Sign-up facts; attackers and ordinary users draw them from the same generators."""

    email_domains: Literal["consumer", "corporate", "university", "disposable", "mixed", "org"] | list[str] = Field(
        "mixed", description="Domain generator (mixed = the general population; org = one generated domain per org) "
        "or an explicit list of domains.")
    email_pattern: Weights = Field(default_factory=lambda: {"firstlast": 0.35, "first_digits": 0.3, "handle": 0.25,
                                                            "random": 0.1},
                                   description="Local-part style → weight: firstlast, first_digits, handle, random, "
                                   "student_id (sequential ids), stem_seq (one stem + increasing numbers).")
    countries: Weights = Field(default_factory=dict, description="ISO country → weight; empty = global mix.")
    pathway: Weights = Field(default_factory=lambda: {"standard": 0.9, "free_trial": 0.1},
                             description="Sign-up pathway → weight (schema SIGNUP_PATHWAYS).")
    verification: dict[int, float] = Field(default_factory=lambda: {0: 0.15, 1: 0.45, 2: 0.35, 3: 0.05},
                                           description="Verification level (0 e-mail … 3 KYC) → weight.")
    payment: PaymentSpec = Field(default_factory=PaymentSpec)
    created: CreationSpec = Field(default_factory=CreationSpec)
    orgs: Literal["per_account", "single", "pool"] = Field("per_account", description="One org per account, one "
                                                           "org for the whole group, or a pool of org_count orgs.")
    org_count: int = Field(1, ge=1, description="orgs=pool: number of orgs the accounts are spread over.")
    tier: str = Field("tier-2", description="Plan name written to accounts.tier.")
    rpm_limit: int = Field(500, ge=1, description="Requests-per-minute limit on the account.")
    rpd_limit: int = Field(10_000, ge=1, description="Requests-per-day limit; daily volume never exceeds it.")
    keys_per_account: int = Field(2, ge=1, le=20, description="Most API keys an account uses.")

    @field_validator("email_pattern")
    @classmethod
    def _pat(cls, v):
        from distillguard.sim.identity import EMAIL_PATTERNS

        bad = [k for k in v if k not in EMAIL_PATTERNS]
        if bad:
            raise ValueError(f"unknown e-mail pattern(s) {bad}; choose from {list(EMAIL_PATTERNS)}")
        return _check_weights(v, "email_pattern")

    @field_validator("countries")
    @classmethod
    def _countries(cls, v):
        return _check_countries(v)

    @field_validator("pathway")
    @classmethod
    def _pw(cls, v):
        bad = [k for k in v if k not in SIGNUP_PATHWAYS]
        if bad:
            raise ValueError(f"unknown pathway(s) {bad}; choose from {list(SIGNUP_PATHWAYS)}")
        return _check_weights(v, "pathway")


class TimingSpec(_M):
    mode: Literal["diurnal", "flat", "synchronized", "shifted", "jittered", "business_hours"] = Field(
        "diurnal", description="diurnal: local waking hours; flat: round the clock; synchronized: every account "
        "in the same windows; shifted: same windows, a fixed offset per account; jittered: same windows, noise per request.")
    windows_per_day: int = Field(6, ge=1, le=96, description="synchronized/shifted/jittered: activity windows a day "
                                 "(drawn afresh each day, shared by the group).")
    window_minutes: float = Field(30.0, gt=0, description="Length of one window.")
    shift_minutes: float = Field(90.0, ge=0, description="shifted: spread of the per-account offsets.")
    jitter_minutes: float = Field(20.0, ge=0, description="jittered: per-request noise (standard deviation).")
    session_gap_minutes: float = Field(30.0, gt=0, description="A pause longer than this starts a new session.")
    session_requests: float = Field(4.0, ge=1, description="Mean requests per conversation (each account has "
                                    "its own typical length); a new conversation also starts after a pause.")
    window_hours: list[float] | None = Field(None, description="synchronized/shifted/jittered: fixed window start "
                                             "hours (UTC, 0-24) used every day instead of fresh draws (a lab "
                                             "timetable, a nightly eval job).")
    account_jitter_minutes: float = Field(0.0, ge=0, description="Each account's windows move by its own random "
                                          "offset, drawn afresh per account and day (standard deviation), so no "
                                          "two accounts share a schedule exactly.")
    weekdays_only: bool = Field(False, description="No traffic on Saturdays and Sundays (a course, an office).")

    @field_validator("window_hours")
    @classmethod
    def _wh(cls, v):
        if v is not None and (not v or any(h < 0 or h >= 24 for h in v)):
            raise ValueError("window_hours must be a non-empty list of hours in [0, 24)")
        return v


class RateSpec(_M):
    per_account_day: float | None = Field(None, gt=0, description="Mean requests per active account-day.")
    active_share: float = Field(1.0, gt=0, le=1, description="Share of days an account is active.")
    dispersion: float = Field(1.0, gt=0, description="Gamma shape of per-account volume (small = heavy tail).")
    limit_fraction: float = Field(0.95, gt=0, le=1, description="Daily volume is planned to stay under this "
                                  "share of rpd_limit (the provider's limit itself is a hard cap).")
    at_limit: bool = Field(False, description="Each active account runs at limit_fraction × rpd_limit; the share "
                           "of active account-days follows from the total exchanges (a hydra's rotation).")


class ModelPolicy(_M):
    pivot_share: float | None = Field(None, ge=0, le=1, description="Share moved to the new model after release "
                                      "(null = follow ordinary adoption).")
    pivot_delay_hours: float = Field(12.0, ge=0)
    pivot_model: str | None = Field(None, description="Which released model; default the first released in span.")


class BanEvasionSpec(_M):
    banned_share: float = Field(0.3, ge=0, le=1, description="Share of the campaign's accounts banned.")
    ban_from_day: float = Field(3.0, ge=0, description="Bans happen between these days of the span.")
    ban_to_day: float = Field(10.0, ge=0)
    standby_accounts: int = Field(10, ge=1, description="Second pool: created early, idle until a ban.")
    takeover_hours: float = Field(2.0, ge=0, description="Delay before a standby account takes over.")
    generations: int = Field(1, ge=1, le=8, description="Chain of standby pools: pool g takes over from pool g-1 "
                             "and is itself banned / retired at the same shares (each pool standby_accounts).")
    retire_share: float = Field(0.0, ge=0, le=1, description="Share of accounts the operator retires voluntarily "
                                "(rotation before any ban): their traffic moves to a standby account, their "
                                "status stays active.")

    @model_validator(mode="after")
    def _shares(self):
        if self.banned_share + self.retire_share > 1:
            raise ValueError("banned_share + retire_share must be <= 1")
        if self.ban_to_day < self.ban_from_day:
            raise ValueError("ban_to_day must be >= ban_from_day")
        return self


class ProxyNetworkSpec(_M):
    """A hydra: many accounts that relay this campaign's traffic mixed with ordinary customers' traffic."""

    accounts: int = Field(1000, ge=1, description="Hydra accounts at scale 1 (scaled like the campaign's).")
    share: float = Field(0.3, ge=0, le=1, description="Share of the campaign's exchanges routed through it.")
    benign_share: float = Field(0.5, ge=0, lt=1, description="Share of the hydra accounts' traffic that is "
                                "ordinary customers' (in addition to the campaign's).")
    benign_content: Weights = Field(default_factory=lambda: {"chat_general": 0.7, "chat_code": 0.3})
    network: NetworkSpec = Field(default_factory=lambda: NetworkSpec(kind="residential", rotation="per_session"))
    identity: IdentitySpec = Field(default_factory=IdentitySpec)
    client: ClientSpec = Field(default_factory=ClientSpec)


class MixingSpec(_M):
    benign_share: float = Field(0.0, ge=0, lt=1, description="Share of the accounts' traffic that is ordinary.")
    content: Weights = Field(default_factory=lambda: {"chat_general": 0.6, "chat_code": 0.4})


class _Group(_M):
    accounts: int = Field(..., ge=1, description="Accounts at scale 1.")
    accounts_scale: Literal["linear", "fixed", "sqrt"] = Field(
        "linear", description="How the account count follows --scale.")
    min_accounts: int = Field(1, ge=1, description="Floor on the scaled account count.")
    exchanges: float | None = Field(None, gt=0, description="Total exchanges at scale 1 (else rate.per_account_day).")
    exchanges_scale: Literal["linear", "fixed", "sqrt"] = Field(
        "linear", description="How `exchanges` follows --scale; sqrt keeps a few heavy accounts heavy in small worlds.")
    content: Weights = Field(..., description="Content profile name → share.")
    identity: IdentitySpec = Field(default_factory=IdentitySpec)
    network: NetworkSpec = Field(default_factory=NetworkSpec)
    client: ClientSpec = Field(default_factory=ClientSpec)
    timing: TimingSpec = Field(default_factory=TimingSpec)
    rate: RateSpec = Field(default_factory=RateSpec)
    models: ModelPolicy = Field(default_factory=ModelPolicy)
    start_day: float = Field(0, ge=0, description="First day of activity (relative to start).")
    end_day: float | None = Field(None, description="Last day (exclusive); default the end of the span.")

    @field_validator("content")
    @classmethod
    def _content(cls, v):
        return _check_weights(v, "content")

    @model_validator(mode="after")
    def _volume(self):
        if self.exchanges is None and self.rate.per_account_day is None:
            raise ValueError("give either exchanges or rate.per_account_day")
        return self


class EndUsersSpec(_M):
    """A reseller or platform: its accounts relay the traffic of many end users of its own."""

    count: int = Field(..., ge=1, description="End users at scale 1 (each with its own habits, time zone, "
                       "conversations and system prompt draw).")
    count_scale: Literal["linear", "fixed", "sqrt"] = Field("sqrt", description="How count follows --scale.")
    countries: Weights = Field(default_factory=dict, description="End users' countries (their local hours); "
                               "empty = global mix.")
    user_field: bool = Field(True, description="Forward a stable end-user id in extra.user (the `user` / "
                             "safety-identifier parameter a well-behaved platform sends).")

    @field_validator("countries")
    @classmethod
    def _countries(cls, v):
        return _check_countries(v)


class PersonaSpec(_Group):
    name: str = Field(..., pattern=r"^[a-z][a-z0-9_]*$", description="persona in labels.parquet.")
    kind: str = Field("chat", description="Free label (chat, coding_agent, app, nat, popular_tool, benchmark, "
                                          "labelling, tutoring, reseller); reported with the persona.")
    hard_negative: bool = Field(False, description="Marks a benign persona built to look suspicious (reporting only).")
    end_users: EndUsersSpec | None = Field(None, description="The accounts relay end users' traffic: volume "
                                           "(exchanges / rate.per_account_day) and timing are the end users'; "
                                           "account, key, network and client are the persona's accounts'.")


class CampaignSpec(_Group):
    id: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="campaign_id in labels.parquet.")
    title: str = Field("", description="Human title (world.json).")
    timing: TimingSpec = Field(default_factory=lambda: TimingSpec(mode="jittered"))
    mixing: MixingSpec = Field(default_factory=MixingSpec)
    proxy_network: ProxyNetworkSpec | None = None
    ban_evasion: BanEvasionSpec | None = None
    min_accounts: int = Field(3, ge=1, description="Floor on the scaled account count.")


class WorldSpec(_M):
    name: str = Field("world", description="World name (world.json).")
    extends: list[str] = Field(default_factory=list, description="Worlds (shipped names or paths) this one builds "
                               "on, merged in order before this file: mappings merge key by key, personas / "
                               "campaigns / models merge by name or id (later wins), content_files join, other "
                               "keys are overridden. Kept in the spec as a record of where the world came from.")
    exclude_personas: list[str] = Field(default_factory=list, description="Inherited persona names to drop "
                                        "('*' = all).")
    exclude_campaigns: list[str] = Field(default_factory=list, description="Inherited campaign ids to drop "
                                         "('*' = all): a world with no attackers built on one that has them.")
    description: str = ""
    seed: int = Field(0, description="Random seed; the world is a function of (config, seed, scale).")
    start: datetime = Field(datetime(2026, 1, 12, tzinfo=UTC), description="Span start (UTC).")
    days: int = Field(21, ge=1, le=400, description="Span length in days.")
    responses: Literal["text", "lengths"] = Field(
        "text", description="text: synthetic answer/reasoning text; lengths: only lengths and token counts.")
    prompt_files: dict[str, str | PromptFileSpec] = Field(default_factory=dict, description="Name → JSONL prompt file (a 'text' "
                                         "field per line); paths relative to the config file or the packaged data.")
    content_files: list[str] = Field(..., min_length=1, description="YAML files defining content profiles.")
    models: list[ModelSpec] = Field(..., min_length=1, description="Models served; at least one available at start.")
    proxy_pools: dict[str, ProxyPoolSpec] = Field(default_factory=dict, description="Named IP pools groups can share.")
    client_stacks: dict[str, ClientStackSpec] = Field(default_factory=dict, description="Client stacks this world "
                                                      "adds to the built-in table (custom user agents).")
    personas: list[PersonaSpec] = Field(default_factory=list, description="Benign populations.")
    campaigns: list[CampaignSpec] = Field(default_factory=list, description="Distillation campaigns.")
    account_facts: bool = Field(True, description="false: write no accounts table and no org_id (a small "
                                "provider or third-party log with exchanges only).")
    edge_fingerprints: bool = Field(True, description="false: no client_asn, tls_ja4 or header_order_fp (an edge "
                                    "that does not compute them).")
    chunk_rows: int = Field(150_000, ge=1000, description="Largest batch generated at once (bounds memory).")

    @field_validator("start")
    @classmethod
    def _utc(cls, v: datetime):
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)

    @model_validator(mode="after")
    def _refs(self):
        names = [p.name for p in self.personas]
        if len(set(names)) != len(names):
            raise ValueError("persona names must be unique")
        ids = [c.id for c in self.campaigns]
        if len(set(ids)) != len(ids):
            raise ValueError("campaign ids must be unique")
        if not self.personas and not self.campaigns:
            raise ValueError("a world needs at least one persona or campaign")
        for kind, groups in (("personas", self.personas), ("campaigns", self.campaigns)):
            for i, g in enumerate(groups):
                nets = [g.network] + ([g.proxy_network.network] if getattr(g, "proxy_network", None) else [])
                for n in nets:
                    if n.pool and n.pool not in self.proxy_pools:
                        raise ValueError(f"{kind}[{i}].network.pool: no proxy_pools entry named {n.pool!r}")
        model_names = {m.name for m in self.models}
        for kind, groups in (("personas", self.personas), ("campaigns", self.campaigns)):
            for i, g in enumerate(groups):
                if g.models.pivot_model and g.models.pivot_model not in model_names:
                    raise ValueError(f"{kind}[{i}].models.pivot_model: unknown model {g.models.pivot_model!r}")
                if g.models.pivot_share is not None and not any(m.released and m.released > self.start
                                                                for m in self.models):
                    raise ValueError(f"{kind}[{i}].models.pivot_share: no model is released during the span")
        return self


def _format_error(e: ValidationError, source: str) -> ConfigError:
    lines = []
    for err in e.errors():
        loc = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in err["loc"]).replace(".[", "[")
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see docs/simulator.md)"
        lines.append(f"{loc or '(top level)'}: {msg}")
    return ConfigError("invalid world config:\n  " + "\n  ".join(lines), source=source)


def resolve_config_path(path: str | Path) -> Path:
    """A path as given, or the name of a shipped world (``default``, ``low_and_slow``, ...)."""
    p = Path(path)
    if p.is_file():
        return p
    for cand in (WORLDS_DIR / f"{path}.yaml", WORLDS_DIR / str(path)):
        if cand.is_file():
            return cand
    raise ConfigError(f"world config not found (shipped worlds: {', '.join(shipped_worlds())})", source=str(path))


def shipped_worlds() -> list[str]:
    return sorted(p.stem for p in WORLDS_DIR.glob("*.yaml"))


_KEYED_LISTS = {"personas": "name", "campaigns": "id", "models": "name"}


def _merge_keyed(base: list, own: list, key: str, source: str) -> list:
    out: dict = {}
    for item in [*base, *own]:
        if not isinstance(item, dict) or key not in item:
            raise ConfigError(f"every entry needs a {key!r} to be merged with `extends`", source=source)
        out[item[key]] = item
    return list(out.values())


def merge_worlds(base: dict, own: dict, source: str = "<config>") -> dict:
    """``own`` laid over ``base`` by the `extends` rules (raw dicts, before validation)."""
    out = dict(base)
    for k, v in own.items():
        if k in _KEYED_LISTS and isinstance(v, list) and isinstance(out.get(k), list):
            out[k] = _merge_keyed(out[k], v, _KEYED_LISTS[k], source)
        elif k == "content_files" and isinstance(v, list) and isinstance(out.get(k), list):
            out[k] = list(dict.fromkeys([*out[k], *v]))
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = {**out[k], **v}
        else:
            out[k] = v
    return out


def _drop(items: list, key: str, names: list[str], what: str, source: str) -> list:
    if "*" in names:
        return []
    have = {i.get(key) for i in items if isinstance(i, dict)}
    unknown = [n for n in names if n not in have]
    if unknown:
        raise ConfigError(f"exclude_{what}: no inherited {what[:-1]} named {unknown}", source=source)
    return [i for i in items if i.get(key) not in names]


def _extended_path(entry: str, world: Path) -> Path:
    """Where an `extends` entry points: a file beside the world that names it, else a shipped world, else a file.

    A bare name (``default``) is a shipped world before it is anything in the working directory, so a folder or a
    stray file called ``default`` where a command runs cannot change which world a sampled config builds on."""
    own = Path(entry) if Path(entry).is_absolute() else world.parent / entry
    if own.is_file():
        return own
    bare = Path(entry).name == entry and not Path(entry).suffix
    if bare and (WORLDS_DIR / f"{entry}.yaml").is_file():
        return WORLDS_DIR / f"{entry}.yaml"
    return resolve_config_path(entry)


def read_world_raw(p: Path, chain: tuple[Path, ...] = ()) -> dict:
    """A world file's mapping with its `extends` resolved (bases first, then the file; cycles are errors)."""
    if p.resolve() in chain:
        raise ConfigError("`extends` forms a cycle: " + " → ".join(c.name for c in (*chain, p)), source=str(p))
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"not valid YAML: {e}", source=str(p)) from None
    if not isinstance(raw, dict):
        raise ConfigError("a world config must be a mapping at the top level", source=str(p))
    ext = raw.get("extends") or []
    if isinstance(ext, str):
        ext = [ext]
    if not isinstance(ext, list) or not all(isinstance(e, str) for e in ext):
        raise ConfigError("extends: a list of world names or paths", source=str(p))
    if not ext:
        return raw
    merged: dict = {}
    for e in ext:
        base = read_world_raw(_extended_path(e, p), (*chain, p.resolve()))
        for k in ("extends", "exclude_personas", "exclude_campaigns"):
            base.pop(k, None)
        merged = merge_worlds(merged, base, str(p))
    own = {k: v for k, v in raw.items() if k not in ("exclude_personas", "exclude_campaigns")}
    merged = merge_worlds(merged, own, str(p))
    for what, key in (("personas", "name"), ("campaigns", "id")):
        names = raw.get(f"exclude_{what}") or []
        if names:
            own_names = {i.get(key) for i in (raw.get(what) or []) if isinstance(i, dict)}
            kept_own = [i for i in merged.get(what, []) if i.get(key) in own_names]
            inherited = [i for i in merged.get(what, []) if i.get(key) not in own_names]
            merged[what] = _drop(inherited, key, names, what, str(p)) + kept_own
        merged[f"exclude_{what}"] = names
    merged["extends"] = ext
    return merged


def load_world(path: str | Path) -> tuple[WorldSpec, Path]:
    """Parse and validate a world file; returns the spec and the directory relative paths resolve against."""
    p = resolve_config_path(path)
    raw = read_world_raw(p)
    try:
        spec = WorldSpec.model_validate(raw)
    except ValidationError as e:
        raise _format_error(e, str(p)) from None
    return spec, p.parent


def parse_world(raw: dict, source: str = "<config>") -> WorldSpec:
    try:
        return WorldSpec.model_validate(raw)
    except ValidationError as e:
        raise _format_error(e, source) from None


def prompt_source(v: str | PromptFileSpec, base: Path) -> tuple[Path, tuple[str, ...] | None, str]:
    """A prompt_files entry as (resolved path, categories kept or None, category field)."""
    if isinstance(v, str):
        return resolve_data_path(v, base), None, "category"
    return resolve_data_path(v.path, base), tuple(v.categories), v.category_field


def resolve_data_path(name: str, base: Path) -> Path:
    """Relative paths resolve against the config's directory first, then the packaged data directory."""
    p = Path(name)
    if p.is_absolute():
        if not p.exists():
            raise ConfigError("file not found", source=name)
        return p
    for root in (base, DATA_DIR):
        if (root / p).exists():
            return root / p
    raise ConfigError(f"file not found (looked in {base} and {DATA_DIR})", source=name)


def json_schema() -> dict:
    return WorldSpec.model_json_schema()


def write_json_schema(dest: Path) -> None:
    dest.write_text(json.dumps(json_schema(), indent=2) + "\n")
