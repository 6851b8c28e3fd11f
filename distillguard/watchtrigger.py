"""Early detection on a volume trigger: `watch` detects before its interval is up when an account's traffic grows.

Why: `watch` detects every ``--interval`` minutes, and a detection costs the whole window (at scale 0.1 a
full-window tick is ~28 CPU-s; docs/benchmarks.md), so the interval cannot be made short for free. A campaign
that opens with a burst can send most of its first 1% between two detections (issue 14: seed 4's agentic trio
sent 13 requests in one hour, then 90 in the next, and was first judged on all of them at the next hourly
tick). The evidence that something new is happening is cheap to see between detections: the partials `watch`
folds at every poll already count each account's requests. So a detection also runs when an account not
flagged at the last detection has sent at least ``watch_trigger_min_requests`` requests since this process
started following the store and ``watch_trigger_growth`` times what it had sent at the last detection — its
traffic doubled (by default) since it was last judged — at most once every ``watch_trigger_min_minutes``.

An established account whose traffic is steady never doubles within a week's window, so in a live deployment
the trigger follows accounts that are new or ramping up; what a detection then decides is unchanged (the same
detection, only earlier). It counts from this process's first detection: a restarted watch triggers nothing
until its first scheduled detection has run (it does not know what the previous process had judged).

Each extra detection is also one more chance to act on one of detection's transient false flags (loop18's
replay, seed 4: a chat user flagged by a triggered detection at 08:20 only, throttled once). So a triggered
detection only adds (``watch_trigger_confirm``, on by default): its new flags are enforced once a second
detection ``watch_trigger_min_minutes`` later flags them again (``withhold`` takes them out of what the gateways
apply meanwhile, the trigger fires again to confirm, and ``watch.carry_forward`` does not carry an unconfirmed
one), and it releases nothing an earlier detection flagged — release waits for a scheduled detection. With
that the trigger is on by default (``watch_trigger_min_requests: 8``; 0 turns it off); measured on issue 14's
replay, seeds 1–6 (docs/benchmarks.md "Issue 14: a trigger that only adds").
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class VolumeTrigger:
    """Per-account request counts folded since the process started, and what they were at the last detection."""

    min_requests: int
    growth: float
    min_minutes: float
    totals: dict[str, int] = field(default_factory=dict)
    at_last: dict[str, int] = field(default_factory=dict)
    flagged: set[str] = field(default_factory=set)
    #: accounts that crossed the trigger since the last detection (only accounts with new traffic are checked)
    hot: set[str] = field(default_factory=set)
    primed: bool = False
    #: the last detection was triggered and left new flags waiting for a second detection (``withhold``)
    pending: bool = False

    def add(self, counts: dict[str, int]) -> None:
        """Counts of a newly folded batch (account -> requests)."""
        for a, n in counts.items():
            t = self.totals.get(a, 0) + int(n)
            self.totals[a] = t
            if (self.primed and self.min_requests > 0 and a not in self.flagged
                    and t >= max(self.min_requests, self.growth * self.at_last.get(a, 0))):
                self.hot.add(a)

    #: the clock at the last check: judged once per clock value (a live clock moves at every poll; a replay's
    #: simulated clock stands still while the next step's traffic arrives, and a detection stamped with the
    #: step's start must not judge traffic sent after it — bench/loop_replay.py)
    last_now: float | None = None

    def fires(self, now: float, last_detect: float) -> bool:
        moved = self.last_now is None or now > self.last_now
        self.last_now = now
        return moved and (bool(self.hot) or self.pending) and now - last_detect >= self.min_minutes * 60

    def detected(self, flagged: set[str]) -> None:
        """A detection ran: what each account had sent is what the next trigger compares with."""
        self.at_last = dict(self.totals)
        self.flagged = set(flagged)
        self.hot.clear()
        self.primed = True


_TRIGGERS: dict[str, VolumeTrigger] = {}


def trigger_for(store, cfg) -> VolumeTrigger:
    """This process's trigger for a store (one watch per store per process)."""
    key = str(store.path)
    t = _TRIGGERS.get(key)
    if t is None or (t.min_requests, t.growth, t.min_minutes) != (
            cfg.watch_trigger_min_requests, cfg.watch_trigger_growth, cfg.watch_trigger_min_minutes):
        t = _TRIGGERS[key] = VolumeTrigger(cfg.watch_trigger_min_requests, cfg.watch_trigger_growth,
                                           cfg.watch_trigger_min_minutes)
    return t


def withhold(store, accounts: set[str]) -> int:
    """Take back what the gateways would apply to ``accounts`` (new flags of a triggered detection awaiting a
    second detection, ``watch_trigger_confirm``); returns the enforcement rows removed.

    Removed: the applied scan rows (``source`` "scan") on those accounts, every applied scan row of a campaign
    all of whose members are among them (its cluster and org rows too), and their ``account_clusters`` rows (the
    mapping through which a cluster row reaches an account). Kept: their flags, campaigns and recommendations
    (an analyst sees them at once), shadow rows (reported, never applied), rows from other sources (an analyst's,
    the console's), and everything on accounts flagged before."""
    import pyarrow as pa

    if not accounts:
        return 0
    from distillguard.campaigns.enforcement import campaign_accounts

    only_new = {c for c, ms in campaign_accounts(store).items() if ms <= accounts}
    n = 0
    if store.has_table("enforcement"):
        t = store.read_table("enforcement")
        keep = [not (src == "scan" and ((st == "account" and sid in accounts) or cid in only_new))
                for st, sid, src, cid in zip(t["subject_type"].to_pylist(), t["subject_id"].to_pylist(),
                                             t["source"].to_pylist(), t["campaign_id"].to_pylist(), strict=True)]
        n = keep.count(False)
        if n:
            store.write_table("enforcement", t.filter(pa.array(keep, pa.bool_())))
    if store.has_table("account_clusters"):
        t = store.read_table("account_clusters")
        keep = [a not in accounts for a in t["account_id"].to_pylist()]
        if not all(keep):
            store.write_table("account_clusters", t.filter(pa.array(keep, pa.bool_())))
    return n


def flagged_accounts(store) -> set[str]:
    if not store.has_table("account_risk"):
        return set()
    t = store.read_table("account_risk")
    return {a for a, f in zip(t["account_id"].to_pylist(), t["flagged"].to_pylist(), strict=True) if f}
