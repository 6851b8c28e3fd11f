"""What a cluster's core asks for and receives, judged against the store's own accounts.

Distillation collects a teacher's answers, so a coordinated group that neither asks for nor receives longer
answers than the provider's ordinary accounts is not harvesting, however much it shares. These tests rank the
core's accounts within the store (Mann-Whitney), so no token count is configured: what is "long" is what the
provider's own population asks and receives. Split from ``risk`` so the cluster scorer stays readable.
"""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pyarrow as pa

from distillguard.graph.edges import KIND_GROUP
from distillguard.scan.config import ScoringConfig


def _known(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def store_values(feats: pa.Table, col: str) -> np.ndarray:
    """Every account's value of ``col`` (an account feature), the unknown ones left out."""
    if col not in feats.column_names:
        return np.array([], dtype=float)
    v = feats[col].to_numpy(zero_copy_only=False).astype(float)
    return v[~np.isnan(v)]


def _core_values(rows: list[dict], col: str, cfg: ScoringConfig) -> np.ndarray | None:
    """The core's values of ``col``, or None when too few of its accounts record it to speak for the core
    (``output_demand_min_accounts`` accounts and ``output_demand_min_coverage`` of the core)."""
    core = np.array([float(r[col]) for r in rows if _known(r.get(col))])
    if len(core) < max(cfg.output_demand_min_accounts, cfg.output_demand_min_coverage * len(rows)):
        return None
    return core


def shorter_than_store(rows: list[dict], store_mt: np.ndarray, cfg: ScoringConfig) -> bool:
    """True when a core's requested output lengths are *clearly* below the store's: a one-sided Mann-Whitney test
    of the core's accounts' mean max_tokens against every account's in the store, p ≤ ``output_demand_alpha``.
    Distillation collects a teacher's answers; a course lab, an eval team or a step-by-step tool's users share a
    great deal but ask for shorter answers than the store's accounts do. A rank test is noise-aware where the
    median rule is not: a core drawing its lengths from the store's own mix (the tests' replay world, a campaign
    that asks ordinary lengths) is not significantly below it and is never capped by this; a core of 3 accounts
    cannot reach a small alpha. Calibrated to the store: ranks within it, no token count is configured."""
    if cfg.output_demand_alpha is None or len(store_mt) < 2 * cfg.output_demand_min_accounts:
        return False
    core = _core_values(rows, "mean_max_tokens", cfg)
    if core is None:
        return False
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(core, store_mt, alternative="less").pvalue) <= cfg.output_demand_alpha


def clearly_above_store(rows: list[dict], col: str, store: np.ndarray, cfg: ScoringConfig) -> bool | None:
    """Whether the core's accounts' ``col`` is *clearly* above the store's: a one-sided Mann-Whitney test of
    the core's accounts against every account in the store, p ≤ ``software_output_alpha`` **and** a
    common-language effect U ÷ (n₁n₂) ≥ ``software_output_min_effect`` (a p-value alone grows significant with
    size: a 1,000-user community a shade above the store is not a harvest). None when the core or the store
    does not record ``col`` on enough accounts to tell."""
    if len(store) < 2 * cfg.output_demand_min_accounts:
        return None
    core = _core_values(rows, col, cfg)
    if core is None:
        return None
    from scipy.stats import mannwhitneyu

    t = mannwhitneyu(core, store, alternative="greater")
    effect = float(t.statistic) / (len(core) * len(store))
    return float(t.pvalue) <= cfg.software_output_alpha and effect >= cfg.software_output_min_effect


def collects_long_answers(rows: list[dict], store_mt: np.ndarray, store_out: np.ndarray,
                          cfg: ScoringConfig) -> bool:
    """True when a one-client core looks like a harvest run through a stock SDK rather than one tool's users:
    it asks for clearly longer answers than the store (mean requested max_tokens) **and**, where output counts
    are recorded, it also *receives* clearly longer answers (mean output tokens per exchange, reasoning
    included). A harvest's prompts are written to draw the teacher's long answers, so it gets what it asks for.
    An agent framework sets a generous max_tokens ceiling by default, but an agent loop's answers are short
    steps (a thought, a tool call) on a context it re-sends: its users ask long and receive less than the
    store's typical account. ``software_received_output: false`` judges by the requested length alone; a core
    or store without output counts is judged by it too. A core without requested lengths cannot show either."""
    if not clearly_above_store(rows, "mean_max_tokens", store_mt, cfg):
        return False
    if not cfg.software_received_output:
        return True
    received = clearly_above_store(rows, "mean_output_tokens", store_out, cfg)
    return received is None or received


#: Version numbers in a user agent ("0.9.1", "2026.1", "5.10.2-beta": digits with at least one dotted part), removed
#: to read one client's builds as one; a bare number ("ua-7", an account's own client string) is left alone.
_VERSION = r"[0-9]+([.][0-9]+)+[0-9A-Za-z_+-]*"


def client_share(con: duckdb.DuckDBPyConnection, core: dict[int, set[str]], versions: bool = False) -> dict[int, float]:
    """Per cluster: the largest share of its core holding one client entity (a user agent, TLS or header-order
    fingerprint; needs table ``inc``). ``versions`` (``scoring.software_client_versions``): a user agent counts with
    its version numbers removed, so the releases of one tool are one client — its users run whichever build they
    installed, while an operation's kit is one build or its own client."""
    kinds = ", ".join(f"'{k}'" for k, g in KIND_GROUP.items() if g == "client")
    pairs = [(a, c) for c, ms in core.items() for a in ms]
    if not pairs:
        return {}
    key = f"CASE WHEN i.kind = 'user_agent' THEN regexp_replace(i.entity, '{_VERSION}', '#', 'g') ELSE i.entity END" \
        if versions else "i.entity"
    con.register("_core", pa.table({"account_id": [a for a, _ in pairs], "cl": [c for _, c in pairs]}))
    rows = con.execute(f"""
        WITH h AS (SELECT c.cl, i.kind, {key} AS e, count(DISTINCT i.account_id) AS n
                   FROM inc i JOIN _core c USING (account_id) WHERE i.kind IN ({kinds}) GROUP BY 1, 2, 3)
        SELECT cl, max(n) FROM h GROUP BY 1""").fetchall()
    con.unregister("_core")
    return {int(c): n / max(len(core[c]), 1) for c, n in rows}


def no_output_demand(rows: list[dict], cfg: ScoringConfig) -> bool:
    """True when a cluster's core collects no output: where the store records requested output lengths for
    most of the core, the core's median ``long_output`` (the upper percentile of requested max_tokens within
    the store) is at most ``min_core_output_demand``. Distillation collects a teacher's answers; an eval team
    on one hosted runner or a popular tool's users behind its step-by-step system prompt share a great deal
    and may be busy, but ask for ordinary answers. A store without max_tokens (or a core that does not send
    it) is never judged by this."""
    if cfg.min_core_output_demand is None or not rows:
        return False
    known = [r for r in rows if _known(r.get("mean_max_tokens"))]
    if len(known) < 0.5 * len(rows):
        return False
    return float(np.median([float(r["c_long_output"]) if _known(r.get("c_long_output")) else 0.0
                            for r in known])) <= cfg.min_core_output_demand


def artefact_tie(group_share: dict[str, float], core_groups: list[set[str]], sh, cfg: ScoringConfig,
                 access: bool = True) -> list[str] | None:
    """The evidence groups a cluster is held together by when they are all public artefacts
    (``scoring.artefact_groups``), else None. ``group_share``: each group's share of the core beyond chance;
    ``core_groups``: each core member's groups shared beyond chance; ``sh``: what the members share
    (``campaigns.describe.Shared``, for the network's shape).

    Why: a framework's users, a tutoring platform's students or a popular tool's users are tied by what using
    that product leaves in every request — its client string, its system prompt and templates — and often by one
    ISP gateway or campus NAT, and the hours the cohort keeps (an eval runner's cron, a class's lab windows:
    ``timing`` is in ``artefact_groups`` by default). In a small store those are private to the store, so they
    count as much as an operation's own kit, and the group reaches "strongly coordinated" exactly as a small
    campaign does. Such a group is an artefact tie only when *nothing else* holds it: no group outside
    ``artefact_groups`` (a card, a sign-up burst, an e-mail shape, an indicator) shared by half the core (as a
    group share or as the members' own beyond-chance ties), a network
    tie concentrated on one /24 (a gateway), not spread over a proxy pool's ranges, and the product in sight —
    its client or its gateway (``artefact_access_groups``): private prompts alone are also what a hydra's own kit
    looks like through rotating proxies and varied clients. With ``access`` false (the workload-peer test) a tie of
    prompts alone is judged too, but not prompts and a schedule without the product in sight: a kit of private
    templates run on one schedule through varied clients and proxies is one operator's automation (tests/scan's
    replay hydra: 24 accounts, templates and a schedule, drawing the store's ordinary lengths), not a cohort —
    unless fewer than ``artefact_schedule_min_holders`` of the core keep that schedule (``_pair_schedule``)."""
    held = [g for g, v in group_share.items() if v >= cfg.evidence_share]
    art = set(cfg.artefact_groups)
    if not held or any(g not in art for g in held):
        return None
    if cfg.artefact_access_groups and not set(held) & set(cfg.artefact_access_groups) \
            and (access or set(held) - ({"timing"} if _pair_schedule(core_groups, cfg) else set()) != {"content"}):
        return None   # no product in sight: a hydra's own kit through rotating proxies (and on its own schedule)
    other = sum(1 for gs in core_groups if gs - art) / max(len(core_groups), 1)
    if other >= cfg.evidence_share:
        return None
    net = [g for g in ("network",) if g in held or any(g in gs for gs in core_groups)]
    if net and sh is not None:
        ip = sh.kind("ip24")
        if ip is not None and ip.n_accounts > 0 and ip.top_accounts < cfg.artefact_network_concentration * ip.n_accounts:
            return None
    return held


def _pair_schedule(core_groups: list[set[str]], cfg: ScoringConfig) -> bool:
    """Whether the core's schedule is kept by fewer than ``artefact_schedule_min_holders`` of its members: two
    accounts' busy windows overlapping on a template (an agent framework's bursty sessions), not a kit run on one
    schedule by an operator's automation — the workload-peer test then judges the tie as prompts alone."""
    n = cfg.artefact_schedule_min_holders
    return n is not None and sum(1 for gs in core_groups if "timing" in gs) < n


def harvest_beyond_store(rows: list[dict], outside: dict[str, np.ndarray], cfg: ScoringConfig,
                         columns: list[str] | None = None) -> tuple[bool | None, float]:
    """Whether a core collects the teacher's answers beyond the store's norm, and the largest effect: for each of
    ``artefact_harvest_columns`` (harvest shape — long single-turn answers asked for —, and the output tokens
    actually received per exchange), a one-sided Mann-Whitney test of the core's accounts against the accounts
    *outside* the cluster (``outside``: column -> their values), p ≤ ``artefact_harvest_alpha`` and U ÷ (n₁n₂) ≥
    ``artefact_harvest_min_effect``; one column passing is enough. A one-shot harvest asks long single-turn
    answers; an agentic-transcript harvest is multi-turn but still receives far longer answers than the store's
    accounts; a framework's agent loop receives short steps and a tutoring cohort ordinary explanations.
    Calibrated to the store: ranks within it. None when no column is recorded on ``artefact_harvest_min_accounts``
    accounts of the core and ``output_demand_min_accounts`` of the rest of the store (a core too small to show
    anything is not judged). ``columns``: read these instead of ``artefact_harvest_columns`` (a harvesting
    sub-cluster is not judged on the harvest shape that selected its members)."""
    from scipy.stats import mannwhitneyu

    best, judged = 0.0, False
    for col in cfg.artefact_harvest_columns if columns is None else columns:
        core = np.array([float(r[col]) for r in rows if _known(r.get(col))])
        out = outside.get(col, np.array([]))
        if len(core) < cfg.artefact_harvest_min_accounts or len(out) < cfg.output_demand_min_accounts:
            continue
        judged = True
        t = mannwhitneyu(core, out, alternative="greater")
        effect = float(t.statistic) / (len(core) * len(out))
        best = max(best, effect)
        if float(t.pvalue) <= _num_alpha(cfg.artefact_harvest_alpha) and effect >= cfg.artefact_harvest_min_effect:
            return True, effect
    return (False if judged else None), best


def receives_less_than_outside(rows: list[dict], outside: dict[str, np.ndarray], cfg: ScoringConfig) -> float | None:
    """The common-language effect of the core's mean output tokens per exchange over the accounts outside its
    cluster (``outside``: column -> their values) when the core receives *clearly* fewer — a one-sided
    Mann-Whitney test, p ≤ ``percentile_gate_received_alpha`` — else None (also when the test is off or either
    side records too few values to tell). The bar of "clearly" is the collecting test's own, turned round.

    Why: the collecting test passes a core on harvest shape *or* received output. Harvest shape is what the core
    asks (a max_tokens rank within the store × its single-turn share); a cohort's homework with a generous ceiling
    asks long single-turn answers, and in a store of short-ceiling tools it ranks in the tail. A harvest gets the
    long answers it asks for; a cohort asking a ceiling it does not use receives less than the rest of the store.
    Only then is its harvest shape not evidence that it collects."""
    alpha = cfg.percentile_gate_received_alpha
    if alpha is None:
        return None
    core = np.array([float(r["mean_output_tokens"]) for r in rows if _known(r.get("mean_output_tokens"))])
    out = outside.get("mean_output_tokens", np.array([]))
    if len(core) < cfg.artefact_harvest_min_accounts or len(out) < cfg.output_demand_min_accounts:
        return None
    from scipy.stats import mannwhitneyu

    t = mannwhitneyu(core, out, alternative="less")
    return 1.0 - float(t.statistic) / (len(core) * len(out)) if float(t.pvalue) <= alpha else None


def unused_ceiling(rows: list[dict], outside: dict[str, np.ndarray], cfg: ScoringConfig) -> float | None:
    """The received-output effect of a core that asks clearly long single-turn answers (harvest shape above the
    accounts outside its cluster, the collecting test's bars) yet receives fewer output tokens than they do
    (``receives_less_than_outside``), else None: a cohort's generous ceiling, not a harvest."""
    if harvest_beyond_store(rows, outside, cfg, ["c_harvest_shape"])[0] is not True:
        return None
    return receives_less_than_outside(rows, outside, cfg)


def _num_alpha(v: float | None) -> float:
    return -1.0 if v is None else float(v)


def workload_matrix(feats: pa.Table) -> np.ndarray:
    """Every account's workload, one row per account in ``feats`` order: each signal's hit share (``share_*``) and
    its reasoning, tool and image shares — what it asks the model for (as ``subclusters._workloads``)."""
    cols = sorted(c for c in feats.column_names if c.startswith("share_"))
    cols += [c for c in ("reasoning_share", "tools_share", "images_share") if c in feats.column_names]
    mat = np.zeros((feats.num_rows, len(cols)))
    for j, col in enumerate(cols):
        mat[:, j] = np.nan_to_num(np.asarray(feats[col].to_numpy(zero_copy_only=False), dtype=float))
    return mat


def outreceives_peers(core_idx: list[int], inside_idx: list[int], work: np.ndarray, received: np.ndarray,
                      cfg: ScoringConfig) -> tuple[bool | None, float, int]:
    """Whether a core receives clearly longer answers than the accounts *outside* its cluster that do the same work
    (workload cosine to the core's mean at least ``artefact_peer_workload``): a one-sided Mann-Whitney test on
    mean output tokens per exchange, p ≤ ``artefact_harvest_alpha`` and effect ≥ ``artefact_harvest_min_effect``.
    Returns (verdict, effect, peers); verdict None when fewer than ``artefact_peer_min_accounts`` peers record it.

    Why: in a small store a coding tool's users are a fifth of the accounts, and what a coding agent receives is
    long by nature, so against the whole store a handful of developers tied by their tool's client and prompts
    "collects long answers" exactly as a coding harvest does. Against the other accounts asking the same kind of
    thing they do not: they receive what developers receive. A harvest draws more of the teacher's answer than
    the ordinary users of the same workload — that is what it is for. Too few peers (a workload only the
    campaign's own other accounts share) say nothing, and the cluster is judged as before."""
    if cfg.artefact_peer_min_accounts is None or not core_idx:
        return None, 0.0, 0
    mu = work[core_idx].mean(axis=0)
    norms = np.linalg.norm(work, axis=1) * float(np.linalg.norm(mu))
    cos = np.divide(work @ mu, norms, out=np.zeros(len(work)), where=norms > 0)
    mask = cos >= cfg.artefact_peer_workload
    mask[inside_idx] = False
    peers = received[mask]
    peers = peers[np.isfinite(peers)]
    core = received[core_idx]
    core = core[np.isfinite(core)]
    if len(peers) < cfg.artefact_peer_min_accounts or len(core) < cfg.artefact_harvest_min_accounts:
        return None, 0.0, len(peers)
    from scipy.stats import mannwhitneyu

    t = mannwhitneyu(core, peers, alternative="greater")
    effect = float(t.statistic) / (len(core) * len(peers))
    return (float(t.pvalue) <= _num_alpha(cfg.artefact_harvest_alpha)
            and effect >= cfg.artefact_harvest_min_effect), effect, len(peers)


def artefact_verdict(gs: dict[str, float], core_groups: list[set[str]], sh, rows: list[dict], inside_idx: list[int],
                     core_idx: list[int], store_cols: dict[str, np.ndarray], peer_data, harvest: bool,
                     cfg: ScoringConfig) -> tuple[list[str], float, str] | None:
    """The public-artefact rule for one strongly coordinated cluster: (tie, effect, what it failed) when its
    coordination is to be capped, else None. A community tied only by artefacts (``artefact_tie``) must collect
    answers beyond the store's accounts outside it (``harvest_beyond_store``). With ``artefact_peer_min_accounts``
    every cluster tied only by artefact groups — also one held by prompts alone, and a harvesting sub-cluster not
    carried by a hidden tie — must also receive more than the accounts doing the same work
    (``outreceives_peers``): the product need not be in sight there, because the comparison is with accounts
    asking for the same things, not with the whole store (a hydra's kit drawing ordinary lengths is left to the
    store test's access rule only when it has few workload peers). A harvesting sub-cluster is never judged
    against the whole store: its members are in the store's harvest-shape tail by construction. ``inside_idx`` / ``core_idx``: row numbers in the feature
    table of the cluster's members and core; ``store_cols``: the store's ``artefact_harvest_columns``;
    ``peer_data``: (workload matrix, mean output tokens) or None."""
    tie = None if harvest else artefact_tie(gs, core_groups, sh, cfg)
    if tie is not None:
        beyond, effect = harvest_beyond_store(rows, outside_values(store_cols, inside_idx), cfg)
        if beyond is False:
            return tie, effect, "store"
    if peer_data is None:
        return None
    tie = tie or artefact_tie(gs, core_groups, sh, cfg, access=False)
    if tie is None:
        return None
    verdict, effect, n = outreceives_peers(core_idx, inside_idx, peer_data[0], peer_data[1], cfg)
    return (tie, effect, f"peers:{n}") if verdict is False else None


def artefact_reason(tie: list[str], effect: float, failed: str) -> str:
    """The evidence line of a cluster the public-artefact rule capped."""
    words = {"client": "a client", "content": "prompts", "network": "one network", "timing": "a shared schedule"}
    head = "weakly coordinated: its core is tied only by " + " and ".join(words.get(g, g) for g in sorted(tie))
    if failed == "store":
        return (head + " that using one product leaves in every request, and its traffic is no more harvest-shaped, "
                f"nor does it receive longer answers, than the store's (largest effect {effect:.2f}): a product's "
                "users, not a harvest")
    return (head + f", and it receives no longer answers than the {failed.split(':')[1]} accounts outside it doing "
            f"the same work (effect {effect:.2f}): a product's users, not a harvest")
def outside_values(store_cols: dict[str, np.ndarray], inside_idx: list[int]) -> dict[str, np.ndarray]:
    """The store's recorded values of each column for the accounts *outside* a cluster (``inside_idx``: its members'
    rows in the feature table) — what a core is compared with: the cluster is not judged against itself."""
    return {col: v[np.isfinite(v)] for col, v in ((col, np.delete(store_cols[col], inside_idx)) for col in store_cols)}
