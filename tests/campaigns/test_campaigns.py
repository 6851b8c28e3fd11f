from collections import Counter
from datetime import timedelta

import orjson
import pyarrow as pa
import pytest

from distillguard.scan.config import ScanConfig
from distillguard.scan.run import run_scan, write_tables
from distillguard.store import Store
from distillguard.testing.worlds import build_tiny_world

HARD_NEGATIVES = ("nat_shared_ip", "popular_tool", "benchmark_researcher", "batch_labelling", "tutoring_platform",
                  "reseller")


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    st = Store(tmp_path_factory.mktemp("w") / "store", create=True)
    w = build_tiny_world(st, seed=3)
    res = run_scan(st, ScanConfig(), signals="never")
    write_tables(st, res, ScanConfig())
    return w, res


def test_every_campaign_found_and_pure(scanned):
    w, res = scanned
    flagged = {r["account_id"] for r in res.account_risk.to_pylist() if r["flagged"]}
    # the hydra is tied only by templates and timing; a few of its 24 accounts land in an ordinary community
    for camp, share in (("camp-slow", 0.95), ("camp-hydra", 0.8)):
        members = [a for a, (c, _) in w.labels.items() if c == camp]
        assert len(set(members) & flagged) >= share * len(members), camp
    by_campaign: dict[str, Counter] = {}
    for a, cid in res.campaign_members.items():
        by_campaign.setdefault(cid, Counter())[w.labels[a][0]] += 1
    for counts in by_campaign.values():
        assert None not in counts and len(counts) == 1  # pure: no benign account, one true campaign each
    # the slow campaign's three payment-card pools are merged back into one campaign
    assert sum(1 for c in by_campaign.values() if "camp-slow" in c) == 1


@pytest.mark.parametrize("persona", ("chat",) + HARD_NEGATIVES)
def test_hard_negatives_stay_unflagged(scanned, persona):
    w, res = scanned
    flagged = {r["account_id"] for r in res.account_risk.to_pylist() if r["flagged"]}
    accts = [a for a, (_, p) in w.labels.items() if p == persona]
    assert accts and not (set(accts) & flagged)


def test_low_and_slow_campaign_no_single_account_rule_catches(scanned):
    """Every slow-campaign account is below the benign median volume and below every per-account
    threshold a baseline would use, yet all are flagged through what they share."""
    w, res = scanned
    f = {r["account_id"]: r for r in res.step.features.to_pylist()}
    slow = [a for a, (c, _) in w.labels.items() if c == "camp-slow"]
    benign_vol = sorted(f[a]["n_exchanges"] for a, (c, _) in w.labels.items() if c is None)
    assert max(f[a]["n_exchanges"] for a in slow) < benign_vol[int(0.95 * len(benign_vol))]
    assert max(f[a]["rpd_util"] for a in slow) < 0.05
    risk = {r["account_id"]: r for r in res.account_risk.to_pylist()}
    assert all(risk[a]["flagged"] for a in slow)
    assert any("share" in reason for reason in risk[slow[0]]["reasons"])


def test_campaign_record_fields(scanned):
    w, res = scanned
    slow_acct = next(a for a, (c, _) in w.labels.items() if c == "camp-slow")
    c = next(c for c in res.campaigns if c["campaign_id"] == res.campaign_members[slow_acct])
    mix = orjson.loads(c["capability_mix"])
    assert max(mix, key=mix.get) == "cot_elicitation"
    assert c["pivot_model"] == "model-b" and 0 <= c["pivot_delay_hours"] <= 24
    infra = orjson.loads(c["infrastructure"])
    assert infra["shared"]["payment"]["n"] == 3
    assert c["recommended_action"] in ("block", "protect_reasoning")
    assert c["first_seen"] < c["last_seen"] and c["n_exchanges"] > 0
    assert any("payment" in e for e in c["evidence"])


def test_tables_written_per_contract(scanned):
    w, res = scanned
    st = w.store
    for name in ("account_features", "coordination_edges", "cluster_members", "clusters", "account_risk",
                 "campaigns", "campaign_members", "enforcement", "account_clusters"):
        assert st.has_table(name), name
    enf = st.read_table("enforcement").to_pylist()
    assert "account" in {r["subject_type"] for r in enf}
    assert all(r["expires_at"] > r["created_at"] for r in enf)
    # a cluster row reaches every account of the cluster: only clusters made of campaign members alone get one
    members = {a for a, _ in res.campaign_members.items()}
    in_cluster: dict = {}
    for r in st.read_table("account_clusters").to_pylist():
        in_cluster.setdefault(r["cluster_id"], set()).add(r["account_id"])
    for r in enf:
        if r["subject_type"] == "cluster":
            assert in_cluster.get(r["subject_id"], set()) <= members
    edges = st.read_table("coordination_edges")
    assert edges.schema.field("weight").type == pa.float64()
    assert set(edges["kind"].to_pylist()) <= {"ip24", "asn", "ja4", "header_fp", "user_agent", "payment", "email_domain",
                                              "email_pattern", "creation_burst", "payment_burst", "template", "system_prompt",
                                              "task_item", "sync", "intel"}


def test_org_attribution_groups_pools_sharing_payment(tmp_path):
    """Two pools of one operator (distinct proxies, one shared card) get one org_key."""
    st = Store(tmp_path / "s", create=True)
    w = build_tiny_world(st, seed=5, hydra_accounts=12, slow_accounts=24)
    res = run_scan(st, ScanConfig(), signals="never")
    slow = [a for a, (c, _) in w.labels.items() if c == "camp-slow"]
    camps = {res.campaign_members[a] for a in slow if a in res.campaign_members}
    keys = {c["org_key"] for c in res.campaigns if c["campaign_id"] in camps}
    assert len(keys) == 1 and None not in keys


def test_ban_evasion_links_replacement_account(tmp_path):
    """A standby account that starts after a ban with the banned account's client fingerprint and
    private template is linked to it and flagged; an unrelated newcomer is not."""
    from distillguard.events.record import accounts_to_table, exchanges_to_table
    from distillguard.testing.factory import BASE_TS, make_account, make_exchange

    st = Store(tmp_path / "s", create=True)
    build_tiny_world(st, seed=2)
    ban_at = BASE_TS + timedelta(days=1, hours=12)
    ex, sig = [], []
    for name, start, end in (("old", 0, 36), ("new", 40, 90), ("other", 40, 90)):
        for h in range(start, end):
            e = make_exchange(account_id=name, ts=BASE_TS + timedelta(hours=h), prompt=f"{name} {h}",
                              tls_ja4="t13d_rare_tooling" if name != "other" else "t13d1516h2_8daaf6152771_000000000001",
                              header_order_fp="hfp-tooling" if name != "other" else "hfp1",
                              user_agent="OpenAI/Python 1.40.0", client_ip=f"100.{h}.{len(name)}.9")
            ex.append(e)
            sig.append({"exchange_id": e.exchange_id, "account_id": name, "ts": e.ts,
                        "template_key": "tmpl-private" if name != "other" else None})
    st.write_exchanges(exchanges_to_table(ex), key="ban")
    st.write_accounts(accounts_to_table([
        make_account("old", status="banned", status_changed_at=ban_at, created_at=BASE_TS - timedelta(days=5)),
        make_account("new", created_at=ban_at + timedelta(hours=2)),
        make_account("other", created_at=ban_at + timedelta(hours=2))]), key="9-ban")
    old_sig = st.read_table("exchange_signals").to_pylist()
    schema = st.read_table("exchange_signals").schema
    st.write_table("exchange_signals", pa.Table.from_pylist(old_sig + sig, schema=schema))
    res = run_scan(st, ScanConfig(), signals="never")
    links = {(n, b) for n, b, _ in res.ban_links}
    assert ("new", "old") in links and not any(n == "other" for n, _ in links)
    risk = {r["account_id"]: r for r in res.account_risk.to_pylist()}
    assert risk["new"]["flagged"] and "banned account old" in risk["new"]["reasons"][0]
    assert not risk["other"]["flagged"]


def test_rescan_keeps_analyst_and_intel_enforcement_rows(tmp_path):
    """Scan rewrites only its own decisions; a person's block or allow-list entry survives a re-scan."""
    from datetime import UTC, datetime

    st = Store(tmp_path / "store", create=True)
    build_tiny_world(st, seed=3)
    cfg = ScanConfig()
    res = run_scan(st, cfg, signals="never")
    write_tables(st, res, cfg)
    n_scan = st.read_table("enforcement").num_rows
    assert n_scan > 0
    now = datetime.now(UTC)
    st.append_table("enforcement", pa.table({
        "subject_type": ["account", "account"], "subject_id": ["analyst-pick", "partner-pick"],
        "action": ["block", "protect_reasoning"], "reason": ["seen by hand", "partner indicator"],
        "source": ["analyst", "intel"], "created_at": pa.array([now, now], pa.timestamp("ms", tz="UTC")),
        "expires_at": pa.array([None, None], pa.timestamp("ms", tz="UTC")),
        "campaign_id": pa.array([None, None], pa.string()), "actor": ["alice", "intel"]}))
    write_tables(st, res, cfg)
    rows = st.read_table("enforcement").to_pylist()
    assert {r["subject_id"] for r in rows if r["source"] != "scan"} == {"analyst-pick", "partner-pick"}
    assert sum(1 for r in rows if r["source"] == "scan") == n_scan  # replaced, not duplicated


def _by_id(clusters):
    return {cs.cluster_id: cs for cs in clusters}


def _where(chosen):
    """flagged account → the cluster of ``chosen`` holding it (as ``build_campaigns`` passes it)."""
    return {a: c for c, accts in chosen.items() for a in accts}


def _own_ties(con, chosen, pairs, cfg):
    """``own_ties`` over the clusters' holders, read as ``build_campaigns`` reads them."""
    from distillguard.campaigns.attribution import cluster_holders
    from distillguard.campaigns.build import HOLDER_KINDS
    from distillguard.campaigns.owned import own_ties

    return own_ties(con, cluster_holders(con, chosen, HOLDER_KINDS), chosen, pairs, cfg)


def _inc_con(rows):
    import duckdb

    con = duckdb.connect()
    df: dict = {}
    for _, k, e in rows:
        df[(k, e)] = df.get((k, e), 0) + 1
    con.register("_i", pa.table({"account_id": [r[0] for r in rows], "kind": [r[1] for r in rows],
                                 "entity": [r[2] for r in rows], "w": [0.5] * len(rows),
                                 "df": [df[(r[1], r[2])] for r in rows]}))
    con.execute("CREATE TABLE inc AS SELECT * FROM _i")
    return con


def test_one_operation_split_by_community_detection_is_one_record():
    """A campaign's own accounts and the proxy pool it drives send the same private templates (one workload):
    one record. Another operation sending a *public* template (also sent by 40 ordinary users) stays its own
    record."""
    from distillguard.campaigns.build import merge_clusters
    from distillguard.scan.config import CampaignConfig

    own = [f"own{i}" for i in range(10)]
    pool = [f"pool{i}" for i in range(40)]
    other = [f"oth{i}" for i in range(8)]
    users = [f"user{i}" for i in range(40)]
    rows = [(a, "system_prompt", "sp-private") for a in own + pool]
    rows += [(a, "template", "tpl-public") for a in own + other + users]
    rows += [(a, "payment", f"card{i % 3}") for i, a in enumerate(other)]
    rep = merge_clusters(_inc_con(rows), {"c-own": own, "c-pool": pool, "c-other": other}, CampaignConfig())
    assert rep["c-own"] == rep["c-pool"]
    assert rep["c-other"] not in (rep["c-own"], rep["c-pool"])


def _kit_rows():
    """Two operations with one attack kit (its agent system prompt and two templates nobody else sends), each
    with templates of its own beside it (vision for one, orchestration for the other), its own cards and
    sign-up bursts, both busy on the kit template in windows that overlap by chance (a shared MinHash band
    of their busy buckets on it); ten ordinary users send the kit's system prompt too."""
    agentic = [f"ag{i}" for i in range(30)]
    coding = [f"co{i}" for i in range(90)]
    users = [f"user{i}" for i in range(10)]
    rows = [(a, "system_prompt", "sp-agent-kit") for a in agentic + coding + users]
    rows += [(a, "template", f"tpl-kit-{j}") for a in agentic + coding for j in range(2)]
    rows += [(a, "template", "tpl-vision") for a in agentic]
    rows += [(a, "template", "tpl-orchestration") for a in coding]
    rows += [(a, "sync", "tpl-kit-0~3~h17") for a in agentic + coding]
    rows += [(a, "payment", f"ag-card{i % 4}") for i, a in enumerate(agentic)]
    rows += [(a, "payment", f"co-card{i % 9}") for i, a in enumerate(coding)]
    rows += [(a, "creation_burst", f"ag-burst{i % 3}") for i, a in enumerate(agentic)]
    rows += [(a, "creation_burst", f"co-burst{i % 5}") for i, a in enumerate(coding)]
    rows += [(a, "ip24", f"isp{i % 7}") for i, a in enumerate(users)]
    # the store's other templates and schedules: what a random group holding as many would hold
    rows += [(f"bg{i}", k, f"tpl-bg{i % 60}" + ("~0~h" if k == "sync" else "")) for i in range(300)
             for k in ("template", "sync")]
    return rows, {"c-agentic": agentic, "c-coding": coding}


def test_two_operations_with_one_attack_kit_are_two_records():
    """Private content is one evidence group. Two operations sending the same kit — private, since nobody else
    sends its templates (at full scale the attackers are most of a kit's holders, so it passes any test of
    privacy) — each with its own templates beside it, cards and bursts are two records: the kit alone does not
    merge them (they do not send one workload)."""
    from distillguard.campaigns.build import merge_clusters
    from distillguard.scan.config import CampaignConfig

    rows, groups = _kit_rows()
    rows = [r for r in rows if r[1] != "sync"]   # (schedules: the chance test's own case, below)
    rep = merge_clusters(_inc_con(rows), groups, CampaignConfig(), operations=True)
    assert rep["c-agentic"] != rep["c-coding"]
    # the same two clusters sending one workload (no templates of their own) are one operation's pieces
    one = [r for r in rows if r[2] not in ("tpl-vision", "tpl-orchestration")]
    rep = merge_clusters(_inc_con(one), groups, CampaignConfig(), operations=True)
    assert rep["c-agentic"] == rep["c-coding"]
    # ... unless the workload bar is above what they share
    two = one + [(a, "template", "tpl-vision") for a in groups["c-agentic"]]
    assert merge_clusters(_inc_con(two), groups, CampaignConfig(merge_same_workload=0.9))["c-agentic"] != \
        merge_clusters(_inc_con(two), groups, CampaignConfig(merge_same_workload=0.9))["c-coding"]
    assert merge_clusters(_inc_con(two), groups, CampaignConfig(merge_same_workload=0.7))["c-agentic"] == \
        merge_clusters(_inc_con(two), groups, CampaignConfig(merge_same_workload=0.7))["c-coding"]


def test_a_piece_does_not_chain_two_operations_into_one_record():
    """A one-account piece of one campaign (its card, its template, its schedule) that also sits on a /24 and a
    schedule of another campaign's proxy pool joins its own campaign, not both: the two campaigns stay two
    records. A piece whose links all lead into one record joins it."""
    from distillguard.campaigns.build import merge_clusters
    from distillguard.scan.config import CampaignConfig

    agentic = [f"ag{i}" for i in range(7)]
    proxy = [f"px{i}" for i in range(100)]
    rows = [("b0", "ip24", "net-p0"), ("px0", "ip24", "net-p0"), ("px1", "ip24", "net-p0")]
    rows += [(a, "sync", "sched-p~0~h1") for a in ("b0", "px2", "px3")]
    rows += [(a, "payment", "card-a") for a in ["b0"] + agentic[:6]]
    rows += [(a, "sync", "sched-a~0~h2") for a in ["b0"] + agentic[:2]]
    rows += [(a, "template", "tpl-ag") for a in ["b0"] + agentic]
    groups = {"c-agentic": agentic, "c-proxy": proxy, "c-bridge": ["b0"]}
    rep = merge_clusters(_inc_con(rows), groups, CampaignConfig())
    assert rep["c-bridge"] == rep["c-agentic"] != rep["c-proxy"]
    # the proxy pool and the campaign linked on their own (a card both use, a burst): the piece joins the record
    rows += [(a, "payment", "card-x") for a in agentic + proxy[:60]]
    rows += [(a, "creation_burst", "burst-x") for a in agentic + proxy[:60]]
    rep = merge_clusters(_inc_con(rows), groups, CampaignConfig())
    assert rep["c-bridge"] == rep["c-agentic"] == rep["c-proxy"]


def test_synchrony_on_a_shared_kit_template_is_not_hidden_infrastructure():
    """The chance test (operation_links) does not count synchrony as timing evidence: a sync entity is a schedule
    on a template, so two records synchronised on one template both send it, even when one of them sends it too
    rarely to hold it as a template entity (the route that joined camp-agentic to camp-coding in cohorts_mixed).
    The shared kit and its schedules alone must not merge two operations; a card the two share does."""
    from distillguard.campaigns.operations import operation_links
    from distillguard.scan.config import CampaignConfig

    rows, groups = _kit_rows()
    assert operation_links(_inc_con(rows), groups, CampaignConfig()) == []
    # schedules on templates only one side holds as template entities (the other sends them below its cut)
    more = rows + [(a, "sync", f"tpl-own{j}~1~h3") for a in groups["c-agentic"] + groups["c-coding"] for j in range(3)]
    more += [(a, "template", f"tpl-own{j}") for a in groups["c-agentic"] for j in range(3)]
    assert operation_links(_inc_con(more), groups, CampaignConfig()) == []
    # hidden infrastructure beside the kit is an operation: cards both sides reuse (the store's other
    # accounts pay with cards of their own, two to a card)
    cards = more + [(a, "payment", f"shared-card{i % 3}") for i, a in enumerate(groups["c-agentic"] + groups["c-coding"])]
    cards += [(f"bg{i}", "payment", f"bg-card{i // 2}") for i in range(300)]
    links = operation_links(_inc_con(cards), groups, CampaignConfig())
    assert [set(lk.groups) for lk in links] == [{"content", "payment"}]


def test_pieces_of_one_workload_are_one_record_however_many_send_it():
    """An operation cut into many flagged pieces: its templates are sent by all of them, so no entity is any
    pair's own (merge_clusters' exclusive links find nothing) and beside the big piece the chance test has no
    power. Each small piece sends the big piece's own private templates and the big one sends all of the
    piece's: one workload, one record. Another operation with the same kit and a template of its own that the
    big piece never sends stays apart, and without the operations stage (operations=False) nothing joins."""
    from distillguard.campaigns.build import merge_clusters
    from distillguard.scan.config import CampaignConfig

    big = [f"big{i}" for i in range(60)]
    pieces = {f"c-p{j}": [f"p{j}-{i}" for i in range(2)] for j in range(5)}
    kit = [f"kit{i}" for i in range(12)]
    other = [f"oth{i}" for i in range(8)]
    users = [f"user{i}" for i in range(200)]
    rows = [(a, "template", f"tpl-{t}") for a in big for t in range(4)]
    rows += [(a, "template", f"tpl-{t}") for ms in pieces.values() for a in ms for t in range(4)]
    rows += [(a, "template", f"tpl-{t}") for a in kit for t in range(4)]   # three more flagged pieces elsewhere
    rows += [(a, "template", f"tpl-{t}") for a in other for t in range(2)]
    rows += [(a, "template", "tpl-own") for a in other]
    rows += [(a, "template", f"tpl-user{i % 40}") for i, a in enumerate(users)]
    # the big piece also sends the public templates everyone sends: a random group holding as many
    # templates as it does holds nearly all of the store's, so the chance test cannot tell
    rows += [(a, "template", f"tpl-user{i % 40}") for i, a in enumerate(big)]
    rows += [(a, "ip24", f"isp{i % 30}") for i, a in enumerate(big + other + users)]
    groups = {"c-big": big, **pieces, "c-kit": kit, "c-other": other}
    rep = merge_clusters(_inc_con(rows), groups, CampaignConfig(), operations=True)
    assert {rep[c] for c in pieces} == {rep["c-big"]} == {rep["c-kit"]}
    assert rep["c-other"] != rep["c-big"]
    off = merge_clusters(_inc_con(rows), groups, CampaignConfig())
    assert len({off[c] for c in pieces}) == len(pieces)


def test_campaign_titles_counts_and_evidence_agree(scanned):
    """Every record has its own title naming a capability; the title's count is the campaign's members; every
    evidence count of accounts is of the campaign's accounts and matches the console's evidence board."""
    import re

    from distillguard.console import evidence

    w, res = scanned
    titles = [c["title"] for c in res.campaigns]
    assert len(set(titles)) == len(titles)
    con = w.store.connect()
    for c in res.campaigns:
        n = sum(1 for cid in res.campaign_members.values() if cid == c["campaign_id"])
        assert c["n_accounts"] == n and c["title"].endswith(f"— {n} accounts")
        for line in c["evidence"]:
            for a, b in re.findall(r"(\d+) of the campaign's (\d+) accounts", line):
                assert int(a) <= int(b) == n, line
            assert not re.search(r"^\d+ accounts share", line), line
        board = {k["kind"]: k for k in evidence.campaign_evidence(con, c["campaign_id"])["kinds"]}
        infra = orjson.loads(c["infrastructure"])["shared"]
        assert {k: (v["n"], v["n_accounts"]) for k, v in infra.items()} == \
            {k: (v["n_entities"], v["n_accounts"]) for k, v in board.items()}
        head = next((e for e in c["evidence"] if e.startswith("Of the campaign's")), "")
        for m in re.finditer(r"(all (\d+)|(\d+)) share (one|\d+) ([a-zA-Z /()-]+?)(?=,| and |$)", head):
            k = next(k for k, v in board.items() if evidence.kind_words(k, int(v["n_entities"])) == m.group(5))
            assert int(m.group(2) or m.group(3)) == board[k]["n_accounts"], (m.group(0), board[k])


def test_rescan_does_not_undo_an_analysts_unblock(tmp_path):
    """An analyst who unblocks one account of a campaign still awaiting review is not overruled by the next scan,
    even though the scan's rows are newer; an expired ruling gives the subject back to the scan."""
    from datetime import UTC, datetime, timedelta

    st = Store(tmp_path / "store", create=True)
    build_tiny_world(st, seed=3)
    cfg = ScanConfig()
    res = run_scan(st, cfg, signals="never")
    write_tables(st, res, cfg)
    scanned = [r for r in st.read_table("enforcement").to_pylist()
               if r["source"] == "scan" and r["subject_type"] == "account"]
    assert len(scanned) >= 2
    freed, lapsed = scanned[0]["subject_id"], scanned[1]["subject_id"]
    now = datetime.now(UTC)
    st.append_table("enforcement", pa.table({
        "subject_type": ["account", "account"], "subject_id": [freed, lapsed], "action": ["allow", "allow"],
        "reason": ["unblock by ana: customer verified", "dismiss by ana: expired"], "source": ["analyst", "analyst"],
        "created_at": pa.array([now, now - timedelta(days=40)], pa.timestamp("ms", tz="UTC")),
        "expires_at": pa.array([None, now - timedelta(days=10)], pa.timestamp("ms", tz="UTC")),
        "campaign_id": pa.array([None, None], pa.string()), "actor": ["ana", "ana"]}))
    write_tables(st, res, cfg)
    rows = st.read_table("enforcement").to_pylist()
    assert not [r for r in rows if r["subject_id"] == freed and r["source"] == "scan"]
    assert [r for r in rows if r["subject_id"] == freed and r["source"] == "analyst"][0]["action"] == "allow"
    assert [r for r in rows if r["subject_id"] == lapsed and r["source"] == "scan"]
def _quiet_store():
    """Two pieces of one quiet pool (no entity is theirs alone by more than a few accounts on each
    side: three sign-up bursts, a custom client string, one reused card), an unrelated operation sending the same public
    template, and 400 ordinary users sharing a popular tool's system prompt and home /24s with everyone."""
    p1 = [f"p1-{i}" for i in range(8)]
    p2 = [f"p2-{i}" for i in range(8)]
    other = [f"oth{i}" for i in range(8)]
    users = [f"user{i}" for i in range(400)]
    rows = [(a, "template", "tpl-public") for a in p1 + p2 + other + users[:60]]
    rows += [(a, "system_prompt", "sp-tool") for a in p1 + p2 + other + users[:300]]
    rows += [(a, "ip24", f"isp{i % 20}") for i, a in enumerate(p1 + p2 + other + users)]
    # the pool's bursts and client string cross the two pieces; three accounts reuse one card
    rows += [(a, "creation_burst", f"burst{i % 3}") for i, a in enumerate(p1[:6] + p2[:6])]
    rows += [(a, "user_agent", "pool-client/1.0") for a in p1[:6] + p2[:6]]
    rows += [(a, "payment", "card-x") for a in (p1[6], p2[6], p2[7])]
    rows += [(a, "payment", f"card-o{i % 2}") for i, a in enumerate(other)]
    # ordinary life: users sign up in small bursts of their own, families share a card, the tool has a client
    rows += [(a, "creation_burst", f"ub{i // 4}") for i, a in enumerate(users[:200])]
    rows += [(a, "payment", f"fam{i // 2}") for i, a in enumerate(users[:100])]
    rows += [(a, "user_agent", "tool-sdk/2") for a in p1[6:] + p2[6:] + other + users[:300]]
    rows += [(a, "user_agent", f"sdk/{i % 150}") for i, a in enumerate(users)]
    return _inc_con(rows), {"c-p1": p1, "c-p2": p2, "c-other": other}, 424


def test_quiet_pool_pieces_merge_on_infrastructure_beyond_chance():
    """The pieces of one quiet pool share bursts, a card and a client string far beyond chance: one record.
    The operation that only sends the same public template and tool prompt stays apart; with the chance
    test off (operation_alpha 0) the pieces stay apart too (nothing is owned by the pair)."""
    from distillguard.campaigns.build import merge_clusters
    from distillguard.campaigns.operations import operation_links
    from distillguard.scan.config import CampaignConfig

    con, groups, n = _quiet_store()
    why: dict = {}
    rep = merge_clusters(con, groups, CampaignConfig(), operations=True, why=why)
    assert rep["c-p1"] == rep["c-p2"]
    assert rep["c-other"] not in (rep["c-p1"], rep["c-p2"])
    links = operation_links(con, groups, CampaignConfig())
    assert {(lk.a, lk.b) for lk in links} == {("c-p1", "c-p2")}
    assert {"client", "creation"} <= set(links[0].groups)
    assert "content" not in links[0].groups and "network" not in links[0].groups  # the tool's prompt and ISPs
    off = merge_clusters(con, groups, CampaignConfig(operation_alpha=0), operations=True)
    assert off["c-p1"] != off["c-p2"]


def test_shared_content_and_home_networks_do_not_merge_strangers():
    """Two benign cohorts of one popular tool (its prompt, its users' home ISPs, common e-mail shapes) are
    not one operation, however many of their accounts hold those entities."""
    from distillguard.campaigns.operations import operation_links
    from distillguard.scan.config import CampaignConfig

    a = [f"a{i}" for i in range(20)]
    b = [f"b{i}" for i in range(20)]
    users = [f"user{i}" for i in range(600)]
    rows = [(x, "system_prompt", "sp-tool") for x in a + b + users[:400]]
    rows += [(x, "ip24", f"isp{i % 15}") for i, x in enumerate(a + b + users)]
    rows += [(x, "email_pattern", "a.a@gmail.com") for x in a + b + users[:200]]
    rows += [(x, "user_agent", "tool-sdk/2") for x in a + b + users[:400]]
    assert operation_links(_inc_con(rows), {"c-a": a, "c-b": b}, CampaignConfig()) == []


def _cs(cid, members, risk=0.8):
    from distillguard.scoring.risk import ClusterScore

    return ClusterScore(cid, sorted(members), risk, 0.9, 0.6, {}, {})


def test_a_communitys_lone_flag_left_by_its_harvesting_subcluster_joins_that_record():
    """A community scored with its harvesters flags one more member; the harvesters keep their sub-cluster's
    higher risk, so that member is its community's only flagged account. It was flagged with them: it joins
    their record (it would otherwise be dropped as a lone flag), although it sends kit templates beside
    templates of its own, which alone merge no two records. Two flagged accounts left in the community are a
    record of their own; a community of another level holding the same accounts is not a parent; the key
    turns it off."""
    from distillguard.campaigns.build import merge_clusters, parent_remainders
    from distillguard.scan.config import CampaignConfig

    harv = ["h1", "h2", "h3"]
    rows = [(a, "template", f"tpl-kit-{j}") for a in harv + ["x"] for j in range(2)]
    rows += [(a, "template", "tpl-coding") for a in harv] + [("x", "template", "tpl-agent")]
    rows += [(f"bg{i}", "template", f"tpl-bg{i % 30}") for i in range(120)]
    clusters = [_cs("cl0-0007", harv + ["x", "u1"]), _cs("cl0h-0007", harv, 0.85), _cs("cl1-0002", harv + ["x"])]
    chosen = {"cl0h-0007": harv, "cl0-0007": ["x"]}
    assert parent_remainders(_by_id(clusters), chosen, _where(chosen)) == {"cl0-0007": "cl0h-0007"}
    rep = merge_clusters(_inc_con(rows), chosen, CampaignConfig())
    assert rep["cl0-0007"] != rep["cl0h-0007"]   # the kit alone merges nothing
    rep = merge_clusters(_inc_con(rows), chosen, CampaignConfig(), remainders=parent_remainders(_by_id(clusters), chosen,
                                                                                           _where(chosen)))
    assert rep["cl0-0007"] == rep["cl0h-0007"]
    # two flagged accounts left: a record of their own, left to the merge rules
    two = {"cl0h-0007": harv, "cl0-0007": ["x", "u1"]}
    assert parent_remainders(_by_id(clusters), two, _where(two)) == {}
    # a community of another level is no parent; a sub-cluster not inside the community is none either
    other = {"cl0h-0007": harv, "cl1-0002": ["x"]}
    assert parent_remainders(_by_id(clusters), other, _where(other)) == {}
    assert parent_remainders(_by_id([_cs("cl0-0007", ["x", "u1"]), _cs("cl0h-0007", harv)]), chosen,
                             _where(chosen)) == {}
    assert not CampaignConfig(join_parent_remainder=False).join_parent_remainder


def test_a_remainder_joins_the_subclusters_record_only_when_tied_to_it():
    """The remainder was flagged *with* the harvesters only if it is linked to them. A member flagged on its own
    traffic, tied to its big community by a free-mail domain and to none of the sub-cluster's accounts, joins no
    record (so its lone flag is dropped); one with an edge to a harvester joins as before. Two or more left in a
    community join its sub-cluster's record only when every one of them is linked to it."""
    import duckdb
    import pyarrow as pa

    from distillguard.campaigns import describe
    from distillguard.campaigns.build import subcluster_parents, tied_remainders

    con = duckdb.connect()
    con.register("_e", pa.table({"src_account": ["h2", "h1", "y", "h1", "u1"], "dst_account": ["x", "h3", "u9", "u1", "u2"],
                                 "kind": ["card", "card", "email_domain", "card", "card"],
                                 "entity": ["c1", "c1", "gmail.com", "c1", "c2"], "weight": [1.0] * 5}))
    src = describe.Edges("_e", "src_account", "dst_account")
    harv = ["h1", "h2", "h3"]
    chosen = {"cl0h-0007": harv, "cl0-0007": ["x"], "cl0h-0009": ["k1", "k2"], "cl0-0009": ["y"],
              "cl1h-0003": harv, "cl1-0003": ["u1", "u2"], "cl1-0004": ["u1", "x"]}
    # x shares a card with h2 (either direction counts); y's only edge goes to an account outside the sub-cluster
    assert tied_remainders(con, src, {"cl0-0007": "cl0h-0007", "cl0-0009": "cl0h-0009"}, chosen) == \
        {"cl0-0007": "cl0h-0007"}
    # u1 is linked to h1 but u2 only to u1: not every one of them is tied to the harvesters
    assert tied_remainders(con, src, {"cl1-0003": "cl1h-0003"}, chosen) == {}
    assert tied_remainders(con, src, {"cl1-0004": "cl1h-0003"}, chosen) == {"cl1-0004": "cl1h-0003"}
    assert not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '_rem_%'").fetchone()[0]
    clusters = [_cs("cl1-0003", harv + ["u1", "u2", "z"]), _cs("cl1h-0003", harv, 0.85), _cs("cl0-0007", harv + ["x"])]
    assert subcluster_parents(_by_id(clusters), chosen, {}) == {"cl1-0003": "cl1h-0003"}
    assert subcluster_parents(_by_id(clusters), chosen, {"cl1-0003": "elsewhere"}) == {}


def test_a_clusters_tied_remnant_joins_where_most_of_its_flagged_members_went():
    """A harvesting sub-cluster whose flagged members mostly took the operation's row keeps two flagged accounts:
    linked to the members that went, they join the operation; one of them unlinked, they stay a record (a flag
    resting on this cluster alone). An operation's own cluster is never a remnant."""
    import duckdb
    import pyarrow as pa

    from distillguard.campaigns import describe
    from distillguard.campaigns.build import tied_remnants

    con = duckdb.connect()
    con.register("_e", pa.table({"src_account": ["r1", "p2", "r2"], "dst_account": ["p1", "r2", "zz"],
                                 "kind": ["card"] * 3, "entity": ["c1", "c1", "c9"], "weight": [1.0] * 3}))
    src = describe.Edges("_e", "src_account", "dst_account")
    ops = [f"p{i}" for i in range(1, 6)]
    clusters = [_cs("cl1h-0024", ops[:3] + ["r1", "r2", "q"]), _cs("clop-0000", ops + ["r1"]),
                _cs("cl1h-0030", ["p4", "p5", "s1", "s2"])]
    chosen = {"clop-0000": ops, "cl1h-0024": ["r1", "r2"], "cl1h-0030": ["s1", "s2"]}
    # r1 -> p1 and p2 -> r2: both linked to members that went to the operation; cl1h-0030's two moved, two left:
    # not a majority
    by_id, where = _by_id(clusters), _where(chosen)
    assert tied_remnants(con, src, by_id, chosen, where, {}) == {"cl1h-0024": "clop-0000"}
    assert tied_remnants(con, src, by_id, chosen, where, {"cl1h-0024": "x"}) == {}
    con.register("_e2", pa.table({"src_account": ["r1"], "dst_account": ["p1"]}))
    assert tied_remnants(con, describe.Edges("_e2", "src_account", "dst_account"), by_id, chosen, where, {}) == {}


def _two_operations_one_community():
    """dev standard-105/100 in miniature. Community ``cl0-0004`` holds a low-and-slow operation (30 accounts, its
    rows there) and a quiet hydra (6 accounts, flagged in its own sub-cluster ``cl0h-0004``); the workload group
    ``clw-0000`` drew 20 of the low-and-slow operation's accounts and the hydra's 6, and 8 low-and-slow accounts
    peaked there. Both operations send one kit's system prompt (nobody else does), each beside templates of its own
    (the 8 send one of the low-and-slow operation's three), from the same ISPs; the low-and-slow operation signs
    up on its own three cards and runs its own client build; the hydra has cards of its own and the store's stock
    SDK build, which 200 ordinary users run too."""
    slow = [f"ls{i}" for i in range(30)]
    peaked = [f"lw{i}" for i in range(8)]
    hydra = [f"qh{i}" for i in range(6)]
    users = [f"user{i}" for i in range(200)]
    rows = [(a, "system_prompt", "sp-kit") for a in slow + peaked + hydra]
    rows += [(a, "template", f"tpl-ls{j}") for a in slow for j in range(3)] + [(a, "template", "tpl-ls0") for a in peaked]
    rows += [(a, "template", "tpl-qh") for a in hydra]
    rows += [(a, "asn", f"isp{i % 3}") for i, a in enumerate(slow + peaked + hydra + users)]
    rows += [(a, "email_domain", "gmail.com") for a in slow + peaked + hydra + users]
    rows += [(a, "payment", f"ls-card{i % 3}") for i, a in enumerate(slow + peaked[:3])]
    rows += [(a, "header_fp", "ls-build") for a in slow[:10] + peaked[3:5]]
    rows += [(a, "payment", f"qh-card{i % 2}") for i, a in enumerate(hydra)]
    rows += [(a, "user_agent", "stock-sdk/1.0") for a in slow[:5] + hydra + users]
    clusters = [_cs("cl0-0004", slow + hydra + peaked + users[:20]), _cs("cl0h-0004", hydra, 0.85),
                _cs("clw-0000", slow[:20] + peaked + hydra, 0.76)]
    chosen = {"cl0-0004": slow, "clw-0000": peaked, "cl0h-0004": hydra}
    return rows, clusters, chosen


def test_a_workload_groups_record_joins_its_communitys_when_it_holds_the_operations_own_infrastructure():
    """The workload group's 8 are the low-and-slow operation's: 5 of them hold its cards or its client build, which
    nobody outside the two records holds. One record. The quiet hydra's 6 share the community, the workload group,
    the kit's system prompt, ISPs and a free-mail domain with both, and a client build the store's ordinary users
    run: none of that is an operator's own, and it stays a record of its own. Below the cover, with fewer holders,
    a card held outside the two, or the key off: two records."""
    from distillguard.campaigns.build import merge_clusters
    from distillguard.campaigns.owned import overlapping_pairs
    from distillguard.scan.config import CampaignConfig

    rows, clusters, chosen = _two_operations_one_community()
    pairs = overlapping_pairs(clusters, chosen, _where(chosen))
    assert pairs == [("cl0-0004", "cl0h-0004"), ("cl0-0004", "clw-0000"), ("cl0h-0004", "clw-0000")]
    cfg = CampaignConfig()
    ties = _own_ties(_inc_con(rows), chosen, pairs, cfg)
    assert [(t.piece, t.record, t.holders, t.groups) for t in ties] == [("clw-0000", "cl0-0004", 5, ("client", "payment"))]
    why: dict = {}
    rep = merge_clusters(_inc_con(rows), chosen, cfg, operations=True, why=why, owned=ties)
    assert rep["clw-0000"] == rep["cl0-0004"]
    assert rep["cl0h-0004"] not in (rep["cl0-0004"], rep["clw-0000"])
    assert why["clw-0000"] >= {"owned:client", "owned:payment"}
    # without the rule the same inputs are two records for the low-and-slow operation
    rep = merge_clusters(_inc_con(rows), chosen, cfg, operations=True)
    assert rep["clw-0000"] != rep["cl0-0004"]
    # 5 of 8 holders: not at a cover of 0.7
    assert _own_ties(_inc_con(rows), chosen, pairs, CampaignConfig(own_tie_min_cover=0.7)) == []
    # the cards and the build each held by 3 or more of the community's flagged accounts: not when 20 are needed
    assert _own_ties(_inc_con(rows), chosen, pairs, CampaignConfig(own_tie_min_holders=20)) == []
    # the operation's cards and build also held by 100 ordinary users: no longer its own
    common = rows + [(f"user{i}", "payment", f"ls-card{i % 3}") for i in range(100)] + \
        [(f"user{i}", "header_fp", "ls-build") for i in range(100)]
    assert _own_ties(_inc_con(common), chosen, pairs, cfg) == []
    # no shared accounts, no pair: a record the workload group never drew from is not asked
    assert overlapping_pairs([_cs("cl0-0004", rows[0][:1])], {"cl0-0004": ["ls0"], "clw-0000": ["lw0"]},
                             {"ls0": "cl0-0004", "lw0": "clw-0000"}) == []
    assert not CampaignConfig(join_own_ties=False).join_own_ties
    # a lone flagged account signed up in the operation's burst (4 of whose 5 holders are its accounts): not by
    # default (a burst alone is whoever signed up then: two groups are asked of a lone one), yes when one will do
    slow = chosen["cl0-0004"]
    lone = rows + [(a, "creation_burst", "ls-burst") for a in slow[:4] + ["x"]]
    chosen1 = chosen | {"cl1-0009": ["x"]}
    clusters1 = clusters + [_cs("cl1-0009", ["x"] + slow[:3])]
    pairs1 = overlapping_pairs(clusters1, chosen1, _where(chosen1))
    assert ("cl0-0004", "cl1-0009") in pairs1
    assert ("cl1-0009", "cl0-0004", 1, ("creation",)) in \
        [(t.piece, t.record, t.holders, t.groups) for t in _own_ties(_inc_con(lone), chosen1, pairs1,
                                                                     CampaignConfig(own_tie_lone_groups=1))]
    assert all(t.piece != "cl1-0009" for t in _own_ties(_inc_con(lone), chosen1, pairs1, CampaignConfig()))


def test_a_schedule_on_shared_private_content_is_not_a_second_evidence_group():
    """dev standard-100: one quiet-hydra account (its cluster's only flagged one) shared the attack kit's system prompt
    with a low-and-slow operation's workload group and was busy in the same buckets on it, and sent one workload with
    its own hydra's record. A sync entity is busy buckets *on a template*: two operations running one kit on its
    schedule share both, so content and schedule rank as one group, below one workload, and the account joins the
    hydra's record. Alone the same link still places a piece (cohorts_mixed 0.01: an agentic pool's one-account
    piece shares nothing else with its record); a card beside the kit is a second group; the key off ranks the
    schedule as a group of its own again."""
    from distillguard.campaigns.build import merge_clusters
    from distillguard.scan.config import CampaignConfig

    slow = [f"ls{i}" for i in range(12)]
    hydra = [f"qh{i}" for i in range(6)]
    rows = [(a, "system_prompt", "kit-agent") for a in slow + hydra[:2] + ["h0"]]   # one kit, sent by both operations
    rows += [(a, "sync", "kit-agent|buckets-7") for a in slow + ["h0"]]
    rows += [(a, "template", f"tpl-ls{j}") for a in slow for j in range(3)]     # the low-and-slow's own templates
    rows += [(a, "template", f"tpl-qh{j}") for a in hydra + ["h0"] for j in range(2)]   # the hydra's workload
    rows += [(f"bg{i}", "system_prompt", f"sp-bg{i % 20}") for i in range(80)]
    groups = {"clw-0000": slow, "cl0-0005": hydra, "cl1-0004": ["h0"]}
    cfg = CampaignConfig()
    rep = merge_clusters(_inc_con(rows), groups, cfg, operations=True)
    assert rep["cl1-0004"] == rep["cl0-0005"] != rep["clw-0000"]
    rep = merge_clusters(_inc_con(rows), groups, CampaignConfig(schedule_is_content=False), operations=True)
    assert rep["cl1-0004"] == rep["clw-0000"] != rep["cl0-0005"]
    # no other candidate: the kit and its schedule still place the piece
    alone = {"clw-0000": slow, "cl1-0004": ["h0"]}
    rep = merge_clusters(_inc_con(rows), alone, cfg, operations=True)
    assert rep["cl1-0004"] == rep["clw-0000"]
    # the low-and-slow's own card beside the kit: two independent groups, stronger than the hydra's workload
    card = rows + [(a, "payment", "card-ls") for a in slow[:8] + ["h0"]]
    rep = merge_clusters(_inc_con(card), groups, cfg, operations=True)
    assert rep["cl1-0004"] == rep["clw-0000"] != rep["cl0-0005"]


def _hydra_rows(piece_own: bool = False, big_share: int = 9):
    """A hydra's 22 accounts seen twice: 17 in a community's record, 5 in a sub-cluster's. All send its three
    private system prompts; ``big_share`` of the 17 also send a template none of the 5 happens to send. With
    ``piece_own`` the 5 send a template of their own (another operation with the same kit)."""
    big = [f"h{i}" for i in range(17)]
    piece = [f"p{i}" for i in range(5)]
    rows = [(a, "system_prompt", f"sp-hydra-{j}") for a in big + piece for j in range(3)]
    rows += [(a, "template", "tpl-half") for a in big[:big_share]]
    if piece_own:
        rows += [(a, "template", "tpl-piece-own") for a in piece]
    rows += [(f"bg{i}", "template", f"tpl-bg{i % 60}") for i in range(300)]
    return rows, {"c-big": big, "c-piece": piece}


def test_two_views_of_one_hydra_send_one_workload_but_for_what_a_small_piece_misses_by_chance():
    """Two flagged clusters drawn from the same accounts (a community's 17 hydra accounts, a sub-cluster's 5) send
    the same private system prompts; a template 9 of the 17 send is sent by none of the 5 — a group of 5 misses
    it with chance (8/17)^5 = 0.023. They are one record (``workload_piece_alpha``). The strict test (each sends
    ``merge_same_workload`` of the other's own content: 3 of 4) and pairs that share no accounts keep them two;
    so do a template the 16 of the 17 send (chance (1/17)^5) and a template the 5 send that the 17 never do
    (another operation with the same kit)."""
    from distillguard.campaigns.build import merge_clusters
    from distillguard.scan.config import CampaignConfig

    pair = [("c-big", "c-piece")]

    def one(rows, groups, cfg=CampaignConfig(), overlaps=pair):
        rep = merge_clusters(_inc_con(rows), groups, cfg, operations=True, overlaps=overlaps)
        return rep["c-big"] == rep["c-piece"]

    rows, groups = _hydra_rows()
    assert one(rows, groups)
    why: dict = {}
    merge_clusters(_inc_con(rows), groups, CampaignConfig(), operations=True, why=why, overlaps=pair)
    assert "workload" in why.get("c-big", set()) | why.get("c-piece", set())
    assert not one(rows, groups, overlaps=[])
    assert not one(rows, groups, CampaignConfig(workload_piece_alpha=0))
    assert not one(rows, groups, CampaignConfig(workload_piece_alpha=0.05))
    assert not one(*_hydra_rows(big_share=16))
    assert not one(*_hydra_rows(piece_own=True))
