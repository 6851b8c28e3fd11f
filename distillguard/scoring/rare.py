"""Evidence shares from the entities that are rare in the store at hand (issue 11, small providers).

A cluster's share of an evidence group is the share of its core observed sharing an entity of that group with
another party of the cluster, minus each member's chance of doing so with a random group of the cluster's size
drawn from the rest of the store (``score_clusters``). Observation and chance are per member and group, over
*all* the member's entities of the group. In a small store without account facts nearly every account holds one
entity almost everybody holds — the default system prompt of the store's one big app, the store's commonest SDK
string — so every member's chance in that group is close to 1, and a campaign's five accounts sharing ten
private system prompts that nobody else in the store sends look exactly like five strangers sharing the popular
one: share ≈ 0. An entity held by most of the store neither proves nor disproves anything about a group.

With ``scoring.rare_entity_chance`` set, the group shares read each member's sharing of the entities whose *own*
chance of being shared by a random group of the cluster's size is at most that level — "rare" judged against
this store's population and this cluster's size, not an absolute count — and the chance of those entities only.
A member holding only common entities of a group then contributes neither an observation nor an expectation to
that group (no evidence either way). Member ties, distinctive ties and the rest of the scorer are unchanged.
"""

from __future__ import annotations

from distillguard.scan.base import exact_sum


def rare_entity_sql(cut: float | None, coincidental: str, min_holders: int, n_all: int) -> str:
    """Two SELECT expressions, ``obs_r`` and ``chance_r``, for the per (cluster, member, group) query of
    ``score_clusters`` (aliases there: ``mi`` member's entity, ``ins`` entity's holders in the cluster, ``g``
    group, ``ksz`` cluster size, ``corr`` corroborated pairs). ``cut`` None repeats ``obs`` and ``chance``."""
    per_entity = f"1 - exp(-(ksz.k - 1) * greatest(mi.df - ins.m, 0) / greatest({n_all} - ksz.k, 1))"
    held = (f"ins.np >= CASE WHEN g.grp IN ({coincidental}) AND corr.a IS NULL "
            f"THEN least({min_holders}, ksz.k) ELSE 2 END")
    rare = "TRUE" if cut is None else f"{per_entity} <= {float(cut)}"
    return (f"max(CASE WHEN {held} AND {rare} THEN 1 ELSE 0 END) AS obs_r, "
            f"coalesce(1 - exp(-(any_value(ksz.k) - 1) * "
            f"{exact_sum(f'greatest(mi.df - ins.m, 0) / greatest({n_all} - ksz.k, 1)', rare)}), 0) AS chance_r")
