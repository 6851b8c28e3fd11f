from __future__ import annotations

from pathlib import Path

import pytest

from distillguard.sim.config import load_world
from distillguard.sim.run import simulate

TINY = Path(__file__).parent / "tiny.yaml"


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> Path:
    """One tiny world shared by the read-only tests of this package."""
    out = tmp_path_factory.mktemp("tiny") / "world"
    spec, base = load_world(TINY)
    simulate(spec, base, out, workers=1)
    return out
