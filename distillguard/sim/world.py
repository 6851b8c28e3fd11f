"""Build a world: accounts for every persona and campaign, then exchanges day by day, written as a store.

Generation runs per (day, group, chunk) with its own seeded random stream, so memory stays bounded at
any scale and the output depends only on (config, seed, scale) — never on chunk order or timing.
Attack accounts pass through exactly the same code as ordinary ones; the group's knobs are the only
difference, and the labels are written to a separate file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.errors import ConfigError
from distillguard.events.schema import ACCOUNT_SCHEMA, ENDPOINTS, EXCHANGE_SCHEMA
from distillguard.sim import identity as idg
from distillguard.sim.config import (
    CampaignSpec,
    ClientSpec,
    IdentitySpec,
    ModelPolicy,
    NetworkSpec,
    RateSpec,
    TimingSpec,
    WorldSpec,
    prompt_source,
)
from distillguard.sim.content import ProfilePools, build_content, build_pools, load_profiles

DAY_MS = 86_400_000
LABELS_FILE = "labels.parquet"
WORLD_FILE = "world.json"
LABEL_SCHEMA = pa.schema([("account_id", pa.string()), ("campaign_id", pa.string()), ("persona", pa.string()),
                          ("role", pa.string())])

# Share of a person's requests per local hour (waking-hours shape with lunch and evening bumps).
_DIURNAL = np.array([1.2, 0.8, 0.5, 0.35, 0.3, 0.35, 0.7, 1.5, 3.0, 4.6, 5.4, 5.6, 4.9, 5.3, 5.8, 5.7, 5.2,
                     4.4, 3.7, 3.9, 4.3, 4.1, 3.1, 2.0])
_BUSINESS = np.array([0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.5, 1.5, 4.0, 7.0, 8.0, 8.0, 6.0, 7.5, 8.0, 8.0, 7.0,
                      5.0, 2.5, 1.2, 0.8, 0.6, 0.4, 0.3])


@dataclass
class Group:
    key: str
    campaign_id: str | None
    persona: str
    role: str
    n: int
    identity: IdentitySpec
    network: NetworkSpec
    client: ClientSpec
    timing: TimingSpec
    rate: RateSpec
    content: dict[str, float]
    exchanges: float | None
    start_day: float
    end_day: float
    pivot: ModelPolicy | None = None
    #: scaled / configured accounts: pools of cards, orgs and creation bursts shrink with the group
    factor: float = 1.0
    acc: dict = field(default_factory=dict)
    #: end users of a reseller: index of the group whose accounts relay them (no accounts of their own)
    relay_to: int | None = None
    #: a reseller's own accounts send nothing themselves; their end users' group does
    relay_only: bool = False
    user_field: bool = False


def _factor(how: str, scale: float) -> float:
    return 1.0 if how == "fixed" else scale if how == "linear" else math.sqrt(scale)


def _shrunk(k: int, factor: float) -> int:
    """A count tied to a group's size (cards, orgs, bursts) at the group's scaled size."""
    return max(1, int(round(k * min(1.0, factor))))


def _scaled(n: int, how: str, scale: float, lo: int) -> int:
    if how == "fixed":
        return n
    return max(lo, int(round(n * _factor(how, scale))))


def _mix(a: dict[str, float], wa: float, b: dict[str, float], wb: float) -> dict[str, float]:
    out: dict[str, float] = {}
    for d, w in ((a, wa), (b, wb)):
        tot = sum(d.values()) or 1.0
        for k, v in d.items():
            if w > 0:
                out[k] = out.get(k, 0.0) + w * v / tot
    return out


def plan_groups(spec: WorldSpec, scale: float) -> list[Group]:
    groups: list[Group] = []
    for p in spec.personas:
        n = _scaled(p.accounts, p.accounts_scale, scale, p.min_accounts)
        ex = p.exchanges * _factor(p.exchanges_scale, scale) if p.exchanges else None
        groups.append(Group(p.name, None, p.name, "benign", n,
                            p.identity, p.network, p.client, p.timing, p.rate, dict(p.content),
                            None if p.end_users else ex, p.start_day, p.end_day or spec.days, p.models,
                            factor=n / p.accounts, relay_only=p.end_users is not None))
        if p.end_users:
            eu = p.end_users
            n_eu = _scaled(eu.count, eu.count_scale, scale, 1)
            ident = p.identity.model_copy(update={"countries": dict(eu.countries), "orgs": "per_account",
                                                  "payment": p.identity.payment.model_copy(update={"mode": "none"})})
            groups.append(Group(f"{p.name}:end_users", None, p.name, "benign", n_eu, ident, p.network, p.client,
                                p.timing, p.rate, dict(p.content), ex, p.start_day, p.end_day or spec.days, p.models,
                                relay_to=len(groups) - 1, user_field=eu.user_field))
    for c in spec.campaigns:
        groups.extend(_campaign_groups(c, spec, scale))
    return groups


def _campaign_groups(c: CampaignSpec, spec: WorldSpec, scale: float) -> list[Group]:
    out = []
    px = c.proxy_network
    own_share = 1.0 - (px.share if px else 0.0)
    mb = c.mixing.benign_share
    ef = _factor(c.exchanges_scale, scale)
    total = c.exchanges * ef * own_share / (1 - mb) if c.exchanges else None
    end = c.end_day or spec.days
    n = _scaled(c.accounts, c.accounts_scale, scale, c.min_accounts)
    out.append(Group(c.id, c.id, "campaign", "attacker", n,
                     c.identity, c.network, c.client, c.timing, c.rate, _mix(c.content, 1 - mb, c.mixing.content, mb),
                     total, c.start_day, end, c.models, factor=n / c.accounts))
    if px:
        ex = c.exchanges * ef * px.share / (1 - px.benign_share) if c.exchanges else None
        # hydra accounts spread the relayed traffic evenly (each looks like a modest customer)
        rate = RateSpec(dispersion=2.0, per_account_day=None if ex else (c.rate.per_account_day or 1))
        npx = _scaled(px.accounts, c.accounts_scale, scale, c.min_accounts)
        out.append(Group(f"{c.id}:proxy", c.id, "campaign", "proxy", npx, px.identity, px.network,
                         px.client, c.timing, rate, _mix(c.content, 1 - px.benign_share, px.benign_content,
                                                         px.benign_share), ex, c.start_day, end, c.models,
                         factor=npx / px.accounts))
    if c.ban_evasion:
        be = c.ban_evasion
        ident = c.identity.model_copy(update={"created": c.identity.created.model_copy(
            update={"to_day": min(c.identity.created.to_day, be.ban_from_day)})})
        nsb = _scaled(be.standby_accounts, c.accounts_scale, scale, 1)
        for gen in range(1, be.generations + 1):
            out.append(Group(_standby_key(c.id, gen), c.id, "campaign", "standby", nsb, ident, c.network, c.client,
                             c.timing, c.rate, dict(out[0].content), None, c.start_day, end, c.models,
                             factor=nsb / be.standby_accounts))
    return out


def _standby_key(cid: str, gen: int) -> str:
    return f"{cid}:standby" if gen == 1 else f"{cid}:standby{gen}"


# ------------------------------------------------------------------------------------------------ accounts
def _country_slices(rng, countries: list[str], ip_country: np.ndarray, k: int) -> np.ndarray:
    """Per account, k pool IPs located in its country (any IP of the pool when the pool has none there)."""
    out = np.empty((len(countries), k), dtype=np.int64)
    carr = np.array(countries)
    for c in sorted(set(countries)):
        rows = np.nonzero(carr == c)[0]
        cand = np.nonzero(ip_country == c)[0]
        if not len(cand):
            cand = np.arange(len(ip_country))
        out[rows] = cand[rng.integers(0, len(cand), size=(len(rows), k))]
    return out


def _pick(rng, weights: dict, n: int) -> list:
    keys = list(weights)
    w = np.array([weights[k] for k in keys], dtype=float)
    return [keys[i] for i in rng.choice(len(keys), size=n, p=w / w.sum())]


def check_references(spec: WorldSpec, base: Path, groups: list[Group] | None = None):
    """Resolve every file and profile a world names (cheap: no pools, no accounts)."""
    groups = groups if groups is not None else plan_groups(spec, 1.0)
    for name, f in spec.prompt_files.items():
        try:
            prompt_source(f, base)
        except ConfigError as e:
            raise ConfigError(f"prompt_files.{name}: {e.message}", source=e.source) from None
    profiles = load_profiles(spec.content_files, base)
    used = {p for g in groups for p in g.content}
    missing = sorted(used - set(profiles))
    if missing:
        raise ConfigError(f"content names profile(s) {missing} that no content file defines "
                          f"(defined: {sorted(profiles)})")
    for name in sorted(used):
        pr = profiles[name]
        bad = [t for t in [*pr.tasks, *(f for fs in pr.file_slots.values() for f in fs)] if t not in spec.prompt_files]
        if bad:
            raise ConfigError(f"profile {name!r} uses prompt files {bad} missing from prompt_files")
    known = set(idg.CLIENT_STACKS) | set(spec.client_stacks)
    for g in groups:
        if g.client.stacks:
            unknown = [k for k in g.client.stacks if k not in known]
            if unknown:
                raise ConfigError(f"{g.key}: unknown client stack(s) {unknown}; choose from {sorted(known)}",
                                  source="client.stacks")
    return profiles, sorted(used)


class World:
    """A world being generated: the spec, the groups with their accounts, and the content pools."""

    def __init__(self, spec: WorldSpec, base: Path, scale: float = 1.0, seed: int | None = None):
        if scale <= 0:
            raise ConfigError("--scale must be > 0")
        self.spec = spec
        self.base = base
        self.scale = scale
        self.seed = spec.seed if seed is None else seed
        self.start_ms = int(spec.start.timestamp() * 1000)
        self.groups = plan_groups(spec, scale)
        self.prompt_files = {k: prompt_source(v, base) for k, v in spec.prompt_files.items()}
        self.profiles, self.profile_names = check_references(spec, base, self.groups)
        self.pools: dict[str, ProfilePools] = {}
        for i, name in enumerate(self.profile_names):
            self.pools[name] = build_pools(self.profiles[name], self.prompt_files,
                                           np.random.default_rng([self.seed, 3, i]))
        self._shared_pools: dict[str, tuple[pa.StringArray, np.ndarray]] = {}
        self._models()
        for gi, g in enumerate(self.groups):
            self._build_accounts(gi, g)
        self._relay()
        self._ban_evasion()
        self.counts: dict[str, int] = {g.key: 0 for g in self.groups}
        # Account shards: each output file holds one shard-day of all groups (~chunk_rows exchanges).
        per_day = sum(float((g.acc["lam"] * g.acc["active_share"]).sum()) for g in self.groups)
        self.n_shards = max(1, math.ceil(1.25 * per_day / spec.chunk_rows))
        for gi, g in enumerate(self.groups):
            g.acc["shard"] = np.random.default_rng([self.seed, 7, gi]).integers(0, self.n_shards, size=g.n)

    # .......................................................................... models
    def _models(self) -> None:
        ms = self.spec.models
        self.model_names = [m.name for m in ms]
        self.base_models = [i for i, m in enumerate(ms) if m.released is None or m.released.timestamp() * 1000 <= self.start_ms]
        if not self.base_models:
            raise ConfigError("models: at least one model must be available at the start (released null or before start)")
        self.releases = sorted([(int(m.released.timestamp() * 1000), i) for i, m in enumerate(ms)
                                if i not in self.base_models])
        vis = {"visible": 0, "summarized": 1, "hidden": 2}
        self.model_vis = np.array([vis[m.reasoning] for m in ms], dtype=np.int8)

    # .......................................................................... accounts
    def _pool(self, name: str) -> tuple[pa.StringArray, np.ndarray]:
        if name not in self._shared_pools:
            p = self.spec.proxy_pools[name]
            rng = np.random.default_rng([self.seed, 4, sum(map(ord, name)), len(name)])
            ips, asn = idg.make_ips(rng, p.size, idg.asns_of(p.kind, None, p.asns), p.prefixes_24)
            self._shared_pools[name] = (pa.array(ips, pa.string()), asn)
        return self._shared_pools[name]

    def _build_accounts(self, gi: int, g: Group) -> None:
        rng = np.random.default_rng([self.seed, 1, gi])
        n, ident = g.n, g.identity
        a: dict = {}
        a["account_id"] = idg.alnum_ids(rng, n, 24, "user-")
        if ident.orgs == "per_account":
            a["org_id"] = idg.alnum_ids(rng, n, 24, "org-")
            org_idx = np.arange(n)
        else:
            k = 1 if ident.orgs == "single" else _shrunk(ident.org_count, g.factor)
            orgs = idg.alnum_ids(rng, k, 24, "org-")
            org_idx = rng.integers(0, k, size=n)
            a["org_id"] = orgs.take(pa.array(org_idx))
        cr = ident.created
        if cr.bursts:
            nb = _shrunk(cr.bursts, g.factor)
            centers = rng.uniform(cr.from_day, cr.to_day, size=nb)
            c_day = centers[rng.integers(0, nb, size=n)] + rng.uniform(0, cr.burst_hours / 24, size=n)
        else:
            c_day = rng.uniform(cr.from_day, cr.to_day, size=n)
        a["created_ms"] = (self.start_ms + c_day * DAY_MS).astype(np.int64)
        countries = _pick(rng, ident.countries or idg.COUNTRY_MIX, n)
        a["country"] = countries
        a["tz"] = np.array([idg.TZ_HOURS[c] for c in countries]) + rng.normal(0, 1.2, size=n)
        a["email_domain"] = idg.email_domains(rng, n, ident.email_domains, org_idx)
        a["email_local"] = idg.email_locals(rng, n, ident.email_pattern)
        a["pathway"] = _pick(rng, ident.pathway, n)
        a["verification"] = [int(v) for v in _pick(rng, ident.verification, n)]
        pay = ident.payment
        if pay.mode == "unique":
            fp = idg.hex_ids(rng, n, 10).to_pylist()
        elif pay.mode == "org":
            ofp = idg.hex_ids(rng, int(org_idx.max()) + 1, 10).to_pylist()
            fp = [ofp[i] for i in org_idx]
        elif pay.mode == "pool":
            ni = _shrunk(pay.instruments, g.factor)
            pfp = idg.hex_ids(rng, ni, 10).to_pylist()
            fp = [pfp[i] for i in rng.integers(0, ni, size=n)]
            if pay.reuse_share < 1:
                own = idg.hex_ids(rng, n, 10).to_pylist()
                reuse = rng.random(n) < pay.reuse_share
                fp = [fp[i] if reuse[i] else own[i] for i in range(n)]
        else:
            fp = [None] * n
        none = rng.random(n) < pay.none_share
        a["payment"] = [None if none[i] else fp[i] for i in range(n)]
        # network
        net = g.network
        k = net.ips_per_account
        if net.pool:
            ips, asn = self._pool(net.pool)
            a["shared_pool"] = not net.match_country
            if net.match_country:
                a["acct_ips"] = _country_slices(rng, countries, idg.asn_countries(asn), k)
            else:
                a["acct_ips"] = rng.integers(0, len(ips), size=(n, k))
        elif net.size:
            ipl, asn = idg.make_ips(rng, net.size, idg.asns_of(net.kind, None, net.asns), net.prefixes_24)
            ips = pa.array(ipl, pa.string())
            a["shared_pool"] = True
            a["acct_ips"] = rng.integers(0, len(ipl), size=(n, k))
        else:
            ipl: list[str] = [""] * (n * k)
            asn = np.zeros(n * k, dtype=np.int64)
            carr = np.array(countries)
            for c in sorted(set(countries)):
                rows = np.nonzero(carr == c)[0]
                sub, sub_asn = idg.make_ips(rng, len(rows) * k, idg.asns_of(net.kind, c, net.asns), None)
                slots = (rows[:, None] * k + np.arange(k)[None, :]).ravel()
                for s_, ip in zip(slots.tolist(), sub, strict=True):
                    ipl[s_] = ip
                asn[slots] = sub_asn
            ips = pa.array(ipl, pa.string())
            a["shared_pool"] = False
            a["acct_ips"] = np.arange(n * k).reshape(n, k)
        a["pool_ips"], a["pool_asn"] = ips, asn
        a["signup_ip"] = ips.take(pa.array(a["acct_ips"][:, 0])).to_pylist()
        extra = {k: (c.user_agent, c.sdk_name, c.versions, 0.0, c.tls_family) for k, c in self.spec.client_stacks.items()}
        cl = idg.client_table(rng, n, g.client.stacks, g.client.custom_share, f"{self.seed}|{g.key}", extra)
        for key, vals in cl.items():
            a[key] = pa.array(vals, pa.string())
        ep = list(g.client.endpoints)
        epw = np.array([g.client.endpoints[e] for e in ep])
        a["endpoint"] = np.array([ENDPOINTS.index(e) for e in ep])[rng.choice(len(ep), size=n, p=epw / epw.sum())]
        a["stream"] = rng.random(n) < g.client.stream_share
        kk = ident.keys_per_account
        a["keys"] = idg.alnum_ids(rng, n * kk, 20, "key_")
        a["nkeys"] = rng.integers(1, kk + 1, size=n)
        a["salt"] = rng.integers(0, 2**31 - 1, size=n)
        a["weight"] = rng.gamma(g.rate.dispersion, 1.0 / g.rate.dispersion, size=n)
        a["conv_len"] = rng.geometric(1.0 / g.timing.session_requests, size=n)
        a["shift_s"] = rng.uniform(0, g.timing.shift_minutes * 60, size=n)
        a["from_ms"] = np.maximum(a["created_ms"], self.start_ms + int(g.start_day * DAY_MS))
        a["to_ms"] = np.full(n, self.start_ms + int(g.end_day * DAY_MS), dtype=np.int64)
        a["status"] = ["active"] * n
        a["status_ms"] = [None] * n
        a["lam"] = np.zeros(n)
        self._set_rate(g, a)
        g.acc = a

    def _relay(self) -> None:
        """End users take their reseller account's identity, keys, network and client; keep their own habits."""
        for gi, g in enumerate(self.groups):
            if g.relay_to is None:
                continue
            r = self.groups[g.relay_to].acc
            a = g.acc
            m = np.random.default_rng([self.seed, 9, gi]).integers(0, self.groups[g.relay_to].n, size=g.n)
            a["end_user_id"] = idg.alnum_ids(np.random.default_rng([self.seed, 10, gi]), g.n, 16, "eu_")
            a["user_field"] = g.user_field
            mp = pa.array(m)
            for k in ("account_id", "org_id", "user_agent", "sdk_name", "sdk_version", "tls_ja4", "header_order_fp"):
                a[k] = r[k].take(mp)
            for k in ("endpoint", "stream", "created_ms", "acct_ips", "nkeys"):
                a[k] = r[k][m]
            kk = self.groups[g.relay_to].identity.keys_per_account
            a["keys"] = r["keys"].take(pa.array((m[:, None] * kk + np.arange(kk)[None, :]).ravel()))
            a["pool_ips"], a["pool_asn"], a["shared_pool"] = r["pool_ips"], r["pool_asn"], r["shared_pool"]
            a["from_ms"] = np.maximum(a["created_ms"], self.start_ms + int(g.start_day * DAY_MS))
            self._set_rate(g, a)

    def _set_rate(self, g: Group, a: dict) -> None:
        if g.relay_only:
            a["lam"] = np.zeros(g.n)
            a["active_share"] = 0.0
            a["capped"] = 0
            return
        days_active = np.clip((a["to_ms"] - a["from_ms"]) / DAY_MS, 0, None)
        cap = g.identity.rpd_limit * g.rate.limit_fraction
        a["active_share"] = g.rate.active_share
        if g.rate.at_limit and g.exchanges is not None:
            lam = cap * (0.93 + 0.07 * np.minimum(a["weight"], 1.0))
            possible = float((lam * days_active).sum())
            a["active_share"] = min(1.0, g.exchanges / possible) if possible > 0 else 0.0
            a["lam"] = lam
            a["capped"] = g.n if g.exchanges > possible else 0
            return
        if g.exchanges is not None:
            denom = float((days_active * a["weight"]).sum() * g.rate.active_share)
            lam = a["weight"] * (g.exchanges / denom if denom > 0 else 0.0)
        else:
            lam = a["weight"] * (g.rate.per_account_day or 0.0)
        a["lam"] = np.minimum(lam, cap)
        a["capped"] = int((lam > cap).sum())

    def _ban_evasion(self) -> None:
        """Bans (and voluntary retirements) cut an account's traffic at a time; a standby account takes
        over what it was sending. With generations > 1 each standby pool is in turn banned / retired and
        replaced by the next pool, a chain of pools."""
        for c in self.spec.campaigns:
            if not c.ban_evasion:
                continue
            be = c.ban_evasion
            src = next(g for g in self.groups if g.key == c.id)
            rng = np.random.default_rng([self.seed, 5, sum(map(ord, c.id))])
            end_ms = self.start_ms + int(be.ban_to_day * DAY_MS)
            for gen in range(1, be.generations + 1):
                sb = next(g for g in self.groups if g.key == _standby_key(c.id, gen))
                a, s = src.acc, sb.acc
                s["lam"] = np.zeros(sb.n)
                s["from_ms"] = np.full(sb.n, np.iinfo(np.int64).max // 2, dtype=np.int64)
                lo = np.maximum(a["from_ms"], self.start_ms + int(be.ban_from_day * DAY_MS))
                live = np.nonzero((a["lam"] > 0) & (lo < np.minimum(a["to_ms"], end_ms)))[0]
                k_ban = int(round(len(live) * be.banned_share))
                k_ret = int(round(len(live) * be.retire_share))
                chosen = rng.permutation(live)[: k_ban + k_ret]
                hi = np.minimum(a["to_ms"][chosen], end_ms)
                t_end = (lo[chosen] + rng.random(len(chosen)) * (hi - lo[chosen])).astype(np.int64)
                for j, (i, t) in enumerate(zip(chosen.tolist(), t_end.tolist(), strict=True)):
                    a["to_ms"][i] = min(a["to_ms"][i], t)
                    if j < k_ban:
                        a["status"][i] = "banned"
                        a["status_ms"][i] = t
                    k = j % sb.n
                    s["lam"][k] += a["lam"][i]
                    s["from_ms"][k] = min(s["from_ms"][k], t + int(be.takeover_hours * 3_600_000))
                s["lam"] = np.minimum(s["lam"], sb.identity.rpd_limit * sb.rate.limit_fraction)
                src = sb

    def accounts_table(self) -> pa.Table:
        parts = []
        for g in self.groups:
            if g.relay_to is not None:
                continue  # end users are not the provider's customers: their reseller's accounts are
            a = g.acc
            n = g.n
            parts.append(pa.table({
                "account_id": a["account_id"], "org_id": a["org_id"],
                "created_at": pa.array(a["created_ms"], pa.timestamp("ms", tz="UTC")),
                "email_domain": pa.array(a["email_domain"], pa.string()),
                "email_local": pa.array(a["email_local"], pa.string()),
                "signup_country": pa.array(a["country"], pa.string()),
                "signup_ip": pa.array(a["signup_ip"], pa.string()),
                "signup_pathway": pa.array(a["pathway"], pa.string()),
                "verification_level": pa.array(a["verification"], pa.int32()),
                "payment_fingerprint": pa.array(a["payment"], pa.string()),
                "tier": pa.array([g.identity.tier] * n, pa.string()),
                "rpm_limit": pa.array(np.full(n, g.identity.rpm_limit, dtype=np.int32)),
                "rpd_limit": pa.array(np.full(n, g.identity.rpd_limit, dtype=np.int32)),
                "status": pa.array(a["status"], pa.string()),
                "status_changed_at": pa.array(a["status_ms"], pa.timestamp("ms", tz="UTC")),
            }, schema=ACCOUNT_SCHEMA))
        t = pa.concat_tables(parts)
        # rows in a seeded random order: position in the file says nothing about the group
        return t.take(pa.array(np.random.default_rng([self.seed, 8]).permutation(t.num_rows)))

    def labels_table(self) -> pa.Table:
        parts = []
        for g in self.groups:
            if g.relay_to is not None:
                continue
            parts.append(pa.table({"account_id": g.acc["account_id"],
                                   "campaign_id": pa.array([g.campaign_id] * g.n, pa.string()),
                                   "persona": pa.array([g.persona] * g.n, pa.string()),
                                   "role": pa.array([g.role] * g.n, pa.string())}, schema=LABEL_SCHEMA))
        t = pa.concat_tables(parts)
        return t.take(pc.sort_indices(t["account_id"]))

    # .......................................................................... exchanges
    def day_chunks(self, gi: int, day: int, shard: int = 0) -> list[pa.Table]:
        """Exchanges of group ``gi`` on ``day`` from the accounts in ``shard``, in bounded chunks."""
        g = self.groups[gi]
        a = g.acc
        d0 = self.start_ms + day * DAY_MS
        d1 = d0 + DAY_MS
        overlap = np.clip((np.minimum(a["to_ms"], d1) - np.maximum(a["from_ms"], d0)) / DAY_MS, 0, 1)
        if not overlap.any():
            return []
        # drawn for every account whatever the shard, so an account's day does not depend on the sharding
        rng = np.random.default_rng([self.seed, 2, gi, day])
        active = rng.random(g.n) < a["active_share"]
        wk = 1.0
        wd = datetime.fromtimestamp(d0 / 1000, tz=UTC).weekday()
        if g.timing.weekdays_only:
            wk = 0.0 if wd >= 5 else 1.4
        elif g.timing.mode in ("diurnal", "business_hours"):
            wk = (0.6 if g.timing.mode == "diurnal" else 0.25) if wd >= 5 else 1.08
        lam = a["lam"] * overlap * active * wk
        counts = np.minimum(rng.poisson(lam), g.identity.rpd_limit)
        windows = np.sort(rng.uniform(0, 86_400 - g.timing.window_minutes * 60, size=g.timing.windows_per_day))
        if g.timing.window_hours is not None:
            windows = np.array(sorted(g.timing.window_hours), dtype=float) * 3600.0
        # drawn for every account (not only this shard's) so an account's schedule ignores the sharding
        offsets = rng.normal(0, g.timing.account_jitter_minutes * 60, size=g.n) if g.timing.account_jitter_minutes else None
        sel = np.nonzero((a["shard"] == shard) & (counts > 0))[0]
        if not len(sel):
            return []
        cs = counts[sel]
        # split the shard's accounts into chunks of bounded size (one account never spans two chunks)
        cum = np.cumsum(cs)
        lim = self.spec.chunk_rows
        bounds = [0]
        while bounds[-1] < len(sel):
            base = cum[bounds[-1] - 1] if bounds[-1] else 0
            nxt = int(np.searchsorted(cum, base + lim, side="right"))
            bounds.append(max(nxt, bounds[-1] + 1))
        out = []
        for ci in range(len(bounds) - 1):
            lo, hi = bounds[ci], bounds[ci + 1]
            crng = np.random.default_rng([self.seed, 6, gi, day, shard, ci])
            t = self._chunk(g, crng, sel[lo:hi], cs[lo:hi], d0, windows, offsets)
            if t is not None and t.num_rows:
                out.append(t)
        return out

    def unit(self, day: int, shard: int) -> tuple[pa.Table | None, dict[int, int]]:
        """One output file: every group's traffic of one account shard on one day, in time order.

        Files mix all groups, like a provider's time-partitioned logs; neither a file nor a row's
        position says which group produced it.
        """
        tables, counts = [], {}
        for gi in range(len(self.groups)):
            for t in self.day_chunks(gi, day, shard):
                tables.append(t)
                counts[gi] = counts.get(gi, 0) + t.num_rows
        if not tables:
            return None, counts
        t = pa.concat_tables(tables)
        return t.take(pc.sort_indices(t["ts"])), counts

    def _times(self, g: Group, rng, acc: np.ndarray, windows: np.ndarray, offsets: np.ndarray | None = None) -> np.ndarray:
        n = len(acc)
        tm = g.timing
        a = g.acc
        if tm.mode in ("diurnal", "business_hours"):
            pdf = _DIURNAL if tm.mode == "diurnal" else _BUSINESS
            cdf = np.cumsum(pdf) / pdf.sum()
            local_h = np.searchsorted(cdf, rng.random(n)) + rng.random(n)
            sec = (local_h - a["tz"][acc]) * 3600.0
        elif tm.mode == "flat":
            sec = rng.uniform(0, 86_400, size=n)
        else:
            w = windows[rng.integers(0, len(windows), size=n)]
            sec = w + rng.uniform(0, tm.window_minutes * 60, size=n)
            if tm.mode == "shifted":
                sec = sec + a["shift_s"][acc]
            elif tm.mode == "jittered":
                sec = sec + rng.normal(0, tm.jitter_minutes * 60, size=n)
            if offsets is not None:
                sec = sec + offsets[acc]
        return np.mod(sec, 86_400.0)

    def _model_idx(self, g: Group, rng, ts: np.ndarray) -> np.ndarray:
        ms = self.spec.models
        base = np.array(self.base_models)
        w = np.array([ms[i].share for i in base], dtype=float)
        w = w / w.sum() if w.sum() > 0 else np.full(len(base), 1 / len(base))
        m = base[rng.choice(len(base), size=len(ts), p=w)]
        pivot = g.pivot
        for k, (rel, mi) in enumerate(self.releases):
            after = ts > rel
            if not after.any():
                continue
            dt_h = (ts - rel) / 3_600_000
            spec_m = ms[mi]
            target = pivot.pivot_model if pivot else None
            is_pivot_model = pivot is not None and pivot.pivot_share is not None and (
                target == spec_m.name or (target is None and k == 0))
            if is_pivot_model:
                p = pivot.pivot_share / (1 + np.exp(-(dt_h - pivot.pivot_delay_hours) / 1.5))
            else:
                p = spec_m.benign_max_share * (1 - np.exp(-np.maximum(dt_h, 0) / spec_m.benign_adoption_hours))
            m = np.where(after & (rng.random(len(ts)) < p), mi, m)
        return m

    def _chunk(self, g: Group, rng, accs: np.ndarray, counts: np.ndarray, d0: int, windows: np.ndarray,
               offsets: np.ndarray | None = None) -> pa.Table | None:
        a = g.acc
        acc = np.repeat(accs, counts)
        ts = d0 + (self._times(g, rng, acc, windows, offsets) * 1000).astype(np.int64)
        keep = (ts >= a["from_ms"][acc]) & (ts < a["to_ms"][acc])
        if not keep.all():
            acc, ts = acc[keep], ts[keep]
        n = len(acc)
        if n == 0:
            return None
        order = np.lexsort((ts, acc))
        acc, ts = acc[order], ts[order]
        gap = int(g.timing.session_gap_minutes * 60_000)
        new = np.ones(n, dtype=bool)
        new[1:] = (acc[1:] != acc[:-1]) | ((ts[1:] - ts[:-1]) > gap)
        idx = np.arange(n)
        pos = idx - np.maximum.accumulate(np.where(new, idx, 0))
        # conversations end after an account-typical number of requests too (an app serves many users)
        new |= (pos % a["conv_len"][acc]) == 0
        pos = idx - np.maximum.accumulate(np.where(new, idx, 0))
        sess = np.cumsum(new) - 1
        n_sess = int(sess[-1]) + 1
        names = list(g.content)
        pw = np.array([g.content[k] for k in names], dtype=float)
        prof_of_sess = rng.choice(len(names), size=n_sess, p=pw / pw.sum())
        prof = prof_of_sess[sess]
        perm = np.argsort(prof, kind="stable")
        acc, ts, sess, pos, prof = acc[perm], ts[perm], sess[perm], pos[perm], prof[perm]
        model = self._model_idx(g, rng, ts)
        endpoint = a["endpoint"][acc]
        vis = self.model_vis[model]
        text_mode = self.spec.responses == "text"
        bounds = np.searchsorted(prof, np.arange(len(names) + 1))
        pieces: list[tuple[int, int, dict]] = []
        conv_mask = np.zeros(n, dtype=bool)
        out_tok = np.zeros(n, dtype=np.int64)
        for pi in range(len(names)):
            lo, hi = int(bounds[pi]), int(bounds[pi + 1])
            if hi == lo:
                continue
            pools = self.pools[names[pi]]
            cols = build_content(pools, rng, acc[lo:hi], a["salt"], pos[lo:hi], endpoint[lo:hi], vis[lo:hi], text_mode)
            out_tok[lo:hi] = cols.pop("_out_tok")
            cols.pop("_pairs")
            conv_mask[lo:hi] = pools.spec.history != "none"
            pieces.append((lo, hi, cols))
        acc_pa = pa.array(acc)
        # routing
        net = g.network
        k = net.ips_per_account
        if net.rotation == "sticky":
            j = np.where(rng.random(n) < 0.8, 0, rng.integers(0, k, size=n))
            ipi = a["acct_ips"][acc, j]
        elif net.rotation == "per_day":
            if a["shared_pool"]:
                ipi = rng.integers(0, len(a["pool_ips"]), size=g.n)[acc]
            else:
                ipi = a["acct_ips"][acc, rng.integers(0, k, size=g.n)[acc]]
        elif net.rotation == "per_session":
            if a["shared_pool"]:
                ipi = rng.integers(0, len(a["pool_ips"]), size=n_sess)[sess]
            else:
                ipi = a["acct_ips"][acc, rng.integers(0, k, size=n_sess)[sess]]
        else:
            ipi = rng.integers(0, len(a["pool_ips"]), size=n) if a["shared_pool"] else \
                a["acct_ips"][acc, rng.integers(0, k, size=n)]
        kk = g.identity.keys_per_account
        key_i = acc * kk + np.where(rng.random(n) < 0.7, 0, (rng.random(n) * a["nkeys"][acc]).astype(np.int64))
        conv = idg.hex_ids(rng, n_sess, 12, "conv_").take(pa.array(sess))
        conv = pc.if_else(pa.array(conv_mask), conv, pa.scalar(None, pa.string()))
        is_batch = endpoint == ENDPOINTS.index("batch")
        batch = pa.nulls(n, pa.string())
        if is_batch.any():
            b = idg.hex_ids(rng, g.n, 12, "batch_").take(acc_pa)
            batch = pc.if_else(pa.array(is_batch), b, pa.scalar(None, pa.string()))
        u = rng.random(n)
        status = np.where(u < 0.004, 429, np.where(u < 0.005, 500, 200)).astype(np.int32)
        latency = (250 + out_tok * rng.uniform(6, 22, size=n) + pos * 8).astype(np.int64)
        common = {
            "exchange_id": idg.hex_ids(rng, n, 12, "req_"),
            "ts": pa.array(ts, pa.timestamp("ms", tz="UTC")),
            "account_id": a["account_id"].take(acc_pa), "org_id": a["org_id"].take(acc_pa),
            "api_key_id": a["keys"].take(pa.array(key_i)),
            "model": pa.DictionaryArray.from_arrays(model.astype(np.int32), pa.array(self.model_names)).cast(pa.string()),
            "endpoint": pa.DictionaryArray.from_arrays(endpoint.astype(np.int32), pa.array(list(ENDPOINTS))).cast(pa.string()),
            "conversation_id": conv, "batch_id": batch,
            "client_ip": a["pool_ips"].take(pa.array(ipi)),
            "client_asn": pa.array(a["pool_asn"][ipi]),
            "user_agent": a["user_agent"].take(acc_pa), "sdk_name": a["sdk_name"].take(acc_pa),
            "sdk_version": a["sdk_version"].take(acc_pa), "tls_ja4": a["tls_ja4"].take(acc_pa),
            "header_order_fp": a["header_order_fp"].take(acc_pa),
            "stream": pa.array(a["stream"][acc]),
            "http_status": pa.array(status),
            "latency_ms": pa.array(np.minimum(latency, 2**31 - 1).astype(np.int32)),
            "action": pa.nulls(n, pa.string()),
            "action_reasons": pa.nulls(n, pa.list_(pa.string())),
            "source_format": pa.DictionaryArray.from_arrays(np.zeros(n, dtype=np.int8), pa.array(["native"])).cast(pa.string()),
            "extra": pa.nulls(n, pa.string()),
        }
        if "end_user_id" in a and a["user_field"]:
            common["extra"] = pc.binary_join_element_wise('{"user": "', a["end_user_id"].take(acc_pa), '"}', "")
        if not self.spec.account_facts:
            common["org_id"] = pa.nulls(n, pa.string())
        if not self.spec.edge_fingerprints:
            for k in ("client_asn", "tls_ja4", "header_order_fp"):
                common[k] = pa.nulls(n, common[k].type)
        tables = []
        for lo, hi, cols in pieces:
            arrays = []
            for f in EXCHANGE_SCHEMA:
                v = cols[f.name] if f.name in cols else common[f.name].slice(lo, hi - lo)
                arrays.append(v if v.type == f.type else v.cast(f.type))
            tables.append(pa.Table.from_arrays(arrays, schema=EXCHANGE_SCHEMA))
        return pa.concat_tables(tables)
