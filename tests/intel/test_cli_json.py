"""`intel keygen --json` and `intel publish --json`: one JSON document a script can read (never the key)."""

import orjson
from typer.testing import CliRunner

from distillguard.cli import _load_stage_clis, app

if not any(getattr(g, "name", None) == "intel" for g in app.registered_groups):
    _load_stage_clis()


def test_keygen_and_publish_json(two, tmp_path):
    runner = CliRunner()
    keyfile = tmp_path / "group.key"
    res = runner.invoke(app, ["intel", "keygen", "--out", str(keyfile), "--json"])
    assert res.exit_code == 0, res.output
    rep = orjson.loads(res.stdout)
    assert rep["key_file"] == str(keyfile) and len(rep["key_id"]) >= 8
    assert keyfile.read_text().strip() not in res.stdout  # the key is never printed
    bundle = tmp_path / "b.json"
    res = runner.invoke(app, ["intel", "export", "--store", str(two.store_a.path), "--campaign", two.campaign_id,
                              "--out", str(bundle), "--group-key-file", str(keyfile), "--json"])
    assert res.exit_code == 0, res.output
    objects = orjson.loads(res.stdout)["objects"]
    res = runner.invoke(app, ["intel", "publish", str(bundle), "--store", str(two.store_a.path), "--json"])
    assert res.exit_code == 0, res.output
    rep = orjson.loads(res.stdout)
    assert rep["published"] == objects and rep["collection"]
    res = runner.invoke(app, ["intel", "publish", str(bundle), "--store", str(two.store_a.path), "--json"])
    assert orjson.loads(res.stdout)["published"] == 0  # already there
