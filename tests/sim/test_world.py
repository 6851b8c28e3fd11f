from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from distillguard.events.schema import ACCOUNT_SCHEMA, EXCHANGE_SCHEMA
from distillguard.sim.config import load_world
from distillguard.sim.run import simulate
from distillguard.store import Store

TINY = Path(__file__).parent / "tiny.yaml"


def _con(world):
    st = Store(world)
    con = st.connect()
    con.register("labels", pq.read_table(world / "labels.parquet"))
    return con


def test_store_and_labels_are_consistent(tiny_world):
    st = Store(tiny_world)
    con = _con(tiny_world)
    acc = st.accounts(con).to_arrow_table()
    assert acc.schema.names == ACCOUNT_SCHEMA.names
    labels = pq.read_table(tiny_world / "labels.parquet")
    assert labels.schema.names == ["account_id", "campaign_id", "persona", "role"]
    assert sorted(labels["account_id"].to_pylist()) == sorted(acc["account_id"].to_pylist())
    assert labels.num_rows == len(set(labels["account_id"].to_pylist()))
    # every exchange belongs to a labelled account; ground truth is not in the store's tables
    assert con.sql("SELECT count(*) FROM exchanges WHERE account_id NOT IN (SELECT account_id FROM labels)").fetchall()[0][0] == 0
    assert st.tables() == []
    ex_cols = con.sql("SELECT * FROM exchanges LIMIT 1").columns
    assert set(EXCHANGE_SCHEMA.names) <= set(ex_cols)
    roles = dict(con.sql("SELECT role, count(*) FROM labels GROUP BY 1").fetchall())
    assert set(roles) == {"benign", "attacker", "proxy", "standby"}
    by = dict(con.sql("SELECT coalesce(campaign_id, 'none'), count(*) FROM labels GROUP BY 1").fetchall())
    assert by["camp-x"] == 20 + 4 and by["camp-y"] == 10 + 40
    summary = json.loads((tiny_world / "world.json").read_text())
    assert summary["exchanges"] == con.sql("SELECT count(*) FROM exchanges").fetchall()[0][0]


def test_volumes_follow_config(tiny_world):
    con = _con(tiny_world)
    n = dict(con.sql("""SELECT l.campaign_id, count(*) FROM exchanges e JOIN labels l USING (account_id)
                        WHERE l.campaign_id IS NOT NULL GROUP BY 1""").fetchall())
    # camp-x: 4000 attack exchanges plus 20% mixed-in ordinary traffic on the same accounts
    assert 0.8 * 5000 < n["camp-x"] < 1.2 * 5000
    # camp-y: 60% through its own accounts, 40% through the hydra which doubles it with customer traffic
    assert 0.8 * 4200 < n["camp-y"] < 1.2 * 4200


def test_responses_and_reasoning_present(tiny_world):
    con = _con(tiny_world)
    r = con.sql("""SELECT count(*) FILTER (WHERE response_text IS NULL), avg(response_chars),
                          count(*) FILTER (WHERE reasoning_requested AND reasoning_chars IS NULL),
                          count(*) FILTER (WHERE model = 'm-new' AND reasoning_requested AND reasoning_text IS NOT NULL),
                          count(*) FILTER (WHERE has_images), count(*) FILTER (WHERE n_turns > 1),
                          count(*) FILTER (WHERE len(tools_offered) > 0)
                   FROM exchanges""").fetchall()[0]
    assert r[0] == 0 and r[1] > 100
    assert r[2] == 0  # reasoning length kept whenever reasoning was asked for
    assert r[3] == 0  # the new model hides reasoning text
    assert r[4] > 0 and r[5] > 0 and r[6] > 0
    # prompt is the last user turn
    bad = con.sql("""SELECT count(*) FROM exchanges
                     WHERE n_turns = 1 AND turns[1].text <> prompt""").fetchall()[0][0]
    assert bad == 0


def test_ban_evasion_recorded(tiny_world):
    con = _con(tiny_world)
    banned = con.sql("""SELECT a.account_id, a.status_changed_at FROM accounts a JOIN labels l USING (account_id)
                        WHERE a.status = 'banned'""").fetchall()
    assert len(banned) == 10
    for aid, t in banned:
        after = con.execute("SELECT count(*) FROM exchanges WHERE account_id = ? AND ts >= ?", [aid, t]).fetchall()[0][0]
        assert after == 0
    first_ban = min(t for _, t in banned)
    sb = con.sql("""SELECT min(e.ts), count(*) FROM exchanges e JOIN labels l USING (account_id)
                    WHERE l.role = 'standby'""").fetchall()[0]
    assert sb[1] > 0 and sb[0] >= first_ban


def test_campaign_pivots_to_new_model(tiny_world):
    con = _con(tiny_world)
    rel = datetime(2026, 1, 13, 6, tzinfo=UTC)
    share = con.execute("""SELECT avg((model = 'm-new')::INT) FROM exchanges e JOIN labels l USING (account_id)
                           WHERE l.role = 'attacker' AND l.campaign_id = 'camp-x' AND ts > ?::TIMESTAMPTZ + INTERVAL 12 HOUR""",
                        [rel]).fetchall()[0][0]
    before = con.execute("SELECT count(*) FROM exchanges WHERE model = 'm-new' AND ts < ?", [rel]).fetchall()[0][0]
    benign = con.execute("""SELECT avg((model = 'm-new')::INT) FROM exchanges e JOIN labels l USING (account_id)
                            WHERE l.role = 'benign' AND ts > ?::TIMESTAMPTZ + INTERVAL 12 HOUR""", [rel]).fetchall()[0][0]
    assert before == 0
    assert share > 0.6 and benign < 0.3


def _dump(world):
    con = duckdb.connect()
    ex = con.sql(f"SELECT * EXCLUDE (turns) , turns::VARCHAR AS turns FROM read_parquet('{world}/exchanges/*/*.parquet') "
                 "ORDER BY exchange_id").fetchall()
    acc = con.sql(f"SELECT * FROM read_parquet('{world}/accounts/*.parquet') ORDER BY account_id").fetchall()
    lab = con.sql(f"SELECT * FROM read_parquet('{world}/labels.parquet') ORDER BY account_id").fetchall()
    return ex, acc, lab


@pytest.mark.slow
def test_deterministic_for_a_seed_and_worker_count(tmp_path):
    spec, base = load_world(TINY)
    spec = spec.model_copy(update={"days": 2})
    simulate(spec, base, tmp_path / "one", workers=1)
    simulate(spec, base, tmp_path / "two", workers=2)
    a, b = _dump(tmp_path / "one"), _dump(tmp_path / "two")
    assert a[1] == b[1] and a[2] == b[2]
    assert len(a[0]) > 1000 and a[0] == b[0]
    simulate(spec, base, tmp_path / "other", seed=99, workers=1)
    c = _dump(tmp_path / "other")
    assert c[2] != a[2] and c[0] != a[0]


def test_lengths_mode_keeps_sizes(tmp_path):
    spec, base = load_world(TINY)
    spec = spec.model_copy(update={"responses": "lengths", "days": 1})
    simulate(spec, base, tmp_path / "w", workers=1)
    con = Store(tmp_path / "w").connect()
    r = con.sql("""SELECT count(*), count(response_text), count(reasoning_text), min(response_chars),
                          count(*) FILTER (WHERE reasoning_requested AND reasoning_chars > 0 AND reasoning_tokens > 0)
                   FROM exchanges""").fetchall()[0]
    assert r[0] > 0 and r[1] == 0 and r[2] == 0 and r[3] > 0 and r[4] > 0


def test_refuses_non_empty_output(tiny_world):
    from distillguard.errors import ConfigError

    spec, base = load_world(TINY)
    with pytest.raises(ConfigError, match="already holds exchanges"):
        simulate(spec, base, tiny_world, workers=1)


def test_chunks_bound_memory_and_keep_volume():
    from distillguard.sim.world import World

    spec, base = load_world(TINY)
    small = World(spec.model_copy(update={"chunk_rows": 1000}), base, scale=4)
    big = World(spec, base, scale=4)
    gi = next(i for i, g in enumerate(big.groups) if g.key == "chat_users")
    a = [t for sh in range(small.n_shards) for t in small.day_chunks(gi, 1, sh)]
    b = [t for sh in range(big.n_shards) for t in big.day_chunks(gi, 1, sh)]
    assert small.n_shards > big.n_shards and len(a) > len(b)
    assert all(t.num_rows <= 1000 for t in a)
    # same accounts and counts per account; only the per-chunk random content differs
    def per_account(ts):
        out = {}
        for t in ts:
            for x in t["account_id"].to_pylist():
                out[x] = out.get(x, 0) + 1
        return out
    assert per_account(a) == per_account(b)


def test_files_mix_groups_in_time_order(tiny_world):
    con = duckdb.connect()
    con.register("labels", pq.read_table(tiny_world / "labels.parquet"))
    rows = con.sql(f"""SELECT filename, count(DISTINCT coalesce(l.campaign_id, l.persona)) AS groups,
                              count(*) AS n
                       FROM read_parquet('{tiny_world}/exchanges/*/*.parquet', filename=true) e
                       JOIN labels l USING (account_id) GROUP BY 1""").fetchall()
    assert all(g >= 4 for _, g, _ in rows)  # every file holds ordinary and attack traffic together
    for f, _, _ in rows:
        ts = pq.read_table(f, columns=["ts"])["ts"].to_pylist()
        assert ts == sorted(ts)
    acc = pq.read_table(next((tiny_world / "accounts").glob("*.parquet")))
    lab = {r["account_id"]: r["role"] for r in pq.read_table(tiny_world / "labels.parquet").to_pylist()}
    roles = [lab[a] for a in acc["account_id"].to_pylist()]
    # accounts are not stored group by group: attack accounts are spread through the file
    pos = [i for i, r in enumerate(roles) if r != "benign"]
    assert pos[0] < len(roles) // 4 and pos[-1] > 3 * len(roles) // 4
