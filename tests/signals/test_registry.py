from importlib.metadata import EntryPoint

import numpy as np
import pyarrow as pa
import pytest

from distillguard.errors import ConfigError
from distillguard.signals import Detector, registry, score_batch
from distillguard.signals.registry import Registry
from distillguard.testing.factory import make_exchange, table_of

BUILTIN = {"cot_elicitation", "reward_grading", "policy_rewrite", "synthetic_data", "cap_coding", "cap_agentic", "cap_computer_use",
           "cap_vision", "cap_data_analysis", "task_dataset"}


class ShoutDetector(Detector):
    """Share of upper-case letters: a toy plugin used to test the registry mechanics."""

    name = "shout"
    version = "2"

    def score(self, batch, ctx=None):
        texts = batch.column("prompt").to_pylist()
        return np.array([sum(c.isupper() for c in t) / max(len(t), 1) for t in texts], dtype=np.float32)


def test_builtins_registered_with_docstrings():
    dets = registry.detectors()
    names = {d.name for d in dets}
    assert BUILTIN <= names
    for d in dets:
        assert len(d.description()) > 80, d.name
        assert d.version


def test_plugin_via_entry_point(monkeypatch):
    reg = Registry()
    ep = EntryPoint(name="shout", value="tests.signals.test_registry:ShoutDetector", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [ep] if group == registry.ENTRY_POINT_GROUP else [])
    names = [d.name for d in reg.all()]
    assert "shout" in names and "cot_elicitation" in names
    batch = pa.RecordBatch.from_pylist([{"exchange_id": "e1", "account_id": "a", "ts": 0, "prompt": "HELLO there"}])
    batch = pa.Table.from_batches([batch]).cast(pa.schema([("exchange_id", pa.string()), ("account_id", pa.string()),
                                                          ("ts", pa.timestamp("ms", tz="UTC")), ("prompt", pa.string())]))
    out = score_batch(batch, [reg.get("shout"), reg.get("cot_elicitation")])
    assert out.schema.names == ["exchange_id", "account_id", "ts", "sig_shout", "sig_cot_elicitation", "template_key",
                                "task_item_key"]
    assert out.column("sig_shout").to_pylist()[0] == pytest.approx(5 / 11)


def test_broken_plugin_is_named(monkeypatch):
    reg = Registry()
    ep = EntryPoint(name="broken", value="no_such_module_xyz:Thing", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [ep])
    with pytest.raises(ConfigError, match="broken"):
        reg.all()


def test_register_validates():
    reg = Registry()

    class NoDoc(Detector):
        name = "nodoc"

        def score(self, batch, ctx=None):
            return np.zeros(batch.num_rows, np.float32)

    class BadName(ShoutDetector):
        """Has a doc."""

        name = "Bad-Name"

    with pytest.raises(ConfigError, match="docstring"):
        reg.register(NoDoc)
    with pytest.raises(ConfigError, match="snake_case"):
        reg.register(BadName)
    with pytest.raises(ConfigError, match="not a distillguard"):
        reg.register(object())


def test_plugin_scores_are_clipped_and_nan_free():
    class Wild(Detector):
        """Returns out-of-range values and NaN; the scorer must clamp them to the contract."""

        name = "wild"

        def score(self, batch, ctx=None):
            return np.array([np.nan, 7.0, -1.0], dtype=np.float32)[: batch.num_rows]

    t = table_of([make_exchange(prompt=p) for p in ("a", "b", "c")])
    out = score_batch(t, [Wild()])
    assert out.column("sig_wild").to_pylist() == [0.0, 1.0, 0.0]
