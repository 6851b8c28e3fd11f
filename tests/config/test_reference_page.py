"""docs/configuration.md is generated from the configuration models: it lists every key and cannot drift."""

import re
from pathlib import Path

from distillguard.config import env_var
from distillguard.configdoc import render, rows, sections

DOC = Path(__file__).parents[2] / "docs" / "configuration.md"


def test_reference_page_is_up_to_date():
    """Regenerate with `python -m distillguard.configdoc` after changing a configuration model."""
    assert DOC.read_text() == render()


def test_every_key_has_a_type_default_variable_and_meaning():
    for section, model, _ in sections():
        for row in rows(section, model):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", row.strip().strip("|"))]
            if cells[1] == "section":
                continue
            key, typ, default, env, meaning = cells[:5]
            assert typ and default and env and meaning, f"{section}: {row}"


def test_the_page_names_the_variable_that_really_overrides_each_key(monkeypatch):
    """Spot-check rows against the loader: the listed variable changes the key."""
    from distillguard.gateway.config import load_config

    text = DOC.read_text()
    name = env_var("gateway", "recorder.queue_max")
    assert f"`{name}`" in text
    monkeypatch.setenv(name, "1234")
    assert load_config().recorder.queue_max == 1234


def test_an_option_is_never_taken_for_the_output_path(tmp_path, monkeypatch, capsys):
    """`configdoc --help` used to write a file named `--help` in the working directory."""
    from distillguard.configdoc import main

    monkeypatch.chdir(tmp_path)
    assert main(["--help"]) == 0
    assert main(["--out"]) == 2
    assert "usage" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []
    assert main([str(tmp_path / "ref.md")]) == 0
    assert "## " in (tmp_path / "ref.md").read_text()
