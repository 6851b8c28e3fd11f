import json

import orjson
from typer.testing import CliRunner

from distillguard.cli import _load_stage_clis, app

if not any(getattr(g, "name", None) == "intel" for g in app.registered_groups):
    _load_stage_clis()


def test_cli_export_import_match_flow(two, tmp_path, monkeypatch):
    runner = CliRunner()
    keyfile = tmp_path / "group.key"
    res = runner.invoke(app, ["intel", "keygen", "--out", str(keyfile)])
    assert res.exit_code == 0, res.output
    assert (keyfile.stat().st_mode & 0o777) == 0o600
    res = runner.invoke(app, ["intel", "keygen", "--out", str(keyfile)])  # no silent overwrite
    assert res.exit_code != 0 and "refusing to overwrite" in str(res.exception)

    bundle = tmp_path / "b.json"
    a, b = str(two.store_a.path), str(two.store_b.path)
    res = runner.invoke(app, ["intel", "export", "--store", a, "--campaign", two.campaign_id, "--out", str(bundle),
                              "--group-key-file", str(keyfile), "--tlp", "green", "--provider-name", "[b]Evil[/b]",
                              "--publish", "--json"])
    assert res.exit_code == 0, res.output
    rep = orjson.loads(res.stdout)
    assert rep["hashed"] and rep["n_indicators"] > 0 and rep["published"] == rep["objects"]
    exports = two.store_a.read_table("intel_exports").to_pylist()
    assert len(exports) == 1 and exports[0]["hashed"] and exports[0]["tlp"] == "green"
    assert exports[0]["indicators"] == rep["n_indicators"]
    assert any(o["name"] == "[b]Evil[/b]" for o in json.loads(bundle.read_text())["objects"] if o["type"] == "identity")

    cfg = tmp_path / "intel.yaml"
    cfg.write_text("intel:\n  partners:\n    - {name: Provider A, trust: 1.0}\n")
    res = runner.invoke(app, ["intel", "import", str(bundle), "--store", b, "--partner", "Provider A",
                              "--config", str(cfg)])
    assert res.exit_code == 0 and "imported" in res.output and "from partner Provider A" in res.output, res.output
    # The bundle's own name for itself is shown, literally, but is not what the indicators are stored under.
    assert "[b]Evil[/b]" in res.output
    assert {r["source"] for r in two.store_b.read_table("intel_indicators").to_pylist()} == {"Provider A"}

    # The key may also come from the environment.
    monkeypatch.setenv("DISTILLGUARD_INTEL_GROUP_KEY", keyfile.read_text().strip())
    res = runner.invoke(app, ["intel", "match", "--store", b, "--json", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    d = orjson.loads(res.stdout)
    assert set(two.b_attack) <= set(d["applied"]["newly_flagged"])
    res = runner.invoke(app, ["intel", "match", "--store", b, "--config", str(cfg)])
    assert res.exit_code == 0 and "accounts matching partner indicators" in res.output
    assert "Provider A" in res.output


def test_cli_errors_are_clear(two, tmp_path, monkeypatch):
    monkeypatch.delenv("DISTILLGUARD_INTEL_GROUP_KEY", raising=False)
    monkeypatch.delenv("DISTILLGUARD_INTEL_GROUP_KEY_FILE", raising=False)
    runner = CliRunner()
    res = runner.invoke(app, ["intel", "export", "--store", str(two.store_a.path), "--confirmed",
                              "--out", str(tmp_path / "x.json")])
    assert res.exit_code != 0 and "no group key" in str(res.exception)
    res = runner.invoke(app, ["intel", "export", "--store", str(two.store_a.path), "--out", str(tmp_path / "x.json"),
                              "--raw"])
    assert "exactly one of" in str(res.exception)
