"""Stage checkpoints, so a scan that dies at a late stage does not redo the early ones.

A scan of a month of traffic spends most of its time projecting exchanges and folding partials
(``prepare``) and building the graph (``detect``). When it then dies (out of disk, killed, a bug in the
campaign stage), the rerun should start from the last stage that finished. After each stage the
connection's tables (and, after ``detect``, the step's result) are written as Parquet under
``<temp dir>/resume/<stage>/`` with a manifest holding a fingerprint of the inputs (every exchange,
account and input-table file: path, size, modification time) and of the configuration. A rerun whose
fingerprint matches loads the newest finished stage instead of recomputing it; any other fingerprint
discards the checkpoints. They are removed once the scan's results are written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

import distillguard
from distillguard.errors import DistillguardError
from distillguard.graph.denseblock import Block
from distillguard.scan.config import ScanConfig
from distillguard.scoring.risk import ClusterScore
from distillguard.store import Store

#: Tables the scan itself writes (outputs, not inputs: they do not enter the fingerprint).
SCAN_OUTPUTS = frozenset({"account_features", "coordination_edges", "clusters", "cluster_members", "account_risk",
                          "campaigns", "campaign_members", "account_clusters"})
#: Keys that change how a scan runs, not what it finds.
_RESOURCE_KEYS = {"memory_limit", "threads", "prepare_chunk_rows", "signals_workers", "signals_memo_prompts",
                  "signals_memo_chars", "temp_directory", "temp_max_size", "temp_free_margin"}
STAGES = ("prepare", "detect")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def fingerprint(store: Store, cfg: ScanConfig) -> str:
    h = hashlib.sha256()
    h.update(distillguard.__version__.encode())
    h.update(json.dumps(cfg.model_dump(exclude=_RESOURCE_KEYS), sort_keys=True, default=str).encode())
    files = [*store.file_infos("exchanges/**/*.parquet"), *store.file_infos("accounts/*.parquet")]
    files += [f for f in store.file_infos("tables/*/*.parquet") if f[1].split("/")[1] not in SCAN_OUTPUTS]
    for _loc, rel, size, mtime_ns in sorted(files, key=lambda f: f[1]):
        h.update(f"{rel}\0{size}\0{mtime_ns}\n".encode())
    return h.hexdigest()[:32]


class Checkpoints:
    """The resume directory of one store + configuration."""

    def __init__(self, root: Path, fp: str):
        self.root, self.fp = root, fp

    def _manifest(self, stage: str) -> dict | None:
        try:
            m = json.loads((self.root / stage / "manifest.json").read_text())
        except (OSError, ValueError):
            return None
        return m if m.get("fingerprint") == self.fp else None

    def latest(self) -> tuple[str, dict] | None:
        """The last finished stage whose inputs are those of this run (None: start from the beginning).
        Checkpoints of other inputs or another configuration are removed."""
        found = None
        for stage in STAGES:
            m = self._manifest(stage)
            if m is None:
                break
            found = (stage, m)
        if found is None and self.root.exists():
            self.clear()
        return found

    def save(self, stage: str, con: duckdb.DuckDBPyConnection, meta: dict, step=None) -> None:
        """Write ``stage``'s tables (and step result) to a fresh directory, then swap it in whole."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{stage}.{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            # DuckDB's catalog: resume runs on the DuckDB engine only (run_scan refuses it with --engine spark)
            names = [r[0] for r in con.execute(
                "SELECT DISTINCT table_name FROM duckdb_tables() WHERE NOT internal ORDER BY 1").fetchall()]
            for n in names:
                con.execute(f"COPY (SELECT * FROM \"{n}\") TO '{_q(tmp / (n + '.parquet'))}' (FORMAT parquet)")
            if step is not None:
                _save_step(tmp / "step", step)
            (tmp / "manifest.json").write_text(json.dumps({"fingerprint": self.fp, "stage": stage,
                                                           "tables": names, **meta}))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        dest = self.root / stage
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)

    def load(self, stage: str, con: duckdb.DuckDBPyConnection) -> None:
        m = self._manifest(stage)
        assert m is not None
        for n in m["tables"]:
            if not _NAME.match(n):  # the manifest sits in a directory others can write to: names only
                raise DistillguardError(f"resume checkpoint names a bad table {n!r}; rerun with --no-resume",
                                        source=str(self.root / stage))
            con.execute(f"CREATE OR REPLACE TABLE \"{n}\" AS SELECT * FROM "
                        f"read_parquet('{_q(self.root / stage / (n + '.parquet'))}')")

    def load_step(self, stage: str):
        return _load_step(self.root / stage / "step")

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _q(p: Path) -> str:
    return str(p).replace("'", "''")


def _save_step(d: Path, step) -> None:
    d.mkdir()
    for name in ("features", "edges", "account_risk"):
        pq.write_table(getattr(step, name), d / f"{name}.parquet")
    (d / "rest.json").write_text(json.dumps({
        "clusters": [dataclasses.asdict(c) for c in step.clusters],
        "blocks": [dataclasses.asdict(b) for b in step.blocks],
        "membership": step.membership}))


def _load_step(d: Path):
    from distillguard.scan.engine import StepResult

    rest = json.loads((d / "rest.json").read_text())
    tabs: dict[str, pa.Table] = {n: pq.read_table(d / f"{n}.parquet") for n in ("features", "edges", "account_risk")}
    return StepResult(None, tabs["features"], tabs["edges"], [ClusterScore(**c) for c in rest["clusters"]],
                      tabs["account_risk"], [Block(**b) for b in rest["blocks"]], rest["membership"])
