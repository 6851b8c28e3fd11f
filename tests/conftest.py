from __future__ import annotations

from pathlib import Path

import pytest

from distillguard.store import Store

DATA = Path(__file__).parent / "data"


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "store", create=True)


@pytest.fixture
def data_dir() -> Path:
    return DATA
