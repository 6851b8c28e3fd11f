from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from distillguard.ingest import ingest_paths
from tests.ingest.helpers import DATA, rows_by_id


@pytest.fixture
def ingest(store, tmp_path):
    """ingest(*sample names or paths, fmt=...) -> (IngestResult, rows by exchange_id) for one run."""

    def run(*names, fmt: str = "auto"):
        paths = []
        for n in names:
            p = Path(n)
            if not p.is_absolute():
                dest = tmp_path / "in" / p.name
                dest.parent.mkdir(exist_ok=True)
                if not dest.exists():
                    shutil.copy(DATA / p, dest)
                p = dest
            paths.append(p)
        res = ingest_paths(store, paths, fmt=fmt)
        return res, rows_by_id(store)

    return run
