"""The signals stage on Spark: the same pure detectors, called on Arrow batches through ``mapInArrow``.

Every detector is a function of one batch of exchanges (``signals.score.score_batch``), so the map side needs
nothing but the batches: Spark reads the exchange Parquet where it lies, hands each Python worker Arrow
batches of the detector input columns, and writes ``exchange_signals`` as Parquet parts; no exchange text
reaches the driver. The executors need distillguard installed (the detectors, lexical model and task index
load once per Python worker).
"""

from __future__ import annotations

import pyarrow as pa

from distillguard.signals.score import TABLE, _resolve, input_columns, output_schema


def _score_batches(names: list[str], schema: pa.Schema):
    def run(batches):
        from distillguard.signals.score import score_batch

        for b in batches:
            if b.num_rows:
                yield score_batch(b, names).cast(schema)
    return run


def signals_dataframe(engine, detectors=None, max_records_per_batch: int = 8192):
    """A DataFrame of ``exchange_signals`` rows for the engine's ``exchanges`` view (lazy)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    dets = _resolve(detectors)
    names = [d.name for d in dets]
    # Spark timestamps are microseconds: declare the output as Spark will hold it, keep the table's columns
    schema = output_schema(dets)
    schema = pa.schema([pa.field(f.name, pa.timestamp("us", tz="UTC"), f.nullable) if f.name == "ts" else f
                        for f in schema])
    engine.spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(max_records_per_batch))
    df = engine.dataframe("exchanges", columns=list(input_columns(dets)))
    return df.mapInArrow(_score_batches(names, schema), from_arrow_schema(schema))


def run_signals_spark(engine, store, detectors=None) -> int:
    """Score every exchange on the cluster and (re)write ``exchange_signals``; returns rows written."""
    df = signals_dataframe(engine, detectors)
    if store.fs is not None:  # object storage: each executor writes its part to the bucket (engine.objectstore)
        from distillguard.engine.objectstore import write_parts

        write_parts(df, store, TABLE)
    else:
        with store.new_table(TABLE) as tmp:
            df.write.mode("overwrite").option("compression", "zstd").parquet(str(tmp))
    # the engine's views were made before the table changed: point exchange_signals at the new parts
    engine.refresh_files()
    store.register_views(engine)
    return engine.dataframe(TABLE).count()
