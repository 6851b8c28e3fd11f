"""The exchange-id index against a plain Python set: lookups, merges, crash leftovers, reconcile."""

from __future__ import annotations

import random

import numpy as np

import distillguard.store.ids as ids
from distillguard.store.ids import IdIndex, hash_ids
from distillguard.testing import make_exchange, write_world


def test_index_agrees_with_a_set_through_many_merges(tmp_path, monkeypatch):
    monkeypatch.setattr(ids, "FAN_IN", 3)
    monkeypatch.setattr(ids, "MERGE_CHUNK", 7)  # chunk boundaries everywhere in every merge
    monkeypatch.setattr(ids, "PROBE_SEGMENT", 5)  # and segment boundaries in every lookup
    rng = random.Random(5)
    truth: set[str] = set()
    with IdIndex(tmp_path) as ix:
        for _ in range(60):
            batch = [f"id{rng.randrange(4000)}" for _ in range(40)]
            hi, lo = hash_ids(batch)
            assert ix.contains(hi, lo).tolist() == [b in truth for b in batch]
            new = sorted({b for b in batch if b not in truth})
            ix.add(*hash_ids(new))
            truth.update(new)
        assert len(ix) == len(truth)
        assert ix.runs < 3 * 8  # merged, not one run per batch
    with IdIndex(tmp_path) as ix:  # reopened from disk
        probe = [f"id{i}" for i in range(4000)]
        assert ix.contains(*hash_ids(probe)).tolist() == [p in truth for p in probe]


def test_keys_sharing_their_high_half(tmp_path, monkeypatch):
    monkeypatch.setattr(ids, "PROBE_SEGMENT", 2)  # the keys with hi = 5 straddle two segments
    with IdIndex(tmp_path) as ix:
        ix.add(np.array([5, 5, 5, 7], np.uint64), np.array([1, 2, 3, 1], np.uint64))
        got = ix.contains(np.array([5, 5, 5, 7, 7, 6], np.uint64), np.array([3, 4, 1, 1, 2, 1], np.uint64))
        assert got.tolist() == [True, False, True, True, False, False]


def test_leftovers_of_a_killed_write_are_ignored(tmp_path):
    with IdIndex(tmp_path) as ix:
        ix.add(*hash_ids(["a", "b"]))
    d = tmp_path / "ids"
    (d / "run-00-deadbeef0000.hi").write_bytes(b"\0" * 16)  # .hi renamed, .lo never arrived
    (d / ".run-00-x.lo.tmp").write_bytes(b"\0" * 7)
    with IdIndex(tmp_path) as ix:
        assert ix.contains(*hash_ids(["a", "b", "c"])).tolist() == [True, True, False]
        assert not (d / "run-00-deadbeef0000.hi").exists() and not (d / ".run-00-x.lo.tmp").exists()


def test_parts_written_without_the_index_are_indexed_on_open(store):
    exs = [make_exchange() for _ in range(30)]
    write_world(store, exs)
    with IdIndex(store.path) as ix:
        assert ix.contains(*hash_ids([e.exchange_id for e in exs])).all()
        assert len(ix) == 30
    with IdIndex(store.path) as ix:  # nothing new: nothing re-read
        assert ix.reconcile() == 0


def test_a_part_rewritten_under_the_same_name_is_indexed_again(store):
    first = [make_exchange() for _ in range(5)]
    write_world(store, first, key="gw-segment-1")
    with IdIndex(store.path) as ix:
        assert len(ix) == 5
    more = first + [make_exchange() for _ in range(7)]
    write_world(store, more, key="gw-segment-1")  # same part name, more rows
    with IdIndex(store.path) as ix:
        assert ix.contains(*hash_ids([e.exchange_id for e in more])).all()
