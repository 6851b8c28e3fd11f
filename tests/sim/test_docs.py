from distillguard.sim.docgen import DOC, SCHEMA, render_doc, schema_text


def test_reference_and_schema_in_sync():
    """docs/simulator.md's reference and docs/world.schema.json are generated; regenerate with
    `python -m distillguard.sim.docgen` after changing the config models."""
    text = DOC.read_text()
    assert render_doc(text) == text
    assert SCHEMA.read_text() == schema_text()


def test_documented_examples_validate():
    import yaml

    from distillguard.sim.config import CampaignSpec

    text = DOC.read_text()
    block = text[text.index("campaigns:\n  - id: camp-example"):]
    block = block[: block.index("```")]
    c = CampaignSpec.model_validate(yaml.safe_load(block)["campaigns"][0])
    assert c.proxy_network and c.ban_evasion and c.rate.at_limit
