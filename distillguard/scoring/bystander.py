"""A bystander in a small campaign cluster: a member tied by nothing of its own that collects far shorter answers than
the members that are (``scoring.untied_member_received_share``, ``scoring.member_schedule_min_holders``). Kept apart
from ``risk`` (the member loop calls it) so each stays a readable size."""
from __future__ import annotations

import numpy as np

from distillguard.scan.config import ScoringConfig


def own_tie(own_distinct: set[str], a: str, parties: dict[tuple[str, str], int], cfg: ScoringConfig) -> bool:
    """Whether the member holds distinctive evidence of its own for the received-output comparison
    (``untied_member_received_share``). Busy windows it shares with fewer than ``member_schedule_min_holders`` parties
    of its cluster (one other account) are a pair's coincidence there, not the operation's schedule: an agent
    framework's user runs bursty sessions on the framework's public template, and one campaign account busy in the
    same short windows made it "distinctively" tied (dev4 standard-913; the cluster-level reading is
    ``artefact_schedule_min_holders``). Not a rule of its own: dropping the pair schedule everywhere (the quadratic
    fall-off) cost dev4 standard-905 two campaign accounts that receive what their cluster's members receive."""
    n = cfg.member_schedule_min_holders
    if n is None or "timing" not in own_distinct:
        return bool(own_distinct)
    return bool(own_distinct - {"timing"}) or parties.get((a, "timing"), 0) >= n


def members_tied_received(scores: list, frow: dict[str, dict], member_distinct: dict[str, set[str]],
                           tie_parties: dict[tuple[str, str], int], cfg: ScoringConfig) -> dict[str, float]:
    """Per cluster, the median received-output rank of its members holding a distinctive tie of their own (``own_tie``;
    at least two recorded): what the operation's accounts collect, compared with an untied member's
    (``untied_member_received_share``). A harvest's accounts receive long answers; an agent framework's user tied to
    its cluster by a shared free-mail shape and one account's schedule receives what ordinary users do (dev4
    standard-912: 389 output tokens per exchange, rank 0.00, against the campaign's ~1,000, ranks 0.99)."""
    if cfg.untied_member_received_share is None:
        return {}
    out: dict[str, float] = {}
    for cs in scores:
        got = [float(frow[a]["c_received_output"]) for a in cs.members
               if a in frow and frow[a].get("c_received_output") is not None
               and own_tie(member_distinct.get(a, set()), a, tie_parties, cfg)]
        if len(got) >= 2:
            out[cs.cluster_id] = float(np.median(got))
    return out
