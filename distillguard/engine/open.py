"""Opening an engine by name for ``scan --engine`` (the DuckDB connection stays in scan.engine)."""

from __future__ import annotations

from distillguard.engine import ENGINES
from distillguard.errors import ConfigError
from distillguard.scan.config import ScanConfig
from distillguard.store import Store


def open_engine(name: str, store: Store, cfg: ScanConfig, master: str | None = None):
    """A Spark engine over ``store`` (views ``exchanges``, ``accounts`` and every derived table, as
    ``Store.connect`` makes them on DuckDB). ``master``: --master, else engine.spark.master, else Spark's."""
    if name not in ENGINES:
        raise ConfigError(f"--engine: {name!r} is not one of {', '.join(ENGINES)}")
    if name != "spark":
        raise ConfigError("open_engine opens the Spark engine; DuckDB is scan.engine.open_connection")
    from distillguard.engine.spark import SparkEngine, spark_session

    sc = cfg.engine.spark
    conf = {"spark.sql.shuffle.partitions": str(sc.shuffle_partitions), "spark.driver.memory": sc.driver_memory,
            "spark.ui.enabled": "false", **sc.conf}
    engine = SparkEngine(spark_session(master or sc.master, conf=conf), persist=sc.persist,
                         checkpoint_dir=sc.checkpoint_dir)
    store.register_views(engine)
    return engine


def run_signals_spark(engine, store: Store) -> int:
    from distillguard.engine.signals import run_signals_spark as run

    return run(engine, store)
