import json

import orjson
import pytest
from typer.testing import CliRunner

from distillguard.cli import app
from distillguard.ingest import ingest_paths
from distillguard.store.export import export_native
from distillguard.testing import make_exchange, write_world


def _rows(store):
    return store.exchanges().order("exchange_id").fetchall()


def test_native_round_trip_is_identical(store, tmp_path):
    exs = [make_exchange(tools_offered=["search"], tool_calls=["search"], reasoning_text="because",
                         reasoning_chars=7, temperature=0.5, has_images=True, extra='{"k": 1}') for _ in range(5)]
    write_world(store, exs)
    out = tmp_path / "out.jsonl"
    assert export_native(store, out) == 5
    from distillguard.store import Store

    other = Store(tmp_path / "other", create=True)
    res = ingest_paths(other, [out])
    assert res.records == 5 and res.quarantined == 0
    assert _rows(other) == _rows(store)


def test_bad_lines_are_quarantined_and_neighbours_kept(store, tmp_path):
    good = {"exchange_id": "g1", "ts": "2026-02-01T00:00:00Z", "account_id": "a"}
    lines = [json.dumps(good), "{not json", json.dumps({**good, "exchange_id": "g2", "max_tokens": "lots"}),
             json.dumps({**good, "exchange_id": "g3"}), "", json.dumps({"ts": "2026-02-01T00:00:00Z"})]
    p = tmp_path / "mixed.jsonl"
    p.write_text("\n".join(lines) + "\n")
    res = ingest_paths(store, [p])
    assert res.records == 2
    assert res.quarantined == 3
    q = [orjson.loads(x) for x in open(res.files[0].quarantine_file, "rb")]
    assert [r["line"] for r in q] == [2, 3, 6]
    assert "invalid JSON" in q[0]["reason"] and "max_tokens" in q[1]["reason"] and "account_id" in q[2]["reason"]
    assert q[0]["raw"].startswith("{not json")
    assert sorted(r[0] for r in store.exchanges(columns=["exchange_id"]).fetchall()) == ["g1", "g3"]


def test_ingest_twice_adds_nothing_and_grown_file_resumes(store, tmp_path):
    p = tmp_path / "log.jsonl"
    rows = [{"exchange_id": f"e{i}", "ts": "2026-02-01T00:00:00Z", "account_id": "a"} for i in range(10)]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows[:6]))
    assert ingest_paths(store, [p]).records == 6
    assert ingest_paths(store, [p]).records == 0
    with open(p, "a") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in rows[6:]))
    assert ingest_paths(store, [p]).records == 4
    assert store.exchanges().count("*").fetchall()[0][0] == 10


def test_restart_after_crash_does_not_double_count(store, tmp_path, monkeypatch):
    import distillguard.ingest.run as run

    p = tmp_path / "big.jsonl"
    p.write_text("".join(json.dumps({"exchange_id": f"e{i}", "ts": "2026-02-01T00:00:00Z", "account_id": "a"}) + "\n"
                         for i in range(300)))
    monkeypatch.setattr(run, "BLOCK_BYTES", 2000)
    monkeypatch.setattr(run, "BATCH_ROWS", 50)
    calls = {"n": 0}
    real = store.write_exchanges

    def crash_on_third(table, key):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated crash")
        return real(table, key)

    monkeypatch.setattr(store, "write_exchanges", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        ingest_paths(store, [p])
    monkeypatch.setattr(store, "write_exchanges", real)
    ingest_paths(store, [p])
    assert store.exchanges().count("*").fetchall()[0][0] == 300


def test_cli_summary_and_exit_code(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"exchange_id":"a","ts":"2026-02-01T00:00:00Z","account_id":"a"}\nbroken\n')
    runner = CliRunner()
    res = runner.invoke(app, ["ingest", str(p), "--store", str(tmp_path / "s")])
    assert res.exit_code == 3, res.output
    assert "ingested 1 · quarantined 1 (see" in res.output
    res = runner.invoke(app, ["stats", "--store", str(tmp_path / "s"), "--json"])
    assert res.exit_code == 0
    assert orjson.loads(res.stdout)["totals"]["exchanges"] == 1


def test_fallback_splits_only_on_newlines(store, tmp_path):
    # A control character inside a line must not split it into two records (as str.splitlines would).
    good = b'{"exchange_id":"a","ts":"2026-02-01T00:00:00Z","account_id":"x"}'
    p = tmp_path / "cc.jsonl"
    p.write_bytes(good + b"\n" + b'{"exchange_id":"b\x0cc"}' + b"\n" + good.replace(b'"a"', b'"d"') + b"\n")
    res = ingest_paths(store, [p])
    f = res.files[0]
    assert (f.lines, res.records, res.quarantined) == (3, 2, 1)
    q = [orjson.loads(x) for x in open(f.quarantine_file, "rb")]
    assert q[0]["line"] == 2
