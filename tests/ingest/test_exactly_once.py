"""Every readable record stored exactly once, whatever happened to the file (issue 12, Ingest).

Damaged compressed files, a bad line deep in a big native file, logs growing during a run, torn
last lines, the same records re-encoded, duplicate ids. Kills are in test_kill.py.
"""

from __future__ import annotations

import gzip
import random
import zlib

import orjson
from typer.testing import CliRunner

from distillguard.cli import app
from distillguard.ingest import ingest_paths
from distillguard.testing import make_exchange, write_world
from tests.ingest.helpers import DATA, quarantine_of, write_lines


def _rec(i: int, **kw) -> dict:
    return {"exchange_id": f"e{i:06d}", "ts": "2026-02-01T00:00:00Z", "account_id": f"a{i % 13}",
            "prompt": f"question {i} " + "pad " * 20, "response_text": "answer " * 10, **kw}


def _lines(recs) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in recs)


def _stored_ids(store) -> list[str]:
    return [r[0] for r in store.exchanges(columns=["exchange_id"]).fetchall()]


def _whole_lines_in(data: bytes) -> int:
    return data.count(b"\n")


# --- damaged compressed files ------------------------------------------------------------------

def _truncated_gz(path, n: int, keep: float) -> int:
    """A gzip of n records cut at `keep` of its size; returns how many whole lines still decompress."""
    comp = gzip.compress(_lines(_rec(i) for i in range(n)))
    cut = comp[: int(len(comp) * keep)]
    path.write_bytes(cut)
    return _whole_lines_in(zlib.decompressobj(31).decompress(cut))


def test_truncated_gz_keeps_every_readable_record_and_later_files(store, tmp_path):
    gz = tmp_path / "a.jsonl.gz"
    readable = _truncated_gz(gz, 1000, 0.97)
    assert 900 < readable < 1000
    later = write_lines(tmp_path / "b.jsonl", [_rec(5000), _rec(5001)])
    res = ingest_paths(store, [gz, later])
    f = res.files[0]
    assert f.records == readable
    assert res.files[1].records == 2
    assert len(_stored_ids(store)) == readable + 2
    q = quarantine_of(res)
    assert len(q) == 1
    assert q[0]["path"] == str(gz) and "truncated" in q[0]["reason"]
    assert f"compressed byte {gz.stat().st_size}" in q[0]["reason"]  # where the damage is
    assert q[0]["line"] == readable + 1


def test_truncated_gz_exit_code_is_quarantined_not_aborted(tmp_path):
    gz = tmp_path / "a.jsonl.gz"
    readable = _truncated_gz(gz, 500, 0.9)
    later = write_lines(tmp_path / "b.jsonl", [_rec(9000)])
    r = CliRunner().invoke(app, ["ingest", str(gz), str(later), "--store", str(tmp_path / "s"), "--json"])
    assert r.exit_code == 3, r.output
    out = orjson.loads(r.stdout)
    assert out["ingested"] == readable + 1 and out["quarantined"] == 1


def test_corrupt_gz_keeps_records_before_the_damage(store, tmp_path):
    data = _lines(_rec(i) for i in range(3000))
    comp = bytearray(gzip.compress(data, compresslevel=1))
    mid = len(comp) // 2
    comp[mid: mid + 64] = b"\xff" * 64
    gz = tmp_path / "c.jsonl.gz"
    gz.write_bytes(bytes(comp))
    res = ingest_paths(store, [gz])
    assert res.records > 0
    ids = _stored_ids(store)
    assert len(ids) == len(set(ids)) == res.records
    # whatever was stored is a prefix of the file, and the damage is reported
    assert sorted(ids) == [f"e{i:06d}" for i in range(res.records)]
    assert any("corrupt" in q["reason"] or "truncated" in q["reason"] for q in quarantine_of(res))


def test_completed_gz_after_a_truncated_one_adds_only_the_rest(store, tmp_path):
    gz = tmp_path / "a.jsonl.gz"
    readable = _truncated_gz(gz, 400, 0.8)
    ingest_paths(store, [gz])
    gz.write_bytes(gzip.compress(_lines(_rec(i) for i in range(400))))  # the download finished
    res = ingest_paths(store, [gz])
    assert res.records == 400 - readable and res.duplicates == readable
    assert len(_stored_ids(store)) == 400


# --- bad lines at every file size --------------------------------------------------------------

def test_bad_line_in_a_later_native_block_costs_one_line(store, tmp_path, monkeypatch):
    import distillguard.ingest.run as run

    monkeypatch.setattr(run, "BLOCK_BYTES", 4096)  # many blocks: the bad line is in a later one
    recs = [_rec(i) for i in range(300)]
    raw = [orjson.dumps(r) for r in recs]
    raw.insert(200, orjson.dumps({**_rec(99999), "max_tokens": "lots"}))
    p = write_lines(tmp_path / "big.jsonl", raw)
    res = ingest_paths(store, [p])
    assert res.records == 300 and res.quarantined == 1
    assert quarantine_of(res)[0]["line"] == 201
    assert len(set(_stored_ids(store))) == 300


def test_unknown_column_and_wrong_type_lines_in_one_block(store, tmp_path, monkeypatch):
    import distillguard.ingest.run as run

    monkeypatch.setattr(run, "BATCH_ROWS", 1_000_000)  # fast and slow blocks end up in one part
    monkeypatch.setattr(run, "BLOCK_BYTES", 2048)
    raw = [orjson.dumps(_rec(i)) for i in range(100)]
    raw[60] = orjson.dumps({**_rec(60), "ts": "not a time"})
    raw[70] = b'{"exchange_id": "x", "ts": "2026-02-01T00:00:00Z"'
    p = write_lines(tmp_path / "b.jsonl", raw)
    res = ingest_paths(store, [p])
    assert (res.records, res.quarantined) == (98, 2)
    assert [q["line"] for q in quarantine_of(res)] == [61, 71]


# --- growing logs and torn last lines ----------------------------------------------------------

def test_log_appended_during_a_run_is_stored_once(store, tmp_path, monkeypatch):
    import distillguard.ingest.run as run

    monkeypatch.setattr(run, "BLOCK_BYTES", 4096)
    p = tmp_path / "live.jsonl"
    p.write_bytes(_lines(_rec(i) for i in range(200)))
    appended = {"n": 0}

    def writer_keeps_writing(_n: int) -> None:  # called per block: the log grows under the reader
        if appended["n"] < 5:
            i0 = 200 + appended["n"] * 20
            with open(p, "ab") as fh:
                fh.write(_lines(_rec(i) for i in range(i0, i0 + 20)))
            appended["n"] += 1

    ingest_paths(store, [p], on_progress=writer_keeps_writing)
    with open(p, "ab") as fh:
        fh.write(_lines(_rec(i) for i in range(300, 350)))
    res2 = ingest_paths(store, [p])
    ids = _stored_ids(store)
    assert len(ids) == len(set(ids)) == 350
    assert res2.duplicates == 0  # resumed after the last line read, not re-read


def test_torn_last_line_is_held_then_completed(store, tmp_path):
    p = tmp_path / "live.jsonl"
    whole = _lines(_rec(i) for i in range(10))
    nxt = orjson.dumps(_rec(10))
    p.write_bytes(whole + nxt[:25])  # the writer is mid-line
    res = ingest_paths(store, [p])
    f = res.files[0]
    assert (f.records, f.quarantined, f.held_bytes) == (10, 0, 25)
    with open(p, "ab") as fh:
        fh.write(nxt[25:] + b"\n" + orjson.dumps(_rec(11)) + b"\n")
    res = ingest_paths(store, [p])
    assert (res.records, res.quarantined) == (2, 0)
    assert res.files[0].resumed_from == len(whole)
    assert sorted(_stored_ids(store)) == [f"e{i:06d}" for i in range(12)]


def test_torn_last_line_of_a_file_that_stopped_growing_is_quarantined(store, tmp_path):
    p = tmp_path / "dead.jsonl"
    p.write_bytes(_lines(_rec(i) for i in range(5)) + b'{"exchange_id": "e9", "ts"')
    assert ingest_paths(store, [p]).quarantined == 0
    res = ingest_paths(store, [p])  # nothing written since: the writer is gone
    q = quarantine_of(res)
    assert len(q) == 1 and q[0]["line"] == 6 and "not grown" in q[0]["reason"]
    assert q[0]["raw"] == '{"exchange_id": "e9", "ts"'
    assert ingest_paths(store, [p]).files[0].skipped == "already ingested"
    assert len(_stored_ids(store)) == 5


def test_complete_last_line_without_newline_is_stored(store, tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_bytes(_lines(_rec(i) for i in range(3)) + orjson.dumps(_rec(3)))
    res = ingest_paths(store, [p])
    assert (res.records, res.files[0].held_bytes) == (4, 0)
    with open(p, "ab") as fh:  # the writer adds its newline and a new record later
        fh.write(b"\n" + orjson.dumps(_rec(4)) + b"\n")
    assert ingest_paths(store, [p]).records == 1
    assert len(_stored_ids(store)) == 5


def test_rewritten_file_is_read_whole_and_deduplicated(store, tmp_path):
    p = tmp_path / "rotating.jsonl"
    p.write_bytes(_lines(_rec(i) for i in range(50)))
    ingest_paths(store, [p])
    p.write_bytes(_lines(_rec(i) for i in range(40, 80)))  # rotated: overlaps the old content
    res = ingest_paths(store, [p])
    assert (res.records, res.duplicates, res.files[0].resumed_from) == (30, 10, 0)
    assert len(_stored_ids(store)) == 80


# --- the same records, encoded again -----------------------------------------------------------

def test_reencoded_native_records_are_not_stored_again(store, tmp_path):
    recs = [_rec(i) for i in range(500)]
    ingest_paths(store, [write_lines(tmp_path / "a.jsonl", recs)])
    shuffled = recs[:]
    random.Random(3).shuffle(shuffled)
    gz = tmp_path / "copy.jsonl.gz"
    gz.write_bytes(gzip.compress(b"".join(orjson.dumps(r, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
                                          .replace(b"\n", b"") + b"\n" for r in shuffled)))
    res = ingest_paths(store, [gz])
    assert (res.records, res.duplicates) == (0, 500)
    assert len(_stored_ids(store)) == 500


def test_reencoded_provider_records_without_ids_are_not_stored_again(store, tmp_path):
    lines = [orjson.loads(ln) for ln in (DATA / "openai_chat.jsonl").read_bytes().splitlines() if ln.strip()]
    for rec in lines:  # no provider id anywhere: the id is derived from the content
        rec.get("metadata", {}).pop("request_id", None)
        if isinstance(rec.get("response"), dict):
            rec["response"].pop("id", None)
    first = ingest_paths(store, [write_lines(tmp_path / "a.jsonl", lines)], fmt="openai")
    assert first.records > 0
    gz = tmp_path / "b.jsonl.gz"
    gz.write_bytes(gzip.compress(b"".join(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) + b"\n"
                                          for r in reversed(lines))))
    again = ingest_paths(store, [gz], fmt="openai")
    assert again.records == 0 and again.duplicates == first.records
    assert len(_stored_ids(store)) == first.records


def test_native_records_without_an_id_get_a_content_id(store, tmp_path):
    rec = {"ts": "2026-02-01T00:00:00Z", "account_id": "a", "prompt": "hi"}
    p = write_lines(tmp_path / "noid.jsonl", [rec, {**rec, "prompt": "other"}, {"prompt": "hi", **rec}])
    res = ingest_paths(store, [p])
    assert (res.records, res.duplicates, res.quarantined) == (2, 1, 0)
    ids = _stored_ids(store)
    assert all(i.startswith("dg-") for i in ids)
    q = write_lines(tmp_path / "noid2.jsonl", [{"account_id": "a", "prompt": "hi", "ts": "2026-02-01T00:00:00Z"}])
    assert ingest_paths(store, [q]).duplicates == 1


def test_duplicate_ids_within_one_file_keep_the_first(store, tmp_path):
    p = write_lines(tmp_path / "d.jsonl", [_rec(1, prompt="first"), _rec(2), _rec(1, prompt="second")])
    res = ingest_paths(store, [p])
    assert (res.records, res.duplicates) == (2, 1)
    rows = dict(store.exchanges(columns=["exchange_id", "prompt"]).fetchall())
    assert rows["e000001"] == "first"


def test_exchanges_written_by_other_writers_are_known(store, tmp_path):
    exs = [make_exchange() for _ in range(20)]
    write_world(store, exs)  # as the simulator or the gateway would, without the ingest loop
    from distillguard.store.export import export_native

    out = tmp_path / "export.jsonl"
    export_native(store, out)
    res = ingest_paths(store, [out])
    assert (res.records, res.duplicates) == (0, 20)
    assert store.exchanges().count("*").fetchall()[0][0] == 20


def test_a_full_disk_stops_the_run_with_a_store_error_and_loses_nothing(store, tmp_path, monkeypatch):
    import errno

    import pytest

    import distillguard.ingest.run as run
    from distillguard.errors import StoreError

    monkeypatch.setattr(run, "BATCH_ROWS", 40)
    monkeypatch.setattr(run, "BLOCK_BYTES", 4096)
    p = write_lines(tmp_path / "a.jsonl", [_rec(i) for i in range(200)])
    real = store.write_exchanges
    calls = {"n": 0}

    def disk_fills(table, key):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(table, key)

    monkeypatch.setattr(store, "write_exchanges", disk_fills)
    with pytest.raises(StoreError, match="cannot write to the store"):
        ingest_paths(store, [p])
    monkeypatch.setattr(store, "write_exchanges", real)
    again = ingest_paths(store, [p])
    assert again.duplicates > 0 and again.records + again.duplicates == 200
    assert sorted(_stored_ids(store)) == [f"e{i:06d}" for i in range(200)]


def test_a_gz_that_is_not_gzip_is_reported_and_the_run_goes_on(store, tmp_path):
    bad = tmp_path / "a.jsonl.gz"
    bad.write_bytes(b"plain text, not gzip\n")
    later = write_lines(tmp_path / "b.jsonl", [_rec(1)])
    res = ingest_paths(store, [bad, later])
    q = quarantine_of(res)
    assert len(q) == 1 and "corrupt" in q[0]["reason"] and q[0]["path"] == str(bad)
    assert res.records == 1
