"""Workload harvest groups: an operation found by what its accounts ask, not by what they share.

A small provider's harvest campaigns often share nothing a coordination graph keeps: no /24, no card, no
synchronised schedule, a client fingerprint half the store also uses (issue 11; docs/benchmarks.md, "where each
campaign account is lost"). Their communities are capped by the evidence-group test, or they are in none. What
they do share is their *workload* — the same capability, the same elicitation, the same task families — run in a
harvesting shape (long single-turn answers). The store's harvest-shape tail is where they sit.

So: take the accounts at or above the store's ``quantile`` of ``c_harvest_shape``; group them by workload
(cosine similarity of each signal's hit share and the reasoning / tool / image shares, a tail account joining
the group whose mean is nearest, at least ``similarity``); and for each group ask how likely it is that a tail of
this size, drawn at random from the store, holds at least that many of the store's accounts on this workload
(hypergeometric upper tail over every account whose workload is that close to the group's mean, Bonferroni over
the groups tested). A benign population that asks for long answers (chat users, developers) has some accounts
in the tail, about as many as its size predicts, and most of its accounts outside it (``min_enrichment``); an
operation's accounts are nearly all there. Only store-relative quantities, and fields every provider has (the
requests' own signals and lengths); nothing about accounts' identity or infrastructure.

A member whose own intent evidence sits below the group's bulk on most of ``member_columns`` at once (robust z,
``member_max_z``) is left out of it: it joined by tail rank and workload alone (``_outlying_members``).

A group that passes is a cluster (``clw-NNNN``) with coordination 1 (its null rejected) and suspicion the mean of
its members' own, scored like every cluster (``risk.cluster_risk``), and its members take its risk:
each is in it through its own traffic. Except a member whose own suspicion is under ``member_peer_ratio`` of the
rest of its group's (leave-one-out mean): nothing but the workload ties it to the others, so it is judged on its own
suspicion at the group's coordination (``_member_risk``; every group size). And except a member that asks for,
receives and elicits no more than the store's accounts doing the same work outside the group (under their median on
every ``member_demand_columns`` column, ``demand_bars``): the group's suspicion says nothing about what *it* draws from
the teacher, so it too is judged on its own suspicion (company developers behind one NAT on a coding harvest's
workload, cohorts_mixed scale 0.03, docs/benchmarks.md, branch ``cm23``). And except a member far below its group's
own bulk in tokens asked and received, where the group is clearly above those peers (``level_bulk``): a harvest's kit
asks one length setting, a chat user in the tail on the same workload a third of it, which the demand check's store
percentiles squeeze together (dev2 quiet_hydra-308, branch ``prec26``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from scipy.stats import hypergeom

from distillguard.scan.config import ScoringConfig, WorkloadGroupConfig
from distillguard.scoring.demand import harvest_beyond_store
from distillguard.scoring.reasons import account_reasons
from distillguard.scoring.risk import ClusterScore, cluster_risk
from distillguard.scoring.suspicion import received_lift, with_received

WORKLOAD_EXTRA = ("reasoning_share", "tools_share", "images_share")


def workload_matrix(feats: pa.Table) -> np.ndarray:
    """Each account's workload vector: every ``share_*`` signal column and the reasoning, tool and image shares."""
    cols = sorted(c for c in feats.column_names if c.startswith("share_"))
    cols += [c for c in WORKLOAD_EXTRA if c in feats.column_names]
    if not cols:
        return np.zeros((feats.num_rows, 0))
    return np.nan_to_num(np.stack([np.asarray(feats[c].to_numpy(zero_copy_only=False), dtype=float)
                                   for c in cols], axis=1))


def _similarity(unit: np.ndarray, empty: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Cosine similarity of every account's workload to ``centre``; two empty workloads are the same."""
    n = float(np.linalg.norm(centre))
    if n == 0 or unit.shape[1] == 0:
        return empty.astype(float)
    return unit @ (centre / n)


def workload_groups(feats: pa.Table, cfg: WorkloadGroupConfig) -> list[dict]:
    """The tail's workload groups that reject the null. Each: ``members`` (account ids), ``k`` (members), ``K``
    (store accounts on the workload), ``tail`` and ``n`` (tail and store sizes), ``p`` (Bonferroni-corrected)."""
    if feats.num_rows == 0 or "c_harvest_shape" not in feats.column_names:
        return []
    hs = np.nan_to_num(np.asarray(feats["c_harvest_shape"].to_numpy(zero_copy_only=False), dtype=float))
    x = workload_matrix(feats)
    norm = np.linalg.norm(x, axis=1) if x.shape[1] else np.zeros(len(hs))
    unit = x / np.maximum(norm, 1e-12)[:, None] if x.shape[1] else x
    empty = norm == 0
    cut = float(np.quantile(hs, cfg.quantile))
    tail = np.where((hs >= cut) & (hs > 0))[0]
    n, t = len(hs), len(tail)
    groups: list[list[int]] = []
    sums = np.zeros((0, x.shape[1]))  # each group's summed workload: cosine to the sum is cosine to the mean
    for i in tail[np.argsort(-hs[tail], kind="stable")]:  # leader clustering, most harvest-shaped first
        if groups:
            sn = np.linalg.norm(sums, axis=1) if x.shape[1] else np.zeros(len(groups))
            sims = np.where(sn > 0, (sums @ unit[i]) / np.maximum(sn, 1e-12) if x.shape[1] else 0.0,
                            1.0 if empty[i] else 0.0)
            j = int(np.argmax(sims))
        if groups and sims[j] >= cfg.similarity:
            groups[j].append(int(i))
            sums[j] += x[i]
        else:
            groups.append([int(i)])
            sums = np.vstack([sums, x[i:i + 1]])
    ids = feats["account_id"].to_pylist()
    out = []
    tests = max(sum(len(g) >= cfg.min_accounts for g in groups), 1)  # only those groups are tested
    for g in groups:
        if len(g) < cfg.min_accounts:
            continue
        same = _similarity(unit, empty, x[g].mean(axis=0)) >= cfg.similarity
        big_k = int(same.sum())
        k = int(same[g].sum())
        if k < cfg.min_accounts or big_k == 0:
            continue
        p = min(1.0, float(hypergeom.sf(k - 1, n, big_k, t)) * tests)
        if p <= cfg.alpha and k >= cfg.min_enrichment * big_k:
            members = [i for i in g if same[i]]
            weak = _outlying_members(feats, members, cfg)
            kept = [i for i in members if i not in weak]
            if len(kept) < cfg.min_accounts:
                continue
            out.append(dict(members=sorted(ids[i] for i in kept), k=k, K=big_k, tail=t, n=n, p=p,
                            left_out=sorted(ids[i] for i in weak)))
    return out


def _outlying_members(feats: pa.Table, members: list[int], cfg: WorkloadGroupConfig) -> set[int]:
    """Members whose own evidence sits below the group's bulk: robust z (median, 1.4826 × MAD floored at
    ``member_min_spread``) below ``-member_max_z`` on more than ``member_max_share`` of ``member_columns``.
    A member is in a group by its tail rank and workload alone; a benign account on the operation's workload
    (a chat user asking the same kind of long answer) is there too, but its intent evidence is far weaker than
    the operation's accounts' on most columns at once, while an attacker's own variation is weak on one or two.
    Only low sides count: a member stronger than the group is no reason to doubt it."""
    cols = [c for c in cfg.member_columns if c in feats.column_names]
    if len(members) < cfg.member_min_group or not cols:
        return set()
    idx = np.asarray(members)
    m = np.stack([np.nan_to_num(np.asarray(feats[c].to_numpy(zero_copy_only=False), dtype=float)[idx])
                  for c in cols], axis=1)
    med = np.median(m, axis=0)
    spread = np.maximum(1.4826 * np.median(np.abs(m - med), axis=0), cfg.member_min_spread)
    low = ((m - med) / spread < -cfg.member_max_z).sum(axis=1)
    return {int(i) for i, c in zip(idx, low, strict=True) if c > cfg.member_max_share * len(cols)}


def score_workload_groups(feats: pa.Table, groups: list[dict], cfg: ScoringConfig,
                          id_prefix: str = "clw") -> tuple[list[ClusterScore], pa.Table]:
    """The groups as clusters and their account_risk-shaped table (``score_clusters``' columns)."""
    rows = {r["account_id"]: r for r in feats.to_pylist()}
    scores, ids, risk, cl_ids, reasons = [], [], [], [], []
    lift = received_lift(cfg) if cfg.workload_groups.read_received else 0.0
    # the demand check's inputs, read once for every group: the workload matrix and the demand columns
    wg = cfg.workload_groups
    demand = {c: np.asarray(feats[c].to_numpy(zero_copy_only=False), dtype=float)
              for c in (wg.member_demand_columns or []) if c in feats.column_names} if groups else {}
    levels = {c: np.asarray(feats[c].to_numpy(zero_copy_only=False), dtype=float)
              for c in (wg.member_level_columns or []) if c in feats.column_names} if groups else {}
    x = workload_matrix(feats) if demand or levels else None
    accounts = np.asarray(feats["account_id"].to_pylist(), dtype=object) if demand or levels else None
    org_size = _org_sizes(feats) if wg.declared_discount else {}
    for j, g in enumerate(groups):
        cid = f"{id_prefix}-{j:04d}"
        susp = float(np.mean([float(rows[a].get("suspicion") or 0.0) for a in g["members"]]))
        why = [f"{g['k']} of the {g['K']} accounts in this store that run this workload are in its top "
               f"{g['tail']} of {g['n']} on harvest shape (long single-turn answers); by chance "
               f"p = {g['p']:.1g}: one workload harvested by many accounts, with or without shared infrastructure"]
        collects = _collects(feats, [rows[a] for a in g["members"]], set(g["members"]), cfg) if lift > 0 else None
        if collects is not None:
            susp0 = susp
            susp = float(np.mean([with_received(float(rows[a].get("suspicion") or 0.0),
                                                rows[a].get("c_received_output"), lift) for a in g["members"]]))
            why.append(f"its accounts receive clearly longer answers than the store's (effect {collects:.2f}): "
                       f"its suspicion reads what it receives ({susp0:.2f} → {susp:.2f})")
        raw = {a: float(rows[a].get("suspicion") or 0.0) for a in g["members"]}
        own = dict(raw)
        inside = np.isin(accounts, list(g["members"])) if demand or levels else None
        # the accounts outside the group doing its work: one yardstick for the demand and the level checks
        peers = _peers_mask(x, inside, wg) if inside is not None else None
        peers_bars = demand_bars(peers, inside, demand, wg) if demand else None
        peers_levels = level_bulk(peers, inside, levels, wg) if levels else None
        if collects is not None:
            own = {a: with_received(s, rows[a].get("c_received_output"), lift) for a, s in own.items()}
        discount, verified = declared_discount([rows[a] for a in g["members"]], org_size, cfg)
        if discount < 1.0:
            why.append(f"{verified:.0%} of its accounts belong to organisations verified to level "
                       f"{cfg.declared_org_verification} with several accounts: declared, not hidden (risk × {discount:.2f})")
        r = cluster_risk(1.0, susp, cfg, discount)
        scores.append(ClusterScore(cid, list(g["members"]), r, 1.0, susp, {}, {}, why))
        for a in g["members"]:
            ra, mine = _member_risk(a, own, r, cfg)
            below = []  # why the member is not given the group's risk, each with its measured bar
            if peers_bars is not None and not _asks_more(rows[a], peers_bars[1]):
                below.append(f"this account asks for, receives and elicits no more than the {peers_bars[0]} "
                             f"accounts outside its group doing the same work (under their "
                             f"{wg.member_demand_quantile:.0%} point on {', '.join(peers_bars[1])})")
            if peers_levels is not None and _below_level(rows[a], peers_levels[1], wg):
                below.append(f"this account asks for or receives far fewer tokens than its group's bulk (below "
                             f"{wg.member_max_z:g} robust z on {', '.join(peers_levels[1])}, where the group is "
                             f"clearly above the {peers_levels[0]} accounts outside it doing the same work)")
            if below:
                ra = min(ra, cluster_risk(1.0, raw[a], cfg))
                mine = mine + [f"{b}: judged on its own traffic at the group's coordination (risk {ra:.2f})"
                               for b in below]
            ids.append(a)
            risk.append(ra)
            cl_ids.append(cid)
            reasons.append(why + mine + account_reasons(rows[a], scores[-1]))
    return scores, pa.table({"account_id": pa.array(ids, pa.string()), "risk": pa.array(risk, pa.float64()),
                             "cluster_id": pa.array(cl_ids, pa.string()),
                             "reasons": pa.array(reasons, pa.list_(pa.string()))})


def _org_sizes(feats: pa.Table) -> dict:
    """Accounts per ``org_id`` over the store (none without account facts)."""
    if "org_id" not in feats.column_names:
        return {}
    out: dict = {}
    for o in feats["org_id"].to_pylist():
        if o is not None:
            out[o] = out.get(o, 0) + 1
    return out


def declared_discount(rows: list[dict], org_size: dict, cfg: ScoringConfig) -> tuple[float, float]:
    """(risk multiplier, verified share) for a group of accounts: ``1 − (1 − declared_discount) × share``, the share
    being its members in an organisation of at least two accounts (``org_size``) verified to
    ``declared_org_verification`` — the rule ``score_clusters`` applies to a community. Why: a verified customer's
    own accounts running one workload are a declared group, not a hidden one (``WorkloadGroupConfig.declared_discount``)."""
    if not rows or not org_size:
        return 1.0, 0.0
    share = sum(1 for r in rows if org_size.get(r.get("org_id"), 0) >= 2
                and float(r.get("verification_level") or 0) >= cfg.declared_org_verification) / len(rows)
    return 1.0 - (1.0 - cfg.declared_discount) * share, share


def demand_bars(peers: np.ndarray | None, inside: np.ndarray, columns: dict[str, np.ndarray],
                cfg: WorkloadGroupConfig) -> tuple[int, dict[str, float]] | None:
    """(peers, bars): per ``member_demand_columns`` column (``columns``: each one's values over the store's accounts,
    rows as the ``workload_matrix``), its ``member_demand_quantile`` over the group's workload peers (``peers``,
    ``_peers_mask``; ``inside``: the group's rows), and their count; only the columns on which the group as a whole is
    clearly above those peers (``_clearly_above``): there the group's harvest draws more than the work does,
    elsewhere a member under the peers' median is no different from its group. None when the check is off, fewer
    than ``member_demand_min_peers`` peers (no yardstick) or no column qualifies.
    Why: the group is found on harvest shape and workload alone; what a harvest is *for* is drawing more of the
    teacher than ordinary accounts doing the same work, so a member that neither asks for, receives nor elicits
    more than them is not shown to be part of it by the group (``WorkloadGroupConfig.member_demand_columns``)."""
    if not columns or peers is None or int(peers.sum()) < cfg.member_demand_min_peers:
        return None
    bars: dict[str, float] = {}
    for c, allv in columns.items():
        v, g = allv[peers], allv[inside]
        v, g = v[np.isfinite(v)], g[np.isfinite(g)]
        # only a column on which the group as a whole draws clearly more than its peers is its harvest's demand
        if _clearly_above(g, v, cfg):
            bars[c] = float(np.quantile(v, cfg.member_demand_quantile))
    return (int(peers.sum()), bars) if bars else None


def _peers_mask(x: np.ndarray, inside: np.ndarray, cfg: WorkloadGroupConfig) -> np.ndarray | None:
    """The accounts outside the group (``inside``) whose workload is the group's: cosine to its members' mean
    workload at least ``member_demand_workload``. None on a store without workload columns."""
    if len(x) == 0 or x.shape[1] == 0:
        return None
    mu = x[inside].mean(axis=0)
    norms = np.linalg.norm(x, axis=1) * float(np.linalg.norm(mu))
    cos = np.divide(x @ mu, norms, out=np.zeros(len(x)), where=norms > 0)
    return (cos >= cfg.member_demand_workload) & ~inside


def _clearly_above(g: np.ndarray, v: np.ndarray, cfg: WorkloadGroupConfig) -> bool:
    """The group's values ``g`` are clearly above its peers' ``v``: one-sided Mann-Whitney, p ≤
    ``member_demand_alpha`` and effect ≥ ``member_demand_min_effect``, with at least ``member_demand_min_peers`` peer
    values and two of the group's."""
    if len(v) < cfg.member_demand_min_peers or len(g) < 2:
        return False
    from scipy.stats import mannwhitneyu

    t = mannwhitneyu(g, v, alternative="greater")
    return float(t.pvalue) <= cfg.member_demand_alpha and \
        float(t.statistic) / (len(g) * len(v)) >= cfg.member_demand_min_effect


def level_bulk(peers: np.ndarray | None, inside: np.ndarray, columns: dict[str, np.ndarray],
               cfg: WorkloadGroupConfig) -> tuple[int, dict[str, tuple[float, float]]] | None:
    """(peers, bulk): per ``member_level_columns`` column (``columns``: its values over the store, rows as the
    ``workload_matrix``), the group's median and spread in log (1.4826 × MAD, at least ``member_level_min_spread``),
    only for the columns on which the group as a whole is clearly above its workload peers (``peers``, the demand
    check's, and its test). None when there are too few peers or no column qualifies.
    Why: the demand check compares a member with its peers' median on store percentiles, and a benign member chosen
    into the harvest-shape tail is above that on the requested length by construction; what sets a harvest apart is
    its kit's length setting, which its accounts share closely in tokens (``WorkloadGroupConfig.member_level_columns``)."""
    if not columns or peers is None or int(peers.sum()) < cfg.member_demand_min_peers:
        return None
    bulk: dict[str, tuple[float, float]] = {}
    for c, allv in columns.items():
        v, g = allv[peers], allv[inside]
        v, g = np.log(np.maximum(v[np.isfinite(v)], 1.0)), np.log(np.maximum(g[np.isfinite(g)], 1.0))
        if _clearly_above(g, v, cfg):
            med = float(np.median(g))
            bulk[c] = (med, max(1.4826 * float(np.median(np.abs(g - med))), cfg.member_level_min_spread))
    return (int(peers.sum()), bulk) if bulk else None


def _below_level(row: dict, bulk: dict[str, tuple[float, float]], cfg: WorkloadGroupConfig) -> bool:
    """The member is below its group's bulk by more than ``member_max_z`` on every column of ``bulk`` (an unknown
    value is no evidence against it)."""
    for c, (med, spread) in bulk.items():
        v = row.get(c)
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return False
        if (float(np.log(max(float(v), 1.0))) - med) / spread >= -cfg.member_max_z:
            return False
    return True


def _asks_more(row: dict, bars: dict[str, float]) -> bool:
    """The member reaches its workload peers' bar on at least one column (an unknown value is no evidence against it)."""
    for c, bar in bars.items():
        v = row.get(c)
        if v is None or (isinstance(v, float) and np.isnan(v)) or float(v) >= bar:
            return True
    return False


def _member_risk(a: str, own: dict[str, float], r: float, cfg: ScoringConfig) -> tuple[float, list[str]]:
    """A member's risk from its group: the group's ``r`` when its own suspicion (in the group's reading) is at least
    ``workload_groups.member_peer_ratio`` × the mean of the *other* members' (leave-one-out: a benign member of a
    small group would otherwise lower its own yardstick); else judged on its own traffic at the group's
    coordination, ``cluster_risk(1, own)``, and never above ``r``. A workload group's members share no
    infrastructure, only a workload in the harvest-shape tail, which a benign account on that workload (a reseller,
    a tool's user asking long answers) has too: nothing ties its traffic to the others', so their suspicion cannot
    speak for it. Below ``member_min_group`` (where ``_outlying_members`` does not run) this is the only check."""
    ratio = cfg.workload_groups.member_peer_ratio
    if ratio is None or len(own) < 2:
        return r, []
    peers = (sum(own.values()) - own[a]) / (len(own) - 1)
    if own[a] >= ratio * peers:
        return r, []
    ra = min(r, cluster_risk(1.0, own[a], cfg))
    return ra, [f"this account's own suspicion ({own[a]:.2f}) is under {ratio:.0%} of the rest of its group's "
                f"({peers:.2f}): judged on its own traffic at the group's coordination (risk {ra:.2f})"]


def _collects(feats: pa.Table, rows: list[dict], members: set[str], cfg: ScoringConfig) -> float | None:
    """The received-output effect when the group's accounts receive clearly longer answers than the accounts
    outside it (``demand.harvest_beyond_store`` on ``mean_output_tokens``), else None. Why: the group was found on
    the harvest shape its members *ask*; what the teacher actually produced for them is separate evidence, and the
    one a proxy pool's owners' ordinary traffic does not dilute away (their answers are the store's ordinary ones)."""
    if "mean_output_tokens" not in feats.column_names:
        return None
    vals = np.asarray(feats["mean_output_tokens"].to_numpy(zero_copy_only=False), dtype=float)
    inside = np.array([a in members for a in feats["account_id"].to_pylist()])
    out = vals[~inside]
    ok, effect = harvest_beyond_store(rows, {"mean_output_tokens": out[~np.isnan(out)]}, cfg, ["mean_output_tokens"])
    return effect if ok else None

