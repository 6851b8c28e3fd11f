import pytest

from distillguard.errors import StoreError
from distillguard.store import Store
from distillguard.testing import make_account, make_exchange, write_world


def test_empty_store_reads_as_empty_relation(store):
    assert store.exchanges().count("*").fetchall() == [(0,)]
    assert "prompt" in store.exchanges().columns


def test_not_a_store(tmp_path):
    with pytest.raises(StoreError, match="not a distillguard store"):
        Store(tmp_path)


def test_partitions_by_day_and_rewrites_same_key(store):
    from datetime import timedelta

    from distillguard.testing.factory import BASE_TS

    exs = [make_exchange(ts=BASE_TS + timedelta(days=d)) for d in range(3)]
    write_world(store, exs, key="k")
    write_world(store, exs, key="k")
    days = sorted(p.parent.name for p in (store.path / "exchanges").rglob("*.parquet"))
    assert days == ["day=2026-02-01", "day=2026-02-02", "day=2026-02-03"]
    assert store.exchanges().count("*").fetchall() == [(3,)]


def test_later_account_rows_win(store):
    write_world(store, [], [make_account("a", tier="free")], key="1")
    write_world(store, [], [make_account("a", tier="pro")], key="2")
    assert store.accounts().select("tier").fetchall() == [("pro",)]


def test_derived_tables_replace_atomically(store):
    import pyarrow as pa

    store.write_table("scores", pa.table({"account_id": ["a"], "risk": [0.5]}))
    store.write_table("scores", pa.table({"account_id": ["a", "b"], "risk": [0.1, 0.9]}))
    assert store.read_table("scores").num_rows == 2
    con = store.connect()
    assert con.sql("SELECT count(*) FROM scores").fetchall() == [(2,)]
