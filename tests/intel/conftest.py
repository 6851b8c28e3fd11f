from __future__ import annotations

from datetime import UTC, datetime

import pytest

from distillguard.intel.keys import parse_key
from distillguard.testing.intel_fixture import make_two_providers

GROUP_KEY_HEX = "8f1c2b7d9e0a4c6b3d5e7f9a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e"
OTHER_KEY_HEX = "00aa11bb22cc33dd44ee55ff66007711882299330044aa55bb66cc77dd88ee99"
NOW = datetime(2026, 2, 14, 12, 0, tzinfo=UTC)


@pytest.fixture
def key():
    return parse_key(GROUP_KEY_HEX, "test")


@pytest.fixture
def other_key():
    return parse_key(OTHER_KEY_HEX, "test")


@pytest.fixture
def two(tmp_path):
    return make_two_providers(tmp_path)


@pytest.fixture
def now():
    return NOW


@pytest.fixture(scope="session")
def bundles(tmp_path_factory):
    """Provider A's exports, made once: A's store is deterministic and export is the slow part (pattern
    validation in stix2), so every test imports these into its own fresh provider-B store."""
    from distillguard.intel.export import export_bundle

    root = tmp_path_factory.mktemp("bundles")
    two = make_two_providers(root / "world")
    hashed, raw = root / "hashed.json", root / "raw.json"
    export_bundle(two.store_a, hashed, campaign_id=two.campaign_id, key=parse_key(GROUP_KEY_HEX, "t"), now=NOW)
    export_bundle(two.store_a, raw, campaign_id=two.campaign_id, raw=True, now=NOW)
    return {"hashed": hashed, "raw": raw}


PARTNER = "Provider A"


def make_cfg(trust: float = 1.0, may_enforce: bool = False, taxii: list[dict] | None = None, **sections):
    """An intel config with one partner, Provider A, as a receiving provider would configure it."""
    from distillguard.intel.config import IntelConfig

    return IntelConfig.model_validate({"partners": [{"name": PARTNER, "trust": trust, "may_enforce": may_enforce,
                                                     "taxii": taxii or []}], **sections})


@pytest.fixture
def cfg():
    return make_cfg()
