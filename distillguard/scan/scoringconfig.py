"""Scoring configuration (the ``scan.scoring`` section): the account model, workload groups, learning from analysts
and every threshold and weight of cluster and account risk. Split from ``scan/config.py`` (the scan's other sections
and the loader) because this one section is most of the reference; ``scan.config`` re-exports its names.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from distillguard.scan.configbase import Strict as _Strict

#: The account model's default weights (docs/detection.md, "The account model"). Every component is in [0, 1].
DEFAULT_ACCOUNT_WEIGHTS: dict[str, float] = {
    "intent": 2.6,          # share of requests eliciting reasoning / grading / rewrites
    "capability": 0.9,      # share concentrated on one capability (agentic, coding, vision)
    "task_items": 0.4,      # share whose core is a known task-set item
    "reasoning": 1.6,       # share of requests asking for reasoning/thinking
    "single_turn": 0.8,
    "template_reuse": 0.6,
    "limit_util": 1.6,      # volume against the account's own limit (no limit on record: the volume percentile)
    "volume": 0.0,          # requests per active day, upper percentile within the store
    "long_output": 0.0,     # requested max_tokens, upper percentile within the store
    "harvest_shape": 1.0,   # long_output × single-turn share: long single-turn answers, a corpus being collected
    "received_output": 0.0,  # output tokens received per exchange, upper percentile within the store (0.5: docs/benchmarks.md fam17)
    "new_account": 0.5,
    "low_verification": 0.3,
    "fast_pivot": 1.2,      # moved to a newly released model within a day
}


def _over_defaults(v: dict[str, float], defaults: dict[str, float], what: str) -> dict[str, float]:
    """A weight table given in part over its defaults: a name the defaults lack is a misspelling, an error."""
    bad = sorted(set(v) - set(defaults))
    if bad:
        raise ValueError(f"unknown {what} {bad}; known: {sorted(defaults)}")
    return {**defaults, **v}


#: Evidence groups and their weight in a cluster's coordination (``scoring.group_weights``).
DEFAULT_GROUP_WEIGHTS = {"network": 0.6, "client": 0.5, "payment": 1.2, "email": 0.5, "creation": 0.9,
                         "content": 0.6, "timing": 0.9, "intel": 1.5}


class AccountModelConfig(_Strict):
    """suspicion = σ(bias + Σ weights[k] · x_k); unknown component names are errors."""
    bias: float = -3.2
    weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_ACCOUNT_WEIGHTS))
    #: Share components are shrunk by n / (n + prior_exchanges) for an account with n exchanges.
    prior_exchanges: float = Field(5.0, ge=0)
    #: Before an account's mean requested max_tokens is ranked within the store, it is shrunk towards the store's
    #: median by n / (n + rank_prior_exchanges), n = its exchanges that carry max_tokens: one request at a huge
    #: max_tokens does not outrank a harvester's many (0: rank the raw means).
    rank_prior_exchanges: float = Field(5.0, ge=0)
    #: A pooled group (``scoring.pool_min_coordination``) ranks its requested length as one body of requests:
    #: the pooled mean max_tokens, shrunk by the group's own count of requests carrying it, as an upper
    #: percentile among the store's accounts — instead of averaging members' ranks, each pulled to the store's
    #: median by its own handful of requests. False averages the members' ranks (as before 2026-12-04).
    pool_output_rank: bool = True
    #: A pooled group's holders of one payment instrument (a card two or more of its parties hold) are judged on
    #: their combined use of a per-account limit: the group's ``limit_util`` is at least the sum of those
    #: holders' own utilisations (each against its own limit), clipped to 1 — what one payer draws through many
    #: accounts, instead of the average that splitting the volume keeps low. The card with the largest sum
    #: counts; members without a limit on record add nothing. False: the members' average (as before 2026-12-04
    #: evening).
    pool_limit_pressure: bool = True

    @field_validator("weights")
    @classmethod
    def _known_components(cls, v: dict[str, float]) -> dict[str, float]:
        return _over_defaults(v, DEFAULT_ACCOUNT_WEIGHTS, "account-model components")


class WorkloadGroupConfig(_Strict):
    """Workload harvest groups (scoring/workload.py): accounts in the store's harvest-shape tail that run one
    workload, found across communities, judged against a hypergeometric null. A harvest operation is many
    accounts running one workload in a harvesting shape even when they share no network, client or schedule."""
    #: Adds the ``clw-`` groups to every scan (measured on held-out small-provider worlds 500-519; false turns
    #: the route off).
    enabled: bool = True
    #: The tail: accounts whose ``harvest_shape`` (account model) is at or above this quantile of the store's.
    quantile: float = Field(0.9, ge=0, lt=1)
    #: Two workloads (each signal's hit share, reasoning / tool / image shares) are the same when their cosine
    #: similarity is at least this; a tail account joins the group whose mean workload is nearest above it.
    similarity: float = Field(0.9, ge=0, le=1)
    #: A group is an operation when the chance that a random tail of this size holds at least as many of the
    #: store's accounts on its workload (hypergeometric upper tail, × the number of groups tested) is at most this.
    alpha: float = Field(0.01, gt=0, le=1)
    #: ... and at least this share of the store's accounts on that workload are in the tail: a harvest's accounts
    #: all harvest; a benign population (chat users, developers) has only its long-answer corner there.
    min_enrichment: float = Field(0.4, ge=0, le=1)
    #: Groups smaller than this are not tested (a pair's workload is too noisy to speak for an operation).
    min_accounts: int = Field(3, ge=2)
    #: Member check: a member whose own intent evidence sits below the group's bulk is not given the group's
    #: risk (it joined on its tail rank and workload alone, like a chat user on the campaign's workload). These
    #: account-feature columns are compared with the group's median, in robust z (median absolute deviation).
    member_columns: list[str] = Field(default_factory=lambda: ["suspicion", "c_intent", "c_reasoning",
                                                               "c_task_items", "c_capability"])
    #: ... a column counts against a member when its robust z is below minus this ...
    member_max_z: float = Field(3.5, gt=0)
    #: ... and the member is left out when more than this share of the columns count against it (one weak
    #: column is an attacker's own variation; weak on most of its evidence is another population).
    member_max_share: float = Field(0.5, ge=0, le=1)
    #: The spread (1.4826 × MAD) is at least this, so a tight group does not turn small differences into z.
    member_min_spread: float = Field(0.05, gt=0)
    #: Groups smaller than this are not checked: too few members to say where their bulk is.
    member_min_group: int = Field(8, ge=3)
    #: Peer check, every group size: a member whose own suspicion (read as the group's: with the received-output
    #: lift when the group collects) is under this share of the mean of the group's *other* members' takes not the
    #: group's risk but what its own suspicion gives at the group's coordination (``cluster_risk(1, own)``, never
    #: more than the group's). Members share nothing but a workload in the harvest-shape tail, which a benign
    #: account on it (a reseller, a tool's user asking long answers) has too; the others' suspicion cannot speak
    #: for it. The same share as ``scoring.member_suspicion_ratio`` (a community member's fall-off). None: off
    #: (every member takes the group's risk; before 2026-12-05, branch ``loop21``).
    member_peer_ratio: float | None = Field(0.6, gt=0, le=1)
    #: Demand check, every group size: a member that asks for, receives and elicits no more than the store's
    #: accounts doing the same work — on every one of ``member_demand_columns`` the group is clearly above them on (``member_demand_alpha``), under the ``member_demand_quantile``
    #: of the accounts *outside* the group whose workload is that of the group (cosine to its mean at least
    #: ``member_demand_workload``) — takes not the group's risk but what its own suspicion gives at the group's
    #: coordination (``cluster_risk(1, own)``, its own suspicion without the received-output lift: it receives no
    #: more than its peers). A workload group is found on harvest shape and workload only; a company's developers
    #: behind one NAT asking single-turn coding questions are in the harvest-shape tail on the campaign's workload
    #: with suspicion above the peer check's bar (the group's own mean is diluted by its proxy accounts' owners'
    #: traffic), yet they ask the ordinary lengths of the store's developers, while even a proxy carrying its
    #: owner's traffic beside the harvest's receives more than them (cohorts_mixed scale 0.03: 18 company-NAT
    #: accounts at the 8th–35th percentile of their peers on output received, the proxies at the 59th–94th;
    #: docs/benchmarks.md, branch ``cm23``). Empty or null: off.
    member_demand_columns: list[str] | None = Field(default_factory=lambda: ["c_long_output", "c_received_output",
                                                                            "c_reasoning"])
    #: ... the share of the workload's outside accounts a member must reach on at least one column (0.5: the
    #: typical account doing the same work; a harvest is there to draw more of the teacher than that).
    member_demand_quantile: float = Field(0.5, ge=0, le=1)
    #: ... the workload cosine at which an outside account does the same work as the group (as
    #: ``scoring.artefact_peer_workload``).
    member_demand_workload: float = Field(0.9, ge=0, le=1)
    #: ... and the check runs only with at least this many such outside accounts: fewer (a workload only the
    #: campaign sends) are no yardstick (as ``scoring.artefact_peer_min_accounts``).
    member_demand_min_peers: int = Field(20, ge=2)
    #: ... and a column counts only when the group as a whole is clearly above those peers on it (one-sided
    #: Mann-Whitney of the members against the peers, p at most this and the common-language effect at least
    #: ``member_demand_min_effect``; the bars of ``scoring.artefact_harvest_alpha`` / ``artefact_harvest_min_effect``):
    #: that is the group's harvest drawing more than the work does. Where the group is not (a hydra's proxy group
    #: whose owners' traffic is most of it, dev standard-119: effect 0.63), a member under the peers' median is no
    #: different from the rest of its group and the column says nothing about it.
    member_demand_alpha: float = Field(0.05, ge=0, le=1)
    #: ... (U ÷ n₁n₂: 0.5 no difference, 1 every member above every peer).
    member_demand_min_effect: float = Field(0.75, ge=0, le=1)
    #: Level check, with the demand check's peers: on each of these account-feature columns (token counts, read in
    #: log) on which the group as a whole is clearly above its workload peers (the demand check's test,
    #: ``member_demand_alpha`` / ``member_demand_min_effect``), a member below the group's own bulk by more than
    #: ``member_max_z`` robust z (median, 1.4826 × MAD floored at ``member_level_min_spread``) on *every* such column
    #: takes not the group's risk but what its own suspicion gives at the group's coordination (as the demand
    #: check). The demand check's columns are store percentiles and the group is chosen on its harvest shape (the
    #: requested-length percentile × single-turn share), so a benign member in the tail is above its workload
    #: peers' median on the requested length by construction; and at the store's top, percentiles squeeze a kit's
    #: 9,000-token requests and a chat user's 3,500 together (0.96 vs 0.67). In tokens they are apart: a harvest's
    #: kit asks one length setting (its group's spread is 0.06–0.11 in log over the dev families' groups), a chat
    #: user on the same workload asks a third of it (sampled dev2 world quiet_hydra-308: 2 chat users at 3,379 and
    #: 4,779 requested tokens in a quiet hydra's group at a median of 8,850, flagged by its risk 0.59; docs/benchmarks.md, branch
    #: ``prec26``). Empty or null: off.
    member_level_columns: list[str] | None = Field(default_factory=lambda: ["mean_max_tokens", "mean_output_tokens"])
    #: ... the least spread (in log: 0.1 ≈ 10%) the level check reads a group's tokens with, so a kit asking one
    #: exact length does not turn a small difference into a large z.
    member_level_min_spread: float = Field(0.1, gt=0)
    #: A group whose members receive clearly longer answers than the rest of the store (``harvest_beyond_store`` on
    #: ``mean_output_tokens``: the same one-sided test the percentile gate's collecting exemption asks) has its
    #: suspicion read with the received-output component at ``scoring.collecting_received_weight``, as a community
    #: spared for what it collects. A residential-proxy pool's accounts carry their owners' ordinary traffic (~60%
    #: of it), which dilutes every share of their own suspicion, but the pool's share still draws long answers.
    #: False: the members' own suspicion only.
    read_received: bool = True
    #: A group's risk takes the declared-organisation discount a community takes (``scoring.declared_discount``,
    #: scaled by the share of its members that belong to an organisation of at least two accounts verified to
    #: ``scoring.declared_org_verification``): a company's developers behind its gateway run one workload and, when
    #: the company is a large share of a small store, fill the harvest-shape tail with it (sampled dev2 world
    #: quiet_hydra-314: 153 of a verified 259-account company in one group, coordination 1, risk 0.511, a false
    #: campaign of 155 and a benign FPR of 7.8%). One verified customer's own accounts declare themselves; the group
    #: route finds operations that share nothing, which is not that. False: groups are not discounted (as before).
    declared_discount: bool = True


class LearningConfig(_Strict):
    """Learning from analysts (distillguard/scoring/learn.py): each scan re-fits the account model's weights
    from the analysts' verdicts and partner indicators on record, starting from ``account_model``'s weights,
    and applies the fit only when it beats them on campaign-wise held-out folds."""
    #: Re-fit the account model from verdicts on record at each scan (off: the configured weights only).
    enabled: bool = True
    #: Each class (attack, benign) needs at least this many labelled accounts in the store ...
    min_labels: int = Field(5, ge=1)
    #: ... from at least this many campaigns (the held-out folds hold out whole campaigns).
    min_campaigns: int = Field(2, ge=1)
    #: At most this many held-out folds (fewer when fewer campaigns are labelled).
    folds: int = Field(5, ge=2)
    #: The fit must lower the held-out log-loss by at least this share of the configured weights' loss.
    min_improvement: float = Field(0.05, ge=0, lt=1)
    #: L2 pull of every weight towards its configured value (per unit of mean log-loss).
    l2: float = Field(0.05, ge=0)
    #: No weight moves further than this from its configured value (and none goes below 0).
    max_weight_change: float = Field(1.5, ge=0)
    #: An account a partner's indicator matched counts as an attack label of this weight × its intel boost
    #: (an analyst's own verdict weighs 1 and wins over it); 0 ignores partner indicators.
    intel_weight: float = Field(0.5, ge=0, le=1)


class ScoringConfig(_Strict):
    account_model: AccountModelConfig = Field(default_factory=AccountModelConfig)
    learning: LearningConfig = Field(default_factory=LearningConfig)
    #: Accounts at or above this risk are flagged.
    flag_threshold: float = Field(0.5, gt=0, lt=1)
    #: A cluster is strongly coordinated when at least this many evidence groups (network, client, payment,
    #: e-mail, creation, content, timing, intel) are each shared beyond chance by half its core; otherwise its
    #: coordination is capped at ``weak_coordination_cap`` (a NAT alone, or a popular tool's prompt alone, is
    #: not a campaign: with the cap at 0.2 such a cluster reaches the flag threshold only when its core's own
    #: traffic scores ≥ 0.92 on the account model).
    min_evidence_groups: int = Field(2, ge=1)
    #: Evidence shares from rare entities (scoring/rare.py): a cluster's share of an evidence group counts each
    #: member's sharing of, and chance of sharing, only the entities whose own chance of being shared by a random
    #: group of the cluster's size from this store is at most this. An entity most of the store holds (a small
    #: provider's one default system prompt, its commonest SDK string) then no longer cancels a member's private
    #: prompts or fingerprint. None: every entity, as before.
    rare_entity_chance: float | None = Field(None, ge=0, le=1)
    #: The same reading for the content group alone (scoring/rare.py): its shares count only the system prompts,
    #: templates and task items whose own chance of being shared by a random group of the cluster's size is at most
    #: this (0: nobody outside the cluster sends them). A residential-proxy pool's accounts carry their owners'
    #: ordinary traffic beside the relayed harvest, and the ordinary prompts (held by half the store) cancelled
    #: the pool's private system prompts. ``rare_entity_chance``, when set, applies to every group and wins.
    #: None: every content entity, as before.
    rare_content_chance: float | None = Field(0.0, ge=0, le=1)
    #: ... and of those rare content entities, only the ones held by at least this share of the cluster's *core*: a
    #: pool's accounts all relay one template set (on standard-107 each of its 14 system prompts is sent by 32–44 of
    #: its 44 accounts, a core of 45), while a developers' community owns a scatter of coding-agent prompts each a
    #: few of its members use (no-attacker world 114: at most 12 of a core of 88), which read as private made it a
    #: false campaign.
    rare_content_min_share: float = Field(0.25, ge=0, le=1)
    #: ... and for a harvesting sub-cluster (``harvest_subclusters``: members picked from the store's harvest-shape
    #: tail on their own traffic) this share instead. A quiet hydra running a mixed kit (four workloads, thousands of
    #: templates) sends a scatter of private templates each a few of its accounts use (dev3 quiet_hydra-703: at most
    #: 8 of 47), and no single one reaches a quarter of a core; a developers' community's scatter is judged as before,
    #: since its members are not the harvest tail. None: ``rare_content_min_share`` everywhere.
    rare_content_min_share_harvest: float | None = Field(0.0, ge=0, le=1)
    #: In a harvesting sub-cluster (``harvest_subclusters``), each member's chance of sharing an entity of these
    #: evidence groups is that of a tie at least as improbable as the rarest one it shares (scoring/rare.py
    #: ``rarest_tie_sql``): a stock SDK string 76–97 of the store's accounts send no longer cancels a TLS fingerprint
    #: nobody outside the operation holds (dev3 quiet_hydra-703). It decides only whether a sub-cluster is flagged:
    #: one under the flag threshold without it takes the reading and competes for its accounts at the threshold, one
    #: already over it keeps its score without it (``scan.engine.rarest_tie_lift``; the sub-clusters are scored twice).
    #: Empty: the chance of sharing any of its entities, as before.
    harvest_rarest_tie_groups: list[str] = Field(default_factory=lambda: ["client"])
    #: ... and for a harvesting sub-cluster, its *kit* is the content two or more of its members send that nobody
    #: outside it sends but accounts of the store's harvest-shape tail (``harvest_quantile``); a holder outside it that
    #: sends at least this many of its kit entities (a co-holder of the kit: the operation's own account in another
    #: cluster) is not their background in the rare content reading (``rare_content_chance``). A residential-proxy
    #: relay splits over many clusters (dev3 standard-712: a template 51 of a 106-account sub-cluster send is sent by
    #: 9 more relay accounts elsewhere), and read as "held by somebody outside" its kit was never private. A popular
    #: tool's template is sent by its ordinary users too (nine in ten of the store is not the tail), so it is no kit
    #: entity. None: every outside holder is background.
    kit_coholder_min_entities: int | None = Field(2, ge=1)
    #: A member's *distinctive* content tie (the one that reads its traffic with the group's pooled traffic and spares
    #: it the bystander fall-off) is read from the same rare content entities: a proxy account that sends the pool's
    #: private system prompts beside its owner's ordinary ones holds the pool's own content (any such entity another
    #: party of the cluster holds, whatever ``rare_content_min_share``: this is about one member). False: from all of
    #: them. First tried off (branch ``fam19``: read from any rare entity, one step-by-step tool user joined the
    #: ``cohorts_mixed`` guard's vision pool record); on, read from the pool's template set
    #: (``rare_content_distinctive_set``), since branch ``fam20`` (docs/benchmarks.md).
    rare_content_distinctive: bool = True
    #: ... and read only from the rare content entities at least ``rare_content_min_share`` of the cluster's core
    #: sends (the ones the content group share counts): a pool relays one template set most of its accounts send,
    #: while two step-by-step tool users in an agentic pool's community may share one rare prompt by themselves.
    #: False: any rare content entity another party of the cluster holds.
    rare_content_distinctive_set: bool = True
    #: A community strongly coordinated only through the counted rare ties and the rare content reading (not with its
    #: content read from every entity and without the counted ties) lifts only the members holding one of those ties
    #: or sending that content; the rest (a step-by-step tool's users on the pool's ISPs or sign-up burst) keep the
    #: level the weak cap gives, as with the counted rare ties alone (``harvest_group_alpha``). Dev world standard-106:
    #: an agentic pool's 348-account community, lifted by counted card, burst and schedule ties, became strong
    #: without them once its private prompts counted, and its step-by-step tool users took its level. False: the
    #: counted rare ties alone decide who takes the lifted level.
    rare_content_members_only: bool = True
    weak_coordination_cap: float = Field(0.2, ge=0, le=1)
    #: A cluster's risk is coordination ** ``coordination_exponent`` × suspicion ** ``suspicion_exponent``
    #: (``scoring.risk.cluster_risk``, the one formula every route uses). Suspicion weighs more: a perfectly
    #: coordinated cluster of ordinary traffic (a classroom) must stay low, while a harvest shared only
    #: loosely still ranks; with both at 0.5 the two would trade one for one.
    coordination_exponent: float = Field(0.4, gt=0, le=4)
    #: ... and the exponent of suspicion in that formula.
    suspicion_exponent: float = Field(0.6, gt=0, le=4)
    #: Harvesting sub-clusters: inside each cluster, the members whose ``harvest_shape`` (account model) is at
    #: or above this quantile of the store's accounts are also judged as a group of their own (a quiet pool
    #: mixed into a community of a popular tool's users is a minority of it, so the community's shares never
    #: reach half). 1 turns it off.
    harvest_quantile: float = Field(0.9, ge=0, le=1)
    #: ... when at least this many accounts of one cluster are that far up ...
    harvest_min_accounts: int = Field(3, ge=2)
    #: A community's harvesting sub-cluster is cut into separate operations by Leiden at this resolution on the
    #: pair weights among its harvesters alone (``graph.communities.split_groups``): two operations that hang
    #: off the same popular tool's users or home ISP share one community, but not their cards, proxy ranges or
    #: schedules, so without the rest of the community they fall apart — one campaign record per operation
    #: instead of one for both. The cut stands only when at least two groups of ``harvest_min_accounts``
    #: result; a harvester in a smaller piece joins the group it is most tied to (else the one of the nearest
    #: workload). None keeps one sub-cluster per community.
    harvest_split_resolution: float | None = Field(1.0, gt=0)
    #: ... and two of those groups (of ``harvest_min_accounts`` or more) whose workloads — the mean over their members of each signal's hit share
    #: and the reasoning, tool and image shares (what they ask the model for) — have at least this cosine
    #: similarity are joined back: one operation whose ties Leiden happened to cut (two proxy ranges of one
    #: hydra) asks for the same thing in both pieces, two operations harvesting different capabilities do not.
    #: 1 joins only identical workloads.
    harvest_same_workload: float = Field(0.9, ge=0, le=1)
    #: ... and such a sub-cluster is strongly coordinated (instead of ``min_evidence_groups``) when at least this
    #: share of its core holds a tie of hidden infrastructure or timing (network, payment, creation, timing,
    #: intel) that chance does not explain (``max_chance_tie``), of any one kind: members well above the store
    #: on their own traffic *and* a hidden tie. E-mail shapes, clients and content are what strangers and a
    #: popular tool's users share, so they never carry it.
    harvest_hidden_share: float = Field(0.5, ge=0, le=1)
    #: A harvesting sub-cluster's ties must be its own, not its parent community's: what its members share is
    #: judged against chance in the store *and* in the community it was cut from (members drawn at random from
    #: the rest of the community), the larger of the two — for the hidden-tie rule above and the evidence groups
    #: alike. A course lab's busiest students share the campus NAT, the sign-up burst and the lab
    #: windows with every classmate (the community's tie); a quiet pool inside a popular tool's community shares
    #: its card or proxy /24 with none of the tool's users. Off by default (False: judged against the store
    #: alone): on the evaluation family it removed the course lab's false flags (1.1% → 0) but lowered median
    #: recall 0.465 → 0.361 — a campaign's sub-cluster cut from a community that is mostly the campaign shares
    #: its card and burst with that community too (docs/benchmarks.md, branch ``fam11c``).
    harvest_parent_chance: bool = False
    #: A harvesting sub-cluster member's fit (``min_member_fit``: the share of its coordination weight that
    #: points into its group) is measured against the community the sub-cluster was cut from, not the
    #: sub-cluster alone: a sub-cluster is a minority of its community by construction, so its members' links
    #: point mostly at the rest of it and their fit to the sub-cluster is its share of the community. False
    #: measures fit against the sub-cluster (as before 2026-12-03).
    harvest_parent_fit: bool = True
    #: A harvesting sub-cluster's members are in it because their own traffic is in the store's top
    #: ``harvest_quantile`` on harvest shape, so the bystander rules of the member factor — ×½ when tied only by
    #: public content, and (own ÷ cluster suspicion)² without a distinctive tie, both of which ask that a flag
    #: rest on the account's own traffic — do not apply to them (the fit, strength and suspicion-ratio rules
    #: still do). False applies them as to any cluster.
    harvest_own_evidence: bool = True
    #: Rare hidden ties counted, not shared by half: in a harvesting sub-cluster, an evidence group of hidden
    #: infrastructure or timing (network, payment, creation, timing, intel) is also shared beyond chance when the
    #: *number* of core members holding it is improbable under the store's own chance of sharing it — Poisson
    #: upper tail of the count at the members' summed chance (the same per-member chance the group shares are
    #: net of), Bonferroni over those groups, at most this. A quiet hydra reuses a card in 3 of 27 accounts and
    #: signs 4 up in one burst, where the store's chance gives none: rare in each account, improbable in the group,
    #: though no group reaches half the core (issue 11, quiet_hydra; docs/benchmarks.md section qh16). None: off.
    harvest_group_alpha: float | None = Field(1e-3, ge=0, le=1)
    #: ... counting only a group that at least this many core members hold (two members of one household can
    #: share a card; three strangers do not) ...
    harvest_group_min_members: int = Field(3, ge=2)
    #: ... and such a group counts towards ``min_evidence_groups`` and enters the coordination sum with at least
    #: this share (what a group shared by half the core adds).
    harvest_group_share: float = Field(0.5, ge=0, le=1)
    #: The same count rule for every cluster, not only harvesting sub-clusters: a community whose quiet pool is
    #: only partly in the harvest-shape tail (40% ordinary traffic mixed in) still holds the pool's rare cards and
    #: bursts. Its other gates (the suspicion percentile, output demand, one tool's users) still apply. On the
    #: quiet_hydra dev worlds it lifted quiet_hydra-104 2/49 → 17/49 and -102 19/37 → 23/37; in a community (not a
    #: harvesting sub-cluster) only the members holding a counted tie take the lifted level. False: sub-clusters only.
    rare_ties_all_clusters: bool = True
    #: A cluster that is strongly coordinated only through those counted rare ties does not lift a member tied
    #: into it only through these evidence groups: an ordinary user on a residential proxy's /24s or
    #: ASN shares them with the pool by living there, not by being part of it; it keeps the capped level.
    rare_ties_bystander_groups: list[str] = Field(default_factory=lambda: ["network"])
    #: ... except a member that *receives* like the members holding those ties: in such a community a member whose
    #: received-output component (``c_received_output``: output tokens received per exchange, an upper percentile
    #: within the store, shrunk by its exchanges) is above the store's median and at least this quantile of the
    #: holders' takes the lifted level like a holder (and is not discounted as tied by public content alone: what it
    #: collects is evidence in its own traffic; its own suspicion still decides the fall-off). A quiet hydra reuses a card or a schedule in only a few of its
    #: accounts; the rest share its ISPs and send what a step-by-step tool's users send, at the same own suspicion
    #: — only the answers they collect differ (dev quiet_hydra-112: received-output rank 0.69 vs 0.13). None: only
    #: the holders, as before.
    rare_ties_received_quantile: float | None = Field(0.25, ge=0, le=1)
    #: A cluster strongly coordinated only through its counted hidden ties (card, sign-up burst, schedule; not
    #: through content it owns) is judged on the suspicion of the members holding them (``cluster_suspicion_quantile`` of their readings, or their pooled reading), when that is lower
    #: than its whole core's: the coordination is theirs, so the suspicion it is multiplied by must be too. A
    #: hackathon's sign-up burst lifted a community of step-by-step tool users and hackathon users whose suspicion
    #: (0.48) was the tool users', not the burst holders' (0.18–0.29): a false record of 10 (sampled dev2 world
    #: standard-301). A quiet hydra's card or schedule holders are as suspicious as the rest of it, and keep its
    #: level. Not a lift through rare content: a quiet hydra's community in dev2 quiet_hydra-314 was lifted by
    #: the rare templates its hydra and tool users send, and judged on its hydra senders alone (0.52 → 0.47) it lost
    #: its record. False: the whole core's suspicion (as before).
    rare_ties_holders_suspicion: bool = True
    #: Shared-entity sub-clusters: inside each community, the accounts holding one entity of these kinds (a
    #: card) are also judged as a group of their own when at least
    #: ``entity_core_min_parties`` parties of the community hold it. Early in a hydra's life its accounts have
    #: sent a few requests each and community detection mixes them with ordinary users they share a home /24
    #: or a public template with; the card is then held by less than half the community, so the community is
    #: capped at ``weak_coordination_cap`` and its pooled traffic is never read, although three strangers never
    #: share a card by chance. The group is scored like any cluster (two evidence groups beyond chance, the
    #: traffic still has to be suspicious); each member's fit is measured against its community
    #: (``harvest_parent_fit``). Accounts of one organisation verified to ``declared_org_verification`` are one
    #: party. An empty list turns it off.
    entity_core_kinds: list[str] = Field(default_factory=lambda: ["payment"])
    #: ... at least this many parties of the community holding the entity.
    entity_core_min_parties: int = Field(3, ge=2)
    #: A strongly coordinated cluster whose core's median ``long_output`` component (requested max_tokens as an
    #: upper percentile within the store: 0 at or below the store's median) is at most this collects no teacher
    #: output, and its coordination is capped at ``weak_coordination_cap`` like a cluster with one evidence
    #: group (eval teams on one runner, a step-by-step tool's users). Only where the store records max_tokens
    #: for most of the core; None (the default) turns it off: where requested lengths carry no signal (every
    #: account draws max_tokens from the same mix) the core's median is noise around 0 and the cap cuts at
    #: random (tests/scan's replay world lost its slow campaign's early flags with it at 0).
    min_core_output_demand: float | None = Field(None, ge=0, le=1)
    #: The noise-aware form of the same gate (on by default): a strongly coordinated cluster whose core's
    #: requested max_tokens are clearly *below* the store's accounts' — a one-sided Mann-Whitney rank test of the
    #: core against the whole store, p at most this — collects no teacher output and is capped the same way (a
    #: course lab, eval teams, a step-by-step tool's users). A core drawing its lengths from the store's own mix is
    #: not significantly below it, so this never cuts at random; only where the store records max_tokens for at
    #: least ``output_demand_min_coverage`` of the core (and ``output_demand_min_accounts`` of its accounts). None
    #: turns it off.
    output_demand_alpha: float | None = Field(1e-3, ge=0, le=1)
    #: The rank test above runs only for a core with requested lengths on at least this many accounts, in a
    #: store with at least twice as many: fewer give no meaningful p-value (a core of 3 cannot reach a small alpha).
    output_demand_min_accounts: int = Field(3, ge=2)
    #: ... and on at least this share of the core's accounts (the rest of a core may not record max_tokens: a
    #: mixed store, a partner's logs without it), so the test speaks for the core rather than a corner of it.
    output_demand_min_coverage: float = Field(0.5, ge=0, le=1)
    #: Software users: a strongly coordinated cluster (not a harvesting sub-cluster) whose core mostly runs one
    #: client — one user agent or client fingerprint (TLS, header order) held by at least
    #: ``software_client_share`` of the core — and holds no hidden tie (a card, a network, a sign-up burst, a
    #: synchronised schedule, a partner indicator beyond chance, held by less than ``software_hidden_share`` of
    #: the core) is capped at ``weak_coordination_cap``: that is what the users of one popular tool or agent
    #: framework share (its user agent, its system prompt, free-mail shapes), not an operation's hidden
    #: infrastructure. Unless the core asks for longer answers than the store: a one-sided Mann-Whitney test of
    #: the core's accounts' mean max_tokens against every account's in the store, p at most this, with the
    #: common-language effect (U ÷ n₁n₂, the chance a core account asks more than a store account) at least
    #: ``software_output_min_effect`` — a harvest run through a stock SDK collects long answers. Needs
    #: requested lengths on ``output_demand_min_coverage`` of the core (``output_demand_min_accounts``
    #: accounts); without them the core cannot show it and is capped. None turns the rule off.
    software_output_alpha: float | None = Field(0.05, ge=0, le=1)
    #: ... and the effect size that test must also reach (0.5: no difference; 1: every core account asks
    #: more than every store account).
    software_output_min_effect: float = Field(0.75, ge=0, le=1)
    #: ... and, where output token counts are recorded, the core must also *receive* clearly longer answers than
    #: the store (the same test on the accounts' mean output tokens per exchange, reasoning included). A harvest's
    #: prompts draw the teacher's long answers; an agent framework sets a generous max_tokens ceiling by default
    #: but its loop's answers are short steps on a context it re-sends, so its users ask long and receive less
    #: than the store's typical account. A core or store without output counts is judged by the requested
    #: length alone; false always judges by it alone (the rule as first shipped).
    software_received_output: bool = True
    #: ... the share of the core holding one client entity for the cluster to count as one tool's users.
    software_client_share: float = Field(0.5, ge=0, le=1)
    #: ... counting one client's builds as one client: a user agent with its version numbers removed
    #: ("loomwork/0.9.1 python-httpx/0.28.1" and "loomwork/0.11.2 python-httpx/0.28.1" are one framework). A popular
    #: tool's users run whichever release they installed, so at scale its community's core splits over a dozen
    #: builds, none held by half of it, and the rule stopped reading it as one tool's users (cohorts_mixed scale 0.03:
    #: 465 framework and step-by-step tool users on 19 user agents, the largest build held by 27% of the core,
    #: flagged as a record of their own; docs/benchmarks.md, branch ``cm23``). The other tests of the rule are
    #: unchanged: no hidden tie held by half the core, no long answers collected. False: one exact user agent or
    #: fingerprint (before 2026-12-05 d).
    software_client_versions: bool = True
    #: ... and a core of which at least this share holds a hidden tie beyond chance (any of network, payment,
    #: creation, timing, intel; ``max_chance_tie``) is not one tool's users: half, as for every evidence group.
    #: A few members sharing a card or a proxy inside a tool's community are scored on their own as a
    #: shared-entity or harvesting sub-cluster; the community is not held by them. 0 judges no core as tool users.
    software_hidden_share: float = Field(0.5, ge=0, le=1)
    #: A strongly coordinated cluster (not a harvesting sub-cluster) whose suspicion sits below this share of
    #: the store's accounts *outside* it — its suspicion as a percentile of the provider's own population — is
    #: capped at ``weak_coordination_cap``: a cohort coordinated as tightly as an operation (a course lab's one
    #: sign-up burst, campus NAT, lab windows and private homework templates; a framework's users on its system
    #: prompt) whose traffic is what much of the store sends is not a harvest; an operation's core sits above
    #: most of the store on its own traffic. Judged against the accounts outside the cluster only, so a campaign
    #: that is a large share of a small store is not judged against itself. Harvesting sub-clusters are judged
    #: only on ``percentile_gate_subcluster_columns`` (their membership is already a store-percentile judgement of
    #: each account's harvest shape, which therefore cannot spare them). 0 turns it off.
    min_suspicion_percentile: float = Field(0.8, ge=0, le=1)
    #: ... unless its core collects the teacher's answers beyond the store's norm — the test of the public-artefact
    #: rule (``artefact_harvest_columns``: harvest shape asked for, output tokens received; p at most
    #: ``artefact_harvest_alpha`` and effect at least ``artefact_harvest_min_effect`` against the accounts
    #: outside the cluster). A quiet pool mixes ordinary prompts into every account, so its prompts read like the
    #: store's (suspicion at the store's median) while it receives clearly longer answers than the store; a course
    #: lab, a tutoring cohort or a framework's users receive ordinary ones. False: the percentile alone decides.
    percentile_gate_collects: bool = True
    #: ... and collecting means *receiving*: a core the collecting test passes on its harvest shape alone (long
    #: single-turn answers asked for) whose accounts receive clearly fewer output tokens per exchange than the
    #: accounts outside the cluster — a one-sided Mann-Whitney test of its mean output tokens against theirs,
    #: p at most this — asks a generous ceiling and gets ordinary answers: a course lab's homework, not a harvest.
    #: A harvest's prompts are written to draw the teacher's long answers, so it gets what it asks for (the same
    #: reading as ``software_received_output``). Harvest shape is a rank within the store: in a store whose tools
    #: ask short ceilings an ordinary homework ceiling ranks high (dev4 no_attackers-907: 79% of the accounts ask
    #: less than the lab's median 2,513 tokens, against 54% in no_attackers-911 for its 2,485), while what the lab
    #: receives (418 tokens against the rest's 460) stays ordinary. The collecting test's own alpha; null turns it off. Not read for harvesting sub-clusters (judged
    #: on received output already).
    percentile_gate_received_alpha: float | None = Field(0.05, ge=0, le=1)
    #: ... and above ``min_suspicion_percentile`` too: a strongly coordinated cluster (not a harvesting
    #: sub-cluster) whose core asks clearly long single-turn answers (harvest shape, the collecting test's bars)
    #: and receives clearly fewer output tokens than the accounts outside it (``percentile_gate_received_alpha``) is capped
    #: as a cohort whatever its suspicion percentile. Homework asking for step-by-step explanations reads as
    #: reasoning elicitation, so a lab's busier students' sub-community sits above the store's percentile (dev4
    #: no_attackers-907: 17 students and 6 onboarding accounts, suspicion 0.43); what they receive is what the
    #: store receives. False: only clusters below the percentile are read so.
    percentile_gate_ceiling_any: bool = True
    #: Harvesting sub-clusters judged by the percentile gate too, on these columns only. A sub-cluster's members
    #: are the store's top ``harvest_quantile`` on harvest shape, so harvest shape cannot also be the evidence that
    #: they collect (it would spare every one of them); what they *receive* can. A course lab's busiest students
    #: are in the harvest-shape tail (single-turn homework, generous max_tokens) and share its burst, lab windows
    #: and templates, yet their prompts sit under the store's ``min_suspicion_percentile`` and they receive what
    #: the store receives (dev world standard-100: four such sub-clusters, percentile 0.75–0.79, received-output
    #: effect 0.23–0.32, flagged as three false records); a quiet pool's sub-cluster receives far longer answers
    #: (effect 0.8+) and is spared. A sub-cluster whose core records none of these columns is not judged (exempt
    #: as before). Empty or null: sub-clusters are exempt from the gate (as first shipped).
    percentile_gate_subcluster_columns: list[str] | None = ["mean_output_tokens"]
    #: ... at every suspicion percentile, not only below ``min_suspicion_percentile``: a cohort can be the top of a
    #: store (a course lab's homework asking for step-by-step explanations, in a store without attackers), so its
    #: busiest members' sub-cluster is there above the percentile too, and only what they receive tells them from
    #: a harvest (docs/benchmarks.md, branch ``sub19``). False: above the percentile a sub-cluster is not judged.
    percentile_gate_subcluster_any: bool = True
    #: A cluster the percentile gate spares because its core collects (``percentile_gate_collects``, or the
    #: sub-cluster test above) is then scored on what it collects: its suspicion and its members' read the account
    #: model's ``received_output`` component (output tokens received per exchange, an upper percentile within the
    #: store) at this weight instead of the model's own (0 by default). A quiet pool's prompts are half ordinary, so
    #: its suspicion sits at the store's median and, spared by the gate, its risk stayed under the threshold (dev
    #: world standard-111: a low-and-slow campaign's clusters coordinated 0.84–0.93 at suspicion 0.29–0.32, risk
    #: 0.47–0.485, 0 of 73 flagged). Only clusters that are strongly coordinated, below the store's suspicion
    #: percentile *and* shown to receive clearly longer answers than the rest of the store are read this way (not
    #: harvesting sub-clusters: their members are the store's harvest-shape tail already, and a hackathon's busiest
    #: members receive long answers too), so the coordination graph and every other account keep the model's own weight (with the weight raised for every
    #: account, docs/benchmarks.md fam17, a no-attacker world got a false campaign). 0.5 is fam17's measured
    #: setting; null or 0 turns it off.
    collecting_received_weight: float | None = Field(0.5, ge=0)
    #: A community strongly coordinated through content it owns (``distinctive_chance``: nobody outside it sends
    #: its system prompts or templates) whose core receives clearly longer answers than the accounts outside it
    #: (the test of ``percentile_gate_subcluster_columns``) is read with the received-output weight above too,
    #: though the percentile gate did not judge it. A residential-proxy pool's accounts carry their owners' ordinary
    #: traffic beside the pool's private prompts (~60% of it), which dilutes every share of their own suspicion; what
    #: the teacher produced for them does not dilute that way. A course lab's private homework draws the store's
    #: ordinary answer lengths and is not read so. False (the default): only the clusters the percentile gate
    #: spares. Off because a developers' community owns its coding-agent prompts and receives long answers too:
    #: with igraph's partitions it made false campaigns on no-attacker worlds (dev no_attackers-114, 14 developers;
    #: evaluation no_attackers-502, 32% of its developers), while on it lifted dev standard-107's recall only
    #: 0.568 → 0.659 (docs/benchmarks.md, "Merged main, session 2026-12-05").
    private_content_collects: bool = False
    #: Public artefacts: a strongly coordinated cluster (community or sub-cluster) whose evidence groups shared by
    #: half its core are all in ``artefact_groups`` — what a framework's or a course's users share by being its
    #: users: its client string, its system prompt and templates, one ISP or campus NAT, the hours the cohort
    #: works — and nothing else (no card, sign-up burst, e-mail shape or partner indicator held by half the core) is a campaign
    #: only if its core collects the teacher's answers beyond the store's norm: a one-sided Mann-Whitney test of
    #: the core's accounts against every account *outside* the cluster on one of ``artefact_harvest_columns``
    #: (harvest shape asked for, output received), p at most this **and** the common-language effect at least
    #: ``artefact_harvest_min_effect``. Otherwise its coordination is capped at ``weak_coordination_cap``. In a
    #: small store a framework's client and system prompt are private to the store, so they count as much as an
    #: operation's own kit; what tells them apart is whether the group collects the teacher's long answers.
    #: Harvesting sub-clusters are exempt (their members are in the store's harvest-shape tail by construction);
    #: a core with fewer than ``output_demand_min_accounts`` accounts recording a column is not judged on it.
    #: None turns the rule off.
    artefact_harvest_alpha: float | None = Field(0.05, ge=0, le=1)
    #: ... and the effect size that test must reach (U ÷ n₁n₂: 0.5 no difference, 1 every core account above
    #: every outside account) — the same bar as ``software_output_min_effect``.
    artefact_harvest_min_effect: float = Field(0.75, ge=0, le=1)
    #: ... the core accounts recording a column for the test to run on it. Two suffice: against a store of a
    #: few hundred accounts two accounts at its top reach p ≈ 1e-4, so a two-account core *can* show a harvest,
    #: and a pair of eval-runner or course accounts tied only by product artefacts and a schedule that cannot
    #: show one is capped like any larger cohort (a harvesting sub-cluster is exempt, whatever its size).
    artefact_harvest_min_accounts: int = Field(2, ge=2)
    #: Workload peers (None turns it off): a cluster tied only by artefact groups — a community
    #: that passed the test above, or a harvesting sub-cluster not carried by a hidden tie — must also *receive*
    #: clearly longer answers (mean output tokens, the same alpha and effect) than the accounts outside it doing
    #: the same work (workload cosine ≥ ``artefact_peer_workload``), when at least this many such peers record
    #: output counts; otherwise its coordination is capped. A coding tool's users receive what coding agents
    #: receive; a coding harvest draws more than they do. Fewer peers: not judged (a workload only the
    #: campaign's own other accounts share says nothing: small_provider-105's campaign cluster had 12 peers, 8 of
    #: them the campaign's). 20 keeps a yardstick of a few accounts out; 10 gave the same flags on the six dev
    #: worlds where it was tried.
    artefact_peer_min_accounts: int | None = Field(20, ge=2)
    #: ... the workload cosine (signal hit shares, reasoning, tool and image shares) at which an outside account
    #: counts as doing the same work as the core's mean.
    artefact_peer_workload: float = Field(0.9, ge=0, le=1)
    #: ... the evidence groups that are public artefacts (a subset of network, client, content, e-mail, payment,
    #: creation, timing, intel). ``network`` counts only when concentrated (``artefact_network_concentration``).
    #: ``timing`` (a synchronised schedule) is one by default: eval teams on one runner's cron, a class's lab
    #: windows, a tutoring platform's school hours share a schedule by being one cohort, and a schedule alone
    #: says nothing about collecting answers (small_provider dev worlds: every eval team flagged was held by a
    #: client, its runner's templates, its /24s and its schedule; none asked for or received long answers).
    artefact_groups: list[str] = Field(default_factory=lambda: ["client", "content", "network", "timing"])
    #: ... and the tie must include one of these groups — the product's access path (its client string, its
    #: gateway or NAT). A group held together by private prompts alone shows no product it is using: an
    #: operation's own kit sent through rotating proxies and varied clients (a hydra) looks like that, so it is
    #: left to the other rules. Empty: any artefact tie is judged.
    artefact_access_groups: list[str] = Field(default_factory=lambda: ["client", "network"])
    #: ... in the workload-peer test a tie of private prompts *and a schedule* with no access group in it is one
    #: operator's automation (a kit run on one schedule through rotating proxies and varied clients) and is not
    #: judged — when at least this many of the core's members keep the schedule beyond chance. Fewer (None: any
    #: number) is two accounts' busy windows overlapping: an agent framework's users run bursty sessions on its
    #: public template, and two of them in the same ten-minute windows hold a synchronised-schedule entity only the
    #: pair holds (dev3 standard-719: 6 framework users, 4 of them core, one framework system prompt and two of its
    #: templates private to the community, a schedule 2 of the 4 keep; they receive what the 109 accounts doing the
    #: same work receive, effect 0.51, and were a false record of 3). The tie is then judged as prompts alone
    #: (the peer test). 3 is ``min_entity_holders``, the holders a coincidence group's entity needs; the replay
    #: hydra of tests/scan keeps its schedule across its 24 accounts.
    artefact_schedule_min_holders: int | None = Field(3, ge=2)
    #: ... the account features that test compares (any one clearly above the store suffices): the account model's
    #: ``c_harvest_shape`` (long single-turn answers asked for) and ``mean_output_tokens`` (answers actually
    #: received: an agentic-transcript harvest is multi-turn but receives far longer answers than the store's
    #: accounts). A column the store does not record is skipped; a core with none recorded is not judged.
    artefact_harvest_columns: list[str] = Field(default_factory=lambda: ["c_harvest_shape", "mean_output_tokens"])
    #: ... a network tie is an artefact (one ISP gateway or NAT) when the single IP /24 most held in the cluster
    #: is held by at least this share of the cluster's accounts that share any /24 (ASN-only sharing always is);
    #: a proxy pool's accounts spread over many /24s, each shared by a few of them, is hidden infrastructure.
    artefact_network_concentration: float = Field(0.5, ge=0, le=1)
    #: Pooled evidence: a strongly coordinated cluster at or above this coordination is also judged on the
    #: pooled traffic of its core members that hold a distinctive tie (the group's card, sign-up burst,
    #: schedule, private templates): the account model on their combined exchanges, shrunk by the group's
    #: volume instead of each account's (a hydra splits its volume so each account stays under per-account
    #: evidence). The cluster's suspicion is the larger of that and its members' quantile; those members are
    #: judged with it too. None turns it off.
    pool_min_coordination: float | None = Field(0.6, ge=0, le=1)
    #: ... and also below that coordination when the cluster is strongly coordinated through content it owns (half
    #: its core sends system prompts or templates nobody outside it sends, ``distinctive_chance``) and is not tied
    #: only by public artefacts: sending an operation's own prompts is acting as one body of traffic, whatever the
    #: weight of the other entities it shares. Dev2 standard-300's coding hydra (17 accounts on 7 private system
    #: prompts and 12 templates, 42 shared ASNs) sat at coordination 0.573: each account read on its own split
    #: volume, cluster suspicion 0.44, risk 0.490, the whole campaign lost; pooled, its traffic reads 0.82 (three
    #: operator accounts carry 60% of it). Such a cluster's cohort test (``min_suspicion_percentile``) still reads
    #: its members' own suspicion, not the pooled one: a developers' community owns its coding-agent prompts, and
    #: its heaviest members' pooled traffic must not be what lifts it past that test (dev small_provider-115).
    #: False: only at ``pool_min_coordination`` (as before).
    pool_private_content: bool = True
    #: ... when at least this many such members.
    pool_min_accounts: int = Field(3, ge=2)
    #: A member whose only distinctive ties are private content or client fingerprints is read with the pooled group
    #: only when an entity it holds is held by at least ``pool_min_accounts`` of the pooled accounts *and* this share
    #: of them: an operation's templates or client kit are held by a good part of its pool; a stock SDK build that a
    #: few ordinary users share with three accounts of a 56-account pool is not (dev standard-100, branch ``fam20``).
    #: 0: the count alone, as before.
    pool_min_share: float = Field(0.25, ge=0, le=1)
    #: ... and those pooled accounts must be the pool's *anchors* — its accounts holding a tie of infrastructure or
    #: timing (a shared card, sign-up burst, schedule, partner indicator) — when it has at least ``pool_min_accounts``
    #: of them (``pool_min_share`` then of the anchors). Why: the pool's own members are the accounts with any
    #: distinctive tie, and a stock client user agent that only ordinary users and the community hold is "private"
    #: to the community that absorbed its holders, so a few ordinary users holding it made each other the "pooled
    #: accounts" that qualify them, and took the operation's pooled reading (loop replay cohorts_mixed seed 8: a
    #: chat user and two university-NAT accounts, one LangChain build, flagged through an agentic trio's community,
    #: branch ``loop22``). An operation's kit is held by the accounts its card or sign-up burst ties. False: every
    #: pooled account counts, as before.
    pool_anchored: bool = True
    #: A member of a pooled cluster that is part of the pooled body — read with the pool (its distinctive ties pass
    #: ``pool_min_accounts`` / ``pool_min_share`` / ``pool_anchored``) *and* sending the template set the core owns
    #: (rare content held by ``rare_content_min_share`` of the core, nobody outside) — is compared in the member
    #: suspicion-ratio rule (``member_suspicion_ratio``) with the cluster's suspicion read member by member (its core's
    #: quantile, with the pool-share and received readings), not with the pooled reading. Why: the pooled reading is
    #: the group's combined traffic at the group's volume, which no one member's share reaches — that is the split a
    #: hydra relies on. Dev2 standard-300: five proxies of the coding hydra sending its private system prompts read
    #: 0.30–0.34 on their own against a pooled 0.82 (members read one by one: 0.42–0.44) and fell to risk 0.44–0.497.
    #: Bystanders (no distinctive tie, or only public artefacts, ASNs, a stock client) keep the pooled yardstick.
    #: False: every member against the cluster's suspicion, as before.
    pool_member_yardstick: bool = True
    #: ... and such a member of a community lifted by its counted rare ties (``harvest_group_alpha``) takes the lifted
    #: level like the ties' holders, instead of the capped one: it sends the template set the pool's anchors send.
    #: Dev quiet_hydra-112: two hydra accounts sending the hydra's template set, read with its pool, held at the
    #: capped 0.348 in a community lifted to 0.604. False: only the ties' holders (as before).
    pool_member_takes_lift: bool = True
    #: Pool-share reading (scoring/poolshare.py): in a community strongly coordinated through content it owns, each
    #: member's suspicion is also read on its exchanges that carry the community's private system prompts — the
    #: prompts nobody outside it sends (``rare_content_chance``) and at least ``rare_content_min_share`` of its core
    #: sends — and the larger reading counts, for the community's suspicion (its core's quantile) and for the member.
    #: A residential proxy's owner's ordinary traffic dilutes its suspicion read over all its exchanges; the pool's
    #: own share of them is what it relays (dev standard-117: suspicion 0.36 where the pool's share reads higher).
    #: Needs ``behavior.system_prompt_partials``. False: every account read over all its traffic only.
    pool_share_reading: bool = True
    #: ... and each such member is also read on its exchanges carrying the community's private *templates* (nobody
    #: outside sends them, ``pool_share_template_min_share`` of its core does), the larger of the two readings
    #: counting: an operation's kit is its templates as much as its system prompts. Dev3 quiet_hydra-706: the hydra's
    #: three private system prompts carry its multi-turn orchestration work, which reads no more suspicious than its
    #: whole traffic, while its private templates carry the one-turn reasoning harvest (the community 0.31 where its
    #: risk needs 0.42). Needs ``behavior.template_partials``. False: the system prompts only.
    pool_share_templates: bool = True
    #: The share of the community's core that must send a private template for it to count as the community's kit
    #: in that reading (always at least two core accounts). 0: every private template two of its core send — an
    #: operation running a mixed kit sends a scatter of private templates, each a few of its accounts use (706: 114
    #: sent by two or more of its community and nobody outside, the most shared by 13 of 33; read at a quarter of the
    #: core its community reads 0.39 with the received reading, 0.46 at 0). Which exchanges are read does not make a
    #: community strong or private (``rare_content_min_share`` still decides that). None: ``rare_content_min_share``.
    pool_share_template_min_share: float | None = Field(0.0, ge=0, le=1)
    #: ... and that reading reads what those exchanges received (output tokens per exchange, ranked among the
    #: store's accounts) at ``collecting_received_weight``: what a harvest's kit collects (706: ~1,300 tokens an
    #: exchange where its owners' mixed-in traffic draws ~560). It raises the community's level only: members are
    #: compared with its suspicion before it, and a member sending none of the kit keeps the risk without it.
    #: False: the account model's own weight.
    pool_share_received: bool = True
    #: ... when the community's kit exchanges receive longer answers than the same members' other traffic: a one-sided
    #: sign test over its core members that sent both, p at most this. A harvest's kit draws longer answers than the
    #: owners' traffic mixed in with it (dev3 quiet_hydra-706: 21 of 22 core members); a developers' community's
    #: private coding-agent templates draw what the rest of its members' coding work does (dev2 standard-312: 15 of
    #: 30, its risk 0.389 → 0.440 without the test). None: no test.
    pool_share_received_alpha: float | None = Field(0.01, gt=0, le=1)
    #: An account alone (no cluster) never scores above this: one busy account is the
    #: benchmark researcher or the reseller far more often than an attacker.
    single_account_cap: float = Field(0.45, ge=0, le=1)
    #: Clusters whose accounts all sit in one organisation verified to this level are treated as
    #: declared (one customer's own accounts), not hidden coordination.
    declared_org_verification: int = Field(2, ge=0)
    #: Cluster risk multiplier when every core member belongs to one such organisation; with a mix it scales
    #: with the verified share: 1 − (1 − declared_discount) × verified share.
    declared_discount: float = Field(0.3, ge=0, le=1)
    #: Minimum share of a member's coordination weight that must point inside its cluster.
    min_member_fit: float = Field(0.3, ge=0, le=1)
    #: A member's tie to its cluster through an evidence group counts only when the chance that a random group
    #: of the cluster's size, drawn from the rest of the store, would share one of its entities of that group
    #: is at most this (a free-mail naming pattern or a home ISP shared in a group of 90 is chance).
    max_chance_tie: float = Field(0.5, ge=0, le=1)
    #: An entity of a coincidence group is shared evidence inside a cluster only when at least this many of its
    #: parties hold it (all of them in a smaller cluster): two ordinary users on one home /24 are a coincidence.
    min_entity_holders: int = Field(3, ge=2)
    #: ... in these evidence groups (what strangers share by coincidence); elsewhere two holders suffice.
    coincidence_groups: list[str] = Field(default_factory=lambda: ["network", "email", "client"])
    #: Private content or client fingerprints count as a distinctive tie (like a shared card or sign-up
    #: burst) when the chance of sharing them at random is at most this; content that private, shared by half
    #: a cluster's core, counts as two evidence groups.
    distinctive_chance: float = Field(0.05, ge=0, le=1)
    #: A sign-up burst counts as a member's own distinctive tie (its traffic read with the pooled group's, no
    #: fall-off for looking ordinary) only when the share of the burst's holders that the pathway's background
    #: sign-up rate puts in its minutes anyway (λ / holders) is at most ``distinctive_chance``; otherwise it is
    #: a distinctive tie only beside a second evidence group the member shares in its cluster. Ordinary sign-ups
    #: fall into a hydra's bursts more often the bigger the store. False: any burst counts, as before.
    burst_background_check: bool = True
    #: A member whose one distinctive tie is a sign-up burst loses it when it is the odd one out of its bursts: its
    #: burst-mates share other entities with each other beyond chance (P(X ≥ observed), X ~ Poisson(what as many
    #: accounts drawn from the store would share), at most this), it does not, and it shares fewer than the mates'
    #: rate predicts for its entities (exact conditional test of two Poisson rates, at most this). A chance sign-up in
    #: a hydra's minutes: not a distinctive tie, and a member tied to its cluster by nothing else is scored as an
    #: account alone (``single_account_cap`` × its suspicion). Not in harvesting sub-clusters. None: off.
    burst_corroboration_alpha: float | None = Field(0.05, gt=0, le=1)
    #: Cluster suspicion is this quantile of its members' suspicion (robust to benign hangers-on).
    cluster_suspicion_quantile: float = Field(0.7, ge=0, le=1)
    #: A member whose own suspicion is below this fraction of its cluster's mean inherits
    #: proportionally less of the cluster's risk (a benign user caught on a shared proxy).
    member_suspicion_ratio: float = Field(0.6, ge=0, le=1)
    #: ... which is halved when it is tied to the cluster through at least this many of the groups that
    #: ordinary users rarely share (network, payment, creation, timing, intel).
    min_member_groups: int = Field(2, ge=1)
    #: ... halved: the factor applied to ``member_suspicion_ratio`` for such a member.
    tied_member_ratio_factor: float = Field(0.5, gt=0, le=1)
    #: ... counting only the ties whose entity at least this many parties of the cluster hold (the most held of the
    #: member's entities in that group): a schedule or client build only one other member shares as pair evidence.
    #: None (off, the default): measured at 3 on dev, dev2 and dev3 (tie28, docs/benchmarks.md) it costs true
    #: accounts whose real schedule is a pair's (dev2 quiet_hydra-314) or whose cluster is three accounts (dev2
    #: small_provider-311), and ``tied_member_content_share`` alone removes dev3's two bystanders.
    tied_member_min_holders: int | None = Field(None, ge=2)
    #: ... and a content tie counts only when one of the templates or system prompts it sends is sent by at least this
    #: share of the cluster's core parties (the template set a pool's proxies relay, as ``rare_content_min_share``
    #: reads it), not when it sends what a handful of the members send (dev3 quiet_hydra-707: a chat user whose most
    #: shared prompt 6 of a 62-account core send; standard-713: an agent-framework user's, 2 of 144, beside a
    #: two-account schedule). None: any shared content counts, as before.
    tied_member_content_share: float | None = Field(0.25, ge=0, le=1)
    #: A member's busy windows count as its own distinctive tie in the received-output comparison
    #: (``untied_member_received_share``) only when at least this many parties of its cluster keep that schedule: two
    #: accounts' overlapping windows are a pair's coincidence (dev4 standard-913: an agent-framework user tied to a
    #: ban-rotation cluster by one campaign account's schedule alone, risk 0.635). The member reading of
    #: ``artefact_schedule_min_holders``. It changes nothing else (the suspicion-ratio halving and the quadratic
    #: fall-off still count a pair's schedule: dropping it there cost dev4 standard-905 two campaign accounts). None:
    #: any shared schedule counts.
    member_schedule_min_holders: int | None = Field(3, ge=2)
    #: A member with no distinctive tie of its own (a pair's schedule not counted, ``member_schedule_min_holders``) whose received-output rank
    #: (``c_received_output``) is below this share of the median rank of its cluster's members that hold one is scored
    #: as an account in no cluster (``single_account_cap`` × its suspicion): the operation's accounts collect long
    #: answers, a bystander tied by a free-mail naming shape and one account's schedule collects what ordinary users do
    #: even when its own prompts read suspicious (dev4 standard-912: an agent-framework user, planner prompts at
    #: suspicion 0.66 above the cluster's 0.61, rank 0.00 against the campaign's 0.99). Not in harvesting sub-clusters
    #: or a pooled body, nor for a member receiving like a lifted cluster's rare-tie holders. None: off.
    untied_member_received_share: float | None = Field(0.5, ge=0, le=1)
    #: A member tied to its cluster by no distinctive evidence of its own is judged on its own traffic: below the
    #: cluster's suspicion its inherited risk falls off quadratically. Not when its own suspicion is unusual for
    #: the store: above Q + ``own_traffic_spread`` × (Q − median), Q this quantile of the suspicion of the
    #: accounts outside clusters at or over the flag threshold. None: the fall-off always applies. On since
    #: 2026-12-05 (lead, merge c): on the scale-1.0 world recall 0.925 → 0.960 with 3 records for 3 campaigns (the
    #: stray that put two campaigns in one record in ``ig19`` is gone since ``rem20``'s tied remainders); the dev
    #: family and the guards identical with it on or off (docs/benchmarks.md).
    own_traffic_quantile: float | None = Field(0.9, gt=0, lt=1)
    #: ... the distance past that quantile, in multiples of its distance from the median.
    own_traffic_spread: float = Field(2.0, ge=0)
    #: ... judged only when at least this many accounts sit outside those clusters (fewer give no quantile to trust).
    own_traffic_min_accounts: int = Field(20, ge=2)
    #: A member tied to its cluster only by public content (no infrastructure, timing or private-content tie of
    #: its own: the benchmark researcher who sends the same public items) inherits this share of the risk.
    public_content_member_factor: float = Field(0.5, ge=0, le=1)
    #: Weight of each evidence group's share (net of chance) in a cluster's coordination,
    #: coordination = 1 − exp(−Σ weight × share − ``density_weight`` × min(dense-block density, ``density_cap``)).
    #: Hidden infrastructure an ordinary user never shares (a card, a partner's indicator) weighs most.
    group_weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_GROUP_WEIGHTS))
    #: Weight of the dense-block density term in coordination (a block of accounts all tied to each other).
    density_weight: float = Field(0.2, ge=0)
    #: ... whose density counts up to this.
    density_cap: float = Field(3.0, ge=0)
    #: An evidence group counts towards ``min_evidence_groups`` when this share of the cluster's core holds it
    #: beyond chance ("half the core"); the public-artefact rule (``artefact_*``) reads a group as holding the
    #: cluster at the same share.
    evidence_share: float = Field(0.5, gt=0, le=1)
    #: The cluster's core: members tied at least ``min_member_strength`` × the intra-cluster weight of the
    #: member at this quantile (a well-tied member).
    core_reference_quantile: float = Field(0.75, ge=0, le=1)
    #: A member tied to its cluster with less than this fraction of the cluster's median intra-cluster
    #: weight inherits proportionally less of the cluster's risk.
    min_member_strength: float = Field(0.35, ge=0, le=1)
    #: Member strength sums intra-cluster weight per evidence group, each group capped at this, so
    #: strength counts how many kinds of things an account shares, not how much traffic it sent.
    member_group_cap: float = Field(1.0, gt=0)
    #: Workload harvest groups across communities (scoring/workload.py).
    workload_groups: WorkloadGroupConfig = Field(default_factory=WorkloadGroupConfig)

    @field_validator("harvest_rarest_tie_groups")
    @classmethod
    def _known_tie_groups(cls, v: list[str]) -> list[str]:
        if unknown := set(v) - set(DEFAULT_GROUP_WEIGHTS):
            raise ValueError(f"unknown evidence groups: {sorted(unknown)}")
        return v

    @field_validator("group_weights")
    @classmethod
    def _known_groups(cls, v: dict[str, float]) -> dict[str, float]:
        if any(w < 0 for w in v.values()):
            raise ValueError("evidence group weights must be ≥ 0")
        return _over_defaults(v, DEFAULT_GROUP_WEIGHTS, "evidence groups")
