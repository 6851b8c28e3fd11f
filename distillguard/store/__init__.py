"""The embedded store: Parquet partitions by day plus a small DuckDB catalog."""

from distillguard.store.store import Store, open_store

__all__ = ["Store", "open_store"]
