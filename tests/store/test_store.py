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


def test_reading_a_subset_of_parts_fills_columns_an_old_part_lacks(tmp_path):
    import pyarrow.parquet as pq

    from distillguard.events.record import exchanges_to_table
    from distillguard.testing.factory import make_exchange

    st = Store(tmp_path / "s", create=True)
    st.write_exchanges(exchanges_to_table([make_exchange(exchange_id="new-1", has_images=True)]), key="new")
    old = exchanges_to_table([make_exchange(exchange_id="old-1")]).drop_columns(["has_images"])
    day = st.exchange_files()[0].parent
    pq.write_table(old, day / "0-old.parquet")
    files = st.exchange_files()
    assert [f.name for f in files] == ["0-old.parquet", "new.parquet"]
    cols = ["exchange_id", "has_images", "prompt"]
    parts = [st.exchanges(columns=cols, files=[f]).to_arrow_table() for f in files]
    assert parts[0]["has_images"].to_pylist() == [None] and parts[0]["exchange_id"].to_pylist() == ["old-1"]
    assert parts[1]["has_images"].to_pylist() == [True]
    whole = st.exchanges(columns=cols).to_arrow_table()
    assert sorted(whole["exchange_id"].to_pylist()) == ["new-1", "old-1"]
    assert parts[0].schema.field("has_images").type == whole.schema.field("has_images").type
    assert st.exchanges(columns=cols, files=[]).to_arrow_table().num_rows == 0
