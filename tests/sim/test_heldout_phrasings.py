"""The held-out phrasing world: same campaigns as the default world, attack prompts worded independently.

It only measures something if (a) its campaigns resolve to the alternative profiles, (b) those profiles
really are worded differently from the originals, and (c) it still simulates.
"""

from __future__ import annotations

import re

import pyarrow.parquet as pq
import pytest

from distillguard.sim.config import DATA_DIR, load_world
from distillguard.sim.content import load_profiles
from distillguard.sim.run import simulate
from distillguard.sim.world import check_references
from distillguard.store import Store

_SLOT = re.compile(r"\{[a-z_][a-z0-9_]*\}")


def _campaign_profiles(spec) -> set[str]:
    return {name for c in spec.campaigns for name in c.content}


def _word_grams(text: str, n: int = 4) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", _SLOT.sub(" ", text.lower()))
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def test_same_world_with_only_the_attack_wording_swapped():
    held, held_base = load_world("heldout_phrasings")
    default, _ = load_world("default")
    check_references(held, held_base)
    assert held.campaigns == default.campaigns and held.personas == default.personas
    assert held.prompt_files == default.prompt_files and held.seed == default.seed
    assert "benign/profiles.yaml" in held.content_files
    attack_files = [f for f in held.content_files if f.startswith("attacks/")]
    assert attack_files and all(f.startswith("attacks/alt/") for f in attack_files)
    alt = load_profiles(attack_files, held_base)
    assert _campaign_profiles(held) <= set(alt)


def test_alternative_templates_are_not_the_originals():
    held, base = load_world("heldout_phrasings")
    default, _ = load_world("default")
    alt = load_profiles([f for f in held.content_files if f.startswith("attacks/")], base)
    orig = load_profiles([f for f in default.content_files if f.startswith("attacks/")], DATA_DIR)
    orig_texts = [t for p in orig.values() for ts in p.templates.values() for t in ts]
    orig_texts += [s for p in orig.values() for s in p.system_prompts]
    orig_grams = set().union(*(_word_grams(t) for t in orig_texts))
    for name in _campaign_profiles(held):
        a, o = alt[name], orig[name]
        assert set(a.languages) == set(o.languages), name  # same language mix, different words
        for lang, templates in a.templates.items():
            # a bare "{task}" (raw task, no wrapper) is a habit rather than a phrasing
            shared = (set(templates) & set(o.templates.get(lang, []))) - {"{task}"}
            assert not shared, (name, lang, shared)
            assert len(templates) >= 0.5 * len(o.templates.get(lang, [])), (name, lang)
        assert not set(a.system_prompts) & set(o.system_prompts), name
        grams = set().union(*(_word_grams(t) for ts in a.templates.values() for t in ts))
        # a few stock phrases ("step by step", "as a unified diff") may recur; whole sentences must not
        assert len(grams & orig_grams) <= 0.1 * len(grams), name


@pytest.mark.slow
def test_heldout_world_simulates_at_a_tiny_scale(tmp_path):
    spec, base = load_world("heldout_phrasings")
    out = tmp_path / "w"
    simulate(spec.model_copy(update={"days": 2}), base, out, scale=0.002, workers=1)
    con = Store(out).connect()
    con.register("labels", pq.read_table(out / "labels.parquet"))
    per_campaign = dict(con.sql("""SELECT l.campaign_id, count(*) FROM exchanges e JOIN labels l USING (account_id)
                                   WHERE l.role = 'attacker' GROUP BY 1""").fetchall())
    assert set(per_campaign) == {c.id for c in spec.campaigns} and min(per_campaign.values()) > 0
    # the attack prompts carry the held-out wording, and no original wrapper sentence shows up in them
    default, _ = load_world("default")
    orig = load_profiles([f for f in default.content_files if f.startswith("attacks/")], DATA_DIR)
    alt = load_profiles([f for f in spec.content_files if f.startswith("attacks/")], base)
    orig_fixed = _fixed_parts(orig, 40)
    alt_fixed = _fixed_parts(alt, 12)
    prompts = [r[0].lower() for r in con.sql("""SELECT prompt FROM exchanges e JOIN labels l USING (account_id)
                                                WHERE l.role = 'attacker'""").fetchall()]
    assert len(prompts) > 500
    assert not [p for p in prompts if any(f in p for f in orig_fixed)]
    with_alt = sum(any(f in p for f in alt_fixed) for p in prompts)
    assert with_alt > 0.5 * len(prompts)


def _fixed_parts(profiles, min_chars: int) -> set[str]:
    """The literal text between slots of every template, lower-cased (wrappers are sometimes lower-cased)."""
    return {part.strip().lower() for p in profiles.values() for ts in p.templates.values() for t in ts
            for part in _SLOT.split(t) if len(part.strip()) >= min_chars}
