"""Configuration of the execution engine (``scan --engine``) and of community detection at Spark scale."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SparkConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: Spark master when ``--master`` is not given (None: whatever spark-submit / SPARK_MASTER set, else local[*]).
    master: str | None = None
    #: spark.sql.shuffle.partitions: ~1 per 128 MB of the largest shuffle (docs/spark.md derives it per month).
    shuffle_partitions: int = Field(8, ge=1)
    #: spark.driver.memory for a session the scan starts itself (communities and campaigns run on the driver).
    driver_memory: str = "2g"
    #: Any other Spark settings, passed through (e.g. spark.executor.memory, spark.local.dir).
    conf: dict[str, str] = Field(default_factory=dict)
    #: Materialise each stage's table (as DuckDB does) and cut its lineage; off only to debug plans.
    persist: bool = True
    #: Reliable checkpoint directory (e.g. s3://bucket/tmp or hdfs:///tmp) for the stage tables: a lost
    #: executor then costs a re-read, not a re-run of the stage. None: local checkpoints (faster; lost with
    #: the executor, which fails the scan).
    checkpoint_dir: str | None = None


class CommunitiesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: Leiden runs on the driver while the pair graph has at most this many pairs (measured, bench/leiden_bench.py:
    #: 10M pairs took 4.8 GB of driver Python RSS and 875 CPU-s of Leiden per resolution level; 1M: 0.6 GB,
    #: 53 CPU-s). Beyond it the Spark engine finds communities where the pairs are:
    #: connected components over strong pairs.
    driver_max_pairs: int = Field(10_000_000, ge=1)
    #: Leiden's resolution levels run in up to this many forked processes at once (Leiden is single-threaded
    #: and holds the GIL; each worker shares the graph copy-on-write and returns one community per account).
    #: 1: one level after another in the scan's process. Same communities either way.
    leiden_workers: int = Field(2, ge=1)
    #: Distributed fallback: only pairs at least this heavy join components (a weak pair — one shared /24
    #: or ASN — would chain a proxy pool's bystanders into one giant component).
    strong_pair_weight: float = Field(1.0, ge=0)
    #: Distributed fallback: label-propagation rounds at most (each halves nothing in the worst case, but
    #: coordinated pools are small-diameter: they converge in a handful).
    max_iterations: int = Field(30, ge=1)
    #: Distributed fallback: components larger than this are not reported as one cluster (a chain of strong
    #: pairs this large is infrastructure, not one operation); their members stay unclustered.
    max_component_size: int = Field(100_000, ge=2)


class EngineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    spark: SparkConfig = Field(default_factory=SparkConfig)
    communities: CommunitiesConfig = Field(default_factory=CommunitiesConfig)
