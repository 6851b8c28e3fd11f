"""Scan configuration: every threshold the detection stages use, as validated data.

Thresholds are set by hand (on the default simulated world) and must hold on other worlds;
nothing here is learned from labels. A YAML file can override any key; unknown keys are errors
so a misspelt threshold never silently falls back to its default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from distillguard.alerts import AlertsConfig
from distillguard.config import load_section
from distillguard.engine.config import EngineConfig
from distillguard.policy.review import EnforcementPolicy
from distillguard.scan.configbase import Strict as _Strict
from distillguard.scan.scoringconfig import (  # noqa: F401  (re-exported: the scan's configuration is imported from here)
    DEFAULT_ACCOUNT_WEIGHTS,
    DEFAULT_GROUP_WEIGHTS,
    AccountModelConfig,
    LearningConfig,
    ScoringConfig,
    WorkloadGroupConfig,
)


class BehaviorConfig(_Strict):
    #: A signal counts as "present" on an exchange when its score reaches this value.
    signal_hit: float = Field(0.5, ge=0, le=1)
    #: A model is a "release" when it is first seen this many hours after the span starts.
    release_min_offset_hours: float = Field(24.0, ge=0)
    #: max_tokens at or above this counts as "long-output request".
    high_max_tokens: int = Field(4000, ge=1)
    #: Non-capability signals that describe *what* the prompt is built on rather than an extraction
    #: intent (public benchmarks are used by ordinary users too); they do not count as intent.
    non_intent_signals: list[str] = Field(default_factory=lambda: ["sig_task_dataset"])
    #: Keep a partial table per account × system prompt × hour (one-turn, reasoning, max_tokens, output received,
    #: each signal's hits): what ``scoring.pool_share_reading`` reads a pool member's suspicion from. Costs about
    #: one more row per account-hour that carries a system prompt in ``prepare``; false: not built, and the
    #: reading is off.
    system_prompt_partials: bool = True
    #: Keep the same counts in the account × template × hour partial (``beh_at``, which otherwise holds only the
    #: exchange count): what ``scoring.pool_share_templates`` reads a pool member's suspicion from, on the exchanges
    #: carrying its pool's private templates. Costs those columns on each of ``beh_at``'s rows in ``prepare``; false:
    #: not built, and the template reading is off.
    template_partials: bool = True


#: Default weight per edge kind before the commonness discount. Infrastructure a provider does
#: not hand out (payment, TLS fingerprint) weighs more than what many unrelated users share.
DEFAULT_KIND_WEIGHTS: dict[str, float] = {
    "payment": 3.0, "ja4": 1.0, "header_fp": 1.0, "user_agent": 0.8, "ip24": 1.2, "asn": 0.2,
    "email_domain": 0.8, "email_pattern": 0.8, "creation_burst": 1.5, "payment_burst": 1.5,
    "template": 1.0, "system_prompt": 1.0, "task_item": 0.0, "sync": 1.2, "intel": 3.0,
}


class GraphConfig(_Strict):
    kind_weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_KIND_WEIGHTS))
    #: An account is linked through an exchange-level entity only when it is at least this
    #: share of the account's traffic (or this many exchanges): a single request through a
    #: shared VPN exit is not shared infrastructure.
    min_entity_share: float = Field(0.01, ge=0, le=1)
    min_entity_count: int = Field(3, ge=1)
    #: Entities shared by more accounts than this are linked as a sampled ring, not a clique.
    clique_cap: int = Field(24, ge=2)
    #: Entities shared by a larger share of all active accounts are dropped unless their accounts'
    #: mean suspicion reaches the ``common_entity_quantile`` of all accounts' suspicion (a free-mail
    #: domain or the default SDK fingerprint is dropped; a custom client shared by a big pool is kept).
    max_entity_share: float = Field(0.05, gt=0, le=1)
    common_entity_quantile: float = Field(0.8, ge=0, le=1)
    #: Creation-burst window: accounts created on one pathway within this many minutes.
    creation_burst_minutes: int = Field(10, ge=1)
    #: A creation bucket is a burst only when it holds at least this many accounts.
    creation_burst_min: int = Field(4, ge=2)
    #: Sign-ups on one card (kind ``payment_burst``, evidence group *creation*): accounts holding one payment
    #: instrument and created within this many hours of each other (two offset grids). A hydra opens its
    #: accounts on one card in an afternoon from distinct networks, pathways and e-mail shapes; a family's or a
    #: company's card gathers accounts over months. 0 turns it off.
    payment_burst_hours: float = Field(24.0, ge=0)
    #: ... a window counts only when at least this many of the card's holders (and more than λ + 4√λ + 1, λ the
    #: card's other holders at the store's own sign-up pace) were created in it: two people sharing a card
    #: opening accounts the same day is ordinary.
    payment_burst_min: int = Field(3, ge=2)
    #: Kinds that are evidence when a cluster is scored (its evidence groups, sub-clusters, campaign merges) but
    #: link no accounts in the coordination graph, so the communities are what the other kinds make them. A
    #: card's sign-up burst links exactly the card's holders again; as edges it pulled a hydra's card holders and
    #: the popular tool's users they share templates with into new level-1 communities (``cohorts_mixed`` guard:
    #: three step-by-step tool users flagged), as scoring evidence it only tells a card group's coordination.
    score_only_kinds: list[str] = Field(default_factory=lambda: ["payment_burst"])
    #: Synchronised-activity bucket width.
    sync_bucket_minutes: int = Field(10, ge=1, le=60)
    #: Co-activity lift (over the template's own hour-of-day rhythm) at which an account counts as synchronised.
    sync_min_lift: float = Field(2.5, gt=1)
    #: MinHash values per (account, template) summarising its busy buckets: accounts share a sync entity
    #: when their busy buckets overlap, not merely because both are synchronised with someone on a template.
    sync_bands: int = Field(6, ge=1, le=64)
    #: Entity weight floor for entities whose accounts all look benign (0..1 multiplier).
    benign_floor: float = Field(0.15, ge=0, le=1)
    #: Leiden resolutions (RB configuration model), coarse to fine. Each account takes the risk of the
    #: level where it scores highest: a loose 2,000-account hydra surfaces at the coarse level, a tight
    #: 3-account pool that the coarse level merges into a bigger community surfaces at the fine one.
    resolutions: list[float] = Field(default_factory=lambda: [1.0, 3.0], min_length=1)
    #: Communities smaller than this are not clusters.
    min_cluster_size: int = Field(3, ge=2)
    #: Pairs whose summed weight is below this are dropped before community detection.
    min_pair_weight: float = Field(0.0, ge=0)
    #: Dense-block search: how many blocks to peel and the batch-peeling slack.
    dense_blocks: int = Field(8, ge=0)
    dense_epsilon: float = Field(0.1, gt=0)
    #: Operations (graph/operations.py): two level-0 communities are joined when they hold more of the same
    #: hidden account-level entities (``join_kinds``) than two random groups of their sizes would, at this
    #: family-wise chance (divided by the number of community pairs); each operation of several communities
    #: is scored as one more cluster level, so an operation the community detection cut into pieces is judged
    #: against the store outside it, not against its own other pieces. 0 turns it off.
    join_alpha: float = Field(1e-3, ge=0, le=1)
    #: ... counting entities of these kinds (what strangers do not share: a card, a sign-up burst, a partner's
    #: indicator).
    join_kinds: list[str] = Field(default_factory=lambda: ["payment", "creation_burst", "intel"])
    #: ... and only when the pair's overlap is also large, not merely beyond chance (the test's power grows with
    #: the communities' sizes: at full scale a few cards or sign-up bursts two campaigns happen to share pass
    #: it): the smaller community's *tie share* into the other — per account, the share of the other holders of
    #: one of its join-kind entities that sit in the other community (its largest), averaged over the smaller
    #: community's accounts — must reach this. A size-free effect size: pieces of one operation tie about a
    #: third of their co-holders to each other, coincidences well under a hundredth. 0 turns the requirement off.
    join_min_share: float = Field(0.05, ge=0, le=1)
    seed: int = 7
    #: Which Leiden runs the communities (every level, and the harvesting sub-cluster cuts): ``igraph`` (its C
    #: implementation, modularity objective with the resolution above) or ``leidenalg`` (its
    #: RBConfigurationVertexPartition, the default before; the same objective, other partitions, 9–14× the CPU:
    #: at scale 1.0 Leiden's level 0 took 164 CPU-s with leidenalg against 16 with igraph; docs/benchmarks.md
    #: "Issue 13: igraph's Leiden" and branch ``ig19``).
    leiden_implementation: Literal["igraph", "leidenalg"] = "igraph"
    #: Leiden's passes over the graph at each level (igraph only; leidenalg always 2): a negative number runs
    #: until a pass no longer improves the partition.
    leiden_iterations: int = 2
    #: The incidence step sums the hourly account × entity rows (``inc_h``) in parts of about this many rows,
    #: split by a hash of the account (DuckDB engine); the result does not depend on it. None: one statement
    #: (DuckDB's aggregate partitions by hash and spills partitions by itself). Every part reads all of
    #: ``inc_h``, so parts cost parts × rows: super-linear in the traffic, 6 reads of ~80M rows at scale 1.0.
    incidence_chunk_rows: int | None = Field(None, ge=1)


class CampaignConfig(_Strict):
    #: Enforcement decisions from scan lapse after this many days unless renewed.
    enforcement_days: int = Field(14, ge=1)
    #: Confidence at or above which the recommended action is block (below: throttle/verify).
    block_confidence: float = Field(0.85, ge=0, le=1)
    #: A new account inheriting this share of a banned account's fingerprints/templates is linked to it.
    ban_evasion_overlap: float = Field(0.5, ge=0, le=1)
    #: Two flagged clusters are one operation when this share of the accounts of each holds entities of two
    #: or more evidence groups the other holds (and a flagged cluster this share of whose flagged accounts are
    #: members of a flagged operation joined by the graph stage, ``clop-…``, is that operation's record) ...
    merge_min_cover: float = Field(0.5, ge=0, le=1)
    #: ... counting only entities at least this share of whose holders sit in the two clusters (private
    #: templates, the operation's own cards and busy buckets; not a public template half the world sends).
    merge_exclusive: float = Field(0.8, ge=0, le=1)
    #: Private content is one evidence group: alone it merges two flagged clusters only when they send one
    #: workload — each sends at least this share of the other's own private templates and system prompts (those
    #: merge_min_cover of its accounts send). Two operations with one attack kit each send templates the
    #: other never does; an operation's own accounts and the proxy pool relaying its requests do not. At the
    #: campaign stage two flagged clusters sending one workload are one record even when other flagged
    #: clusters send those templates too (an operation cut into many pieces).
    merge_same_workload: float = Field(0.9, ge=0, le=1)
    #: ... where a cluster "sends" a template or system prompt when at least this share of its accounts send it:
    #: a few hundred accounts of a big proxy pool relaying another operation's kit, or one stray account of it,
    #: do not make two operations one workload. 0: any one account sends it for its cluster.
    merge_send_min_share: float = Field(0.05, ge=0, le=1)
    #: A shared schedule (``sync``: busy in the same buckets *on a template*) beside shared private content is one
    #: evidence group, not two, when a piece linked to several records picks one: two operations running one kit's
    #: templates on its schedule share both by construction (``campaigns/operations.py`` does not test timing for
    #: that reason), so such a link ranks below one workload, an own tie or a second independent group. Alone it
    #: still makes the piece a candidate (one operation's piece may share nothing else). False: they rank as two
    #: groups (docs/benchmarks.md, branch ``rec23``: a quiet hydra's account placed in a low-and-slow record).
    schedule_is_content: bool = True
    #: A community's one flagged account left once a flagged harvesting or shared-entity sub-cluster was cut
    #: out of it (its harvesters keep the sub-cluster's higher risk) joins that sub-cluster's record: it was
    #: flagged with them, on a score that counted them, and alone it would be dropped as a lone flag although
    #: its cluster's other flagged accounts sit one level down. Not when the merge rules above already placed
    #: it (an operation link, a joined operation, a piece of another record): its own evidence wins over the
    #: community it was left in. False: such an account joins a record only by the merge rules above
    #: (docs/benchmarks.md, branches ``loop14e`` and ``ig19``).
    join_parent_remainder: bool = True
    #: ... only when it shares a coordination edge with a flagged account of that sub-cluster: a member flagged
    #: on its own traffic and tied to a big community by a free-mail domain was not flagged *with* the
    #: harvesters cut from it, and joining their record put another operation's account in it (scale 1.0,
    #: docs/benchmarks.md, branch ``rem20``). Without such an edge it has no record, so no flag. False: every
    #: lone remainder joins.
    remainder_needs_tie: bool = True
    #: ... and two or more flagged accounts left in such a community join the sub-cluster's record when every one
    #: of them shares a coordination edge with its flagged accounts: a harvesting sub-cluster and the members its
    #: community flags beside it, tied to the harvesters, are one operation (dev small_provider-116: one 8-account
    #: operation as records of 4 and 2, docs/benchmarks.md, branch ``rem20``). Needs ``remainder_needs_tie``.
    #: False: they are a record of their own, left to the merge rules.
    join_tied_parent: bool = True
    #: Two or more flagged accounts left in a cluster (any level but an operation's) most of whose flagged members
    #: took another cluster's row join the cluster holding most of those when every one of them shares a
    #: coordination edge with them: flagged with them, their risk happened to peak here (scale 1.0: 2 coding
    #: proxies of a 17-account harvesting sub-cluster whose other 14 went to the coding operation were a record of
    #: their own; docs/benchmarks.md, branch ``rem20``). Off by default: any coordination edge (an ASN, a free-mail
    #: domain) is a link, and on the dev family a quiet hydra's 6 accounts left in a community whose low-and-slow
    #: members peaked in their workload group joined that record (standard-100), a reasoning pool's record joined a
    #: ban-rotation record (standard-105): two operations in one record. False: such accounts are a record of their own.
    remnant_tied_majority: bool = False
    #: ... and two or more flagged accounts left in a community join the cluster holding most of its flagged
    #: accounts when they are at most this share of those (a hydra's community keeping the few ordinary users it
    #: also held, flagged with it). Records change, flags do not. 0: such accounts are a record of their own.
    remnant_max_share: float = Field(0.1, ge=0, le=1)
    #: Two flagged clusters drawn from some of the same accounts (a member of one flagged in the other's row: a
    #: workload group and the community it drew from, a community and another level's sub-cluster) are one record
    #: when the smaller holds the bigger one's own infrastructure — a card, a sign-up burst or sign-ups on one card,
    #: an e-mail naming shape, a client build (TLS or header fingerprint, user agent) that at least
    #: own_tie_min_holders of the bigger one's flagged accounts hold and at least merge_exclusive of whose holders in
    #: the store are in the two. Not networks, ASNs, e-mail domains, content or schedules: two operations sharing a
    #: community send one kit's prompts from the same ISPs (campaigns/owned.py; dev standard-105: the low-and-slow
    #: campaign as a community record of 97 and a workload-group record of 12, docs/benchmarks.md, branch
    #: ``rec21``). False: such clusters are joined only by the merge rules above.
    join_own_ties: bool = True
    #: ... when at least this share of the smaller cluster's flagged accounts hold such an entity ...
    own_tie_min_cover: float = Field(0.25, ge=0, le=1)
    #: ... and at least this many of them (all of them when it has fewer) ...
    own_tie_min_accounts: int = Field(2, ge=1)
    #: ... where an entity is the bigger cluster's own when at least this many of its flagged accounts hold it.
    own_tie_min_holders: int = Field(2, ge=1)
    #: ... and a smaller cluster of one flagged account (a lone flag, dropped unless it joins a record) joins only
    #: when what it holds spans at least this many evidence groups. 2: a sign-up burst alone is whoever signed up on
    #: the pathway in its minutes, not an operator's own infrastructure (as ``scoring.burst_background_check`` reads
    #: it for one member). Set by the lead after the evaluation family's one run showed a chat user in a campaign's
    #: sign-up burst keep its lone flag with 1 (standard-516; on dev, 2 drops one campaign account of standard-111
    #: held by a burst alone) -- the evaluation family no longer speaks for this key (docs/benchmarks.md, ``rec21``).
    own_tie_lone_groups: int = Field(2, ge=1)
    #: Two flagged clusters drawn from some of the same accounts (as for join_own_ties) send one workload, and are
    #: one record, when each sends at least merge_same_workload of the other's own private templates and system
    #: prompts *counting only those a group of its size would be expected to send*: the bigger one's own templates
    #: the smaller never sends are excused when the chance that a group of the smaller one's size, drawn from the
    #: bigger one's accounts, misses all of them -- the product of (1 - the bigger one's share sending each)^(the
    #: smaller one's flagged accounts) -- is at least this. A 5-account piece need not send a template 9 of its
    #: hydra's 17 send (dev standard-117: 0.47^5 = 0.023; the hydra was two records). Two operations sharing one
    #: kit each send templates of their own that the other never does, from most of their accounts, which no
    #: group of either size misses by chance: they stay two records (campaigns/owned.py, docs/benchmarks.md,
    #: branch ``rec26``). 0: off (the bigger one's own templates all count).
    workload_piece_alpha: float = Field(0.01, ge=0, le=1)
    #: Flagged records are also one operation when the entities they both hold are beyond chance for random
    #: groups of the store's other accounts holding as many entities (campaigns/operations.py): Fisher's
    #: combination of the per-group p-values must be at most this over the number of record pairs tested
    #: (the family-wise chance that two unrelated records merge). 0 turns this merging off.
    operation_alpha: float = Field(1e-3, ge=0, le=1)
    #: ... and at least operation_min_groups evidence groups each reach this p-value, one of them hidden
    #: infrastructure (payment, creation, network, client, e-mail naming, intel; not timing, a schedule on a
    #: template both send: the content again)...
    operation_group_p: float = Field(0.01, ge=0, le=1)
    #: ... so that no single coincidence merges two records and shared content alone never does.
    operation_min_groups: int = Field(2, ge=1)
    #: Titles (campaigns/describe.py): a signal is named when at least this share of the campaign's requests carry
    #: it and it over-represents it against the store by title_capability_lift (capabilities; also the bar
    #: evidence lines use to name a signal) or title_intent_lift (extraction intents); of those, the one it
    #: sends most, so the title names what the evidence lines list.
    title_min_share: float = Field(0.1, ge=0, le=1)
    #: A capability is named in a title (and evidence lines) only when it is at least this many times as common in
    #: the campaign's requests as in the store's.
    title_capability_lift: float = Field(2.0, ge=1)
    #: The same over-representation bar for extraction intents (CoT, grading, rewrites, synthetic data).
    title_intent_lift: float = Field(2.0, ge=1)
    #: The shared-evidence sentence names, rarest first, kinds held by at least this share of the campaign's
    #: accounts (kinds rarer than synchronised schedules: by two or more), at most evidence_max_kinds of them.
    evidence_min_cover: float = Field(0.5, ge=0, le=1)
    #: At most this many kinds of shared evidence in a campaign's evidence sentence (rarest first).
    evidence_max_kinds: int = Field(5, ge=1)
    #: What applies by itself and what waits for an analyst (docs/detection.md#review-before-enforcement).
    enforcement: EnforcementPolicy = Field(default_factory=EnforcementPolicy)


class ScanConfig(_Strict):
    behavior: BehaviorConfig = Field(default_factory=BehaviorConfig)
    graph: GraphConfig = Field(default_factory=GraphConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    campaigns: CampaignConfig = Field(default_factory=CampaignConfig)
    #: New-campaign webhook (docs/detection.md#alerts); off until its URL variable is set.
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    #: Spark engine (``scan --engine spark``) and community detection beyond the driver (docs/spark.md).
    engine: EngineConfig = Field(default_factory=EngineConfig)
    #: ``scan --replay``: each evaluation before the last looks at the last this many hours of traffic
    #: (accounts active in them), as a live `watch` with this window would, so a step costs the window's
    #: traffic rather than the whole history up to it; the last evaluation is the full scan. A campaign whose
    #: evidence needs a longer history than this is first flagged later in the replay (at worst by the last,
    #: full evaluation). None: every evaluation on all traffic up to its time.
    replay_window_hours: float | None = Field(72.0, gt=0)
    #: `distillguard watch`: each detection judges the last this many hours of traffic (the partials of the
    #: parts that reach them), so a tick costs the window plus the new traffic, not the whole store. What an
    #: earlier detection found stays (members, flags, enforcement) until its rows expire or an analyst acts,
    #: after its traffic has left the window. None: every detection on all traffic.
    watch_window_hours: float | None = Field(168.0, gt=0)
    #: Release hysteresis of a windowed watch: a former campaign member the newer detection judged on all its
    #: traffic (none before the window) and did not flag is released only when that detection's risk for it is
    #: below this; between this and ``scoring.flag_threshold`` it stays carried, so an account whose risk merely
    #: dips under the threshold for one interval is not served ``allow`` until it is flagged again.
    #: 0: never released this way (the earlier behaviour); >= the flag threshold: released whenever not flagged.
    watch_release_below: float = Field(0.25, ge=0, le=1)
    #: `distillguard watch`: each detection's Leiden starts from the communities the previous detection in the
    #: same process found (accounts new to the graph start alone), not from every account alone: successive
    #: windows share most of their graph, and Leiden then needs about half the CPU. The communities can differ
    #: from a cold start's (another local optimum of the same quality function), so a tick no longer equals a
    #: scan of its window and its results depend on the ticks before it; measured on one world only (rep16:
    #: time to detect unchanged, a full-window tick 37.5 → 28.8 CPU-s with the other tick savings). Off by
    #: default until measured over a family: every detection starts cold, as a scan does; a restarted watch's
    #: first detection always does.
    watch_warm_communities: bool = False
    #: `distillguard watch`: a windowed detection's own tables (the merged partials, the incidence) in the
    #: detection's DuckDB memory, not in a database file in the spill directory as ``tables_on_disk`` puts a
    #: scan's: a window's partials are bounded by ``watch_window_hours``, and compressing them into the file and
    #: reading them back was about half of the merge's CPU at every tick (rep17, scale 0.1: 3.3 → 1.7 CPU-s a
    #: full-window merge; the replay's peak RSS 2.4 GB, 2.5 GB with the file). Past ``memory_limit`` DuckDB
    #: still spills them. A detection on all traffic (``watch_window_hours`` null) follows ``tables_on_disk``.
    watch_tables_in_memory: bool = True
    #: `distillguard watch`: the watch process's allocator (glibc) keeps up to this many bytes of freed memory
    #: for reuse (``signals.score.keep_freed_memory``, what the scan's signals worker sets), from its first tick.
    #: A tick scores its new traffic's signals in the watch's own process (the prompt memo lives there across
    #: ticks), and by default each of the scoring's large per-batch arrays is a fresh ``mmap`` whose pages fault
    #: in one by one: about 0.3 CPU-s per 100k exchanges, most of it system time (rep20, scale 0.1, four day
    #: parts: 9.6 → 8.5 CPU-s, system 2.7 → 1.2). The cost is resident memory: up to this much freed memory stays
    #: with the process. 0: off.
    watch_keep_freed_bytes: int = Field(1 << 30, ge=0)
    #: `distillguard watch`: detect before the interval is up when an account not flagged at the last detection
    #: has sent at least this many requests since the watch started and ``watch_trigger_growth`` times what it
    #: had sent at the last detection (distillguard/watchtrigger.py): a campaign opening with a burst is judged
    #: within ``watch_trigger_min_minutes`` of it, not at the next interval (issue 14, seed 4's agentic trio:
    #: 1.50% of its exchanges before the first flag with hourly detections, 0.80% with the trigger;
    #: docs/benchmarks.md). It costs one detection per firing. On by default since loop19: with
    #: ``watch_trigger_confirm`` a triggered detection only adds flags (its new ones enforced once a second
    #: detection agrees) and releases nothing, so the extra detections no longer act on detection's transient
    #: false flags alone (loop18 measured a chat user throttled at a triggered detection without it). 0: off,
    #: detection every interval only.
    watch_trigger_min_requests: int = Field(8, ge=0)
    #: The growth since the last detection that fires the trigger (2: an account's traffic doubled since it was
    #: last judged). A steady established account never doubles within a window; a new or ramping one does.
    watch_trigger_growth: float = Field(2.0, gt=1)
    #: At most one triggered detection this often (minutes since the last detection of any kind): bounds the
    #: trigger's cost when some account somewhere is always ramping up (a large provider's sign-ups).
    watch_trigger_min_minutes: float = Field(10.0, gt=0)
    #: A triggered detection's new flags wait for a second detection before the gateways apply them: an account
    #: flagged at a triggered detection and not at the detection before it is flagged (a recommendation, in the
    #: console) but gets no enforcement row and no cluster mapping yet; the trigger then fires again at the next
    #: tick ``watch_trigger_min_minutes`` later, and what that detection flags again is enforced, what it does
    #: not is released (not carried forward). A triggered detection also releases nothing an earlier detection
    #: flagged (release waits for a scheduled detection). Scheduled detections enforce at once, as without the
    #: trigger. Why:
    #: each extra detection is one more chance to act on one of detection's transient false flags (issue 14's
    #: replay, seed 4: a chat user tied to the coding hydra's cluster only through a shared e-mail domain and
    #: client string was flagged at 08:20 only, and a triggered detection there throttled it); two detections
    #: ten minutes apart must agree. False: a triggered detection enforces at once (loop18's measured form).
    watch_trigger_confirm: bool = True
    #: `distillguard watch`: a windowed detection re-judges the whole window every this many detections; the ones
    #: in between are light (distillguard/watchlight.py): only accounts no detection has judged yet are looked
    #: at, and one that holds a found campaign's own entities (``watch_join_entity_share``) in at least
    #: ``watch_join_min_groups`` evidence groups joins it — flagged, a member, under its account-level
    #: enforcement. Everything else keeps the last full detection's verdict until the next one: a new campaign of
    #: accounts no campaign holds, or a release, waits up to this many − 1 detections. Why: every full detection
    #: costs about a scan's detection whatever changed (a week's window holds nearly every account; rep20), and
    #: no exact incremental detection exists (idf over the window moves every edge weight). Triggered detections
    #: (``watch_trigger_min_requests``) are always full. 1: every detection full (a tick equals a scan of its
    #: window). Measured at 3 (docs/benchmarks.md, rep23) and kept off by default: see there for what it loses.
    watch_full_every: int = Field(1, ge=1)
    #: A light detection counts an entity as a campaign's own when at least this share of the accounts holding it
    #: in the last full detection's window were that campaign's members (a hydra's proxies, cards, sign-up bursts;
    #: not a shared NAT or a popular client, whose holders are mostly others).
    watch_join_entity_share: float = Field(0.5, gt=0, le=1)
    #: ... and when at most this many accounts held it in that window: an entity hundreds of accounts hold (a stock
    #: browser client string, a popular template) is no campaign's own whatever share of them the campaign is
    #: (rep23, scale 0.1: without this cap 157 chat users and developers joined the coding hydra through its client
    #: string and residential /24s). 24 is ``graph.clique_cap``'s default: past it the graph itself treats an
    #: entity as widely shared (a ring, not a clique).
    watch_join_max_holders: int = Field(24, ge=2)
    #: A new account joins a campaign in a light detection when it holds that campaign's own entities in at least
    #: this many evidence groups (network, client, payment, e-mail, creation, content, ...): one shared group (a
    #: /24, a template) is what unrelated accounts share by chance; the scan's operations ask for several too.
    watch_join_min_groups: int = Field(2, ge=1)
    #: ... and when at least one of those entities is of these kinds: what an account takes on once, at sign-up —
    #: its card, the card's sign-up burst, the pathway's sign-up burst — and a campaign reuses because making
    #: accounts is its work. The traffic's entities (a home /24 or ASN, a stock client string, a free-mail shape,
    #: a prompt template) are what ordinary users share with a campaign by chance: rep24 at scale 0.1 found 11 of
    #: the 12 benign joiners (of 139 joins) holding only a /24, a template or a free-mail shape a hydra's accounts
    #: also held, and 126 of the 127 attack joins holding its card or a sign-up burst (benign ever flagged 15 → 4).
    #: Empty: any kinds (rep23's rule).
    watch_join_signup_kinds: list[Literal["payment", "payment_burst", "creation_burst", "email_domain",
                                          "email_pattern", "ip24", "asn", "ja4", "header_fp", "user_agent",
                                          "template", "system_prompt", "task_item"]] = \
        Field(default_factory=lambda: ["payment", "payment_burst", "creation_burst"])
    #: DuckDB memory limit for the scan (spills to the store's tmp dir beyond it).
    memory_limit: str = "3GB"
    threads: int = Field(2, ge=1)
    #: The prepare stage projects and folds at most this many exchanges at a time (whole days; a larger day is
    #: one slice): its temporary disk is then about one slice's projection rather than the whole store's. The
    #: slice's projection is held in memory uncompressed (~330 bytes an exchange, a TEMP table spilling only
    #: past memory_limit), so this also bounds prepare's memory: ~0.35 GB at 1M (peak RSS at scale 0.1: 1.0 GB
    #: at 1M, 1.4 GB at 2M).
    prepare_chunk_rows: int = Field(1_000_000, ge=1)
    #: The scan's own tables (prepare's partials, detect's incidence) in a database file in the spill directory
    #: (removed with it), rather than in memory: past memory_limit an in-memory database's blocks are written
    #: to the spill files as well, and at scale 1.0 the partials alone outgrow a 3GB memory_limit.
    tables_on_disk: bool = True
    #: Scoring threads of the signals stage (None: one per core), in one worker process that shares one
    #: prompt memo among them (a store of several parts; otherwise worker processes). Each holds one batch
    #: of exchanges, so memory grows by ~100 MB per worker.
    signals_workers: int | None = Field(None, ge=1)
    #: Prompts the signals memo remembers the scores of per worker (the prompt memo, docs/signals.md; the
    #: workers' one memo holds workers × this many): a prompt seen again in a later batch is not scored again.
    #: About 60 bytes each plus the text; 0 turns the memo off. The memo also keeps the scores of prompts'
    #: first and last parts, up to half this many.
    signals_memo_prompts: int = Field(600_000, ge=0)
    #: Characters of prompt text the signals memo holds at most per worker (about a byte each for ASCII text,
    #: plus ~150 bytes per prompt; the parts' memo gets a quarter more): with the defaults at most ~250 MB per worker.
    signals_memo_chars: int = Field(96_000_000, ge=0)
    # -- spilling and resuming (distillguard/scan/resources.py, checkpoint.py) --
    #: Directory the scan spills to and keeps its resume checkpoints in (None: STORE/tmp).
    temp_directory: str | None = None
    #: Bound on each connection's spill files, e.g. "40GB" (None: the disk's free space at the start of the
    #: run minus temp_free_margin).
    temp_max_size: str | None = None
    temp_free_margin: str = "2GB"


def load_config(path: str | Path | None) -> ScanConfig:
    """The ``scan`` section (file, then DISTILLGUARD_SCAN__* variables; docs/configuration.md)."""
    return load_section(ScanConfig, "scan", path)
