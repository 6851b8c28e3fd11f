import random

import numpy as np
import pytest

from distillguard.errors import ConfigError
from distillguard.intel import templates as tpl
from distillguard.intel.keys import canonical, parse_key
from distillguard.testing.intel_fixture import (
    BENIGN_APP_TEMPLATE,
    CODE_TEMPLATE,
    COT_TEMPLATE,
    benign_prompt,
    cot_slot,
)

KEY = parse_key("8f1c2b7d9e0a4c6b3d5e7f9a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e", "t")
OTHER = parse_key("00aa11bb22cc33dd44ee55ff66007711882299330044aa55bb66cc77dd88ee99", "t")


def _prompts(template, seed, n=12):
    rng = random.Random(seed)
    return [template.format(slot=cot_slot(rng)) for _ in range(n)]


def test_skeleton_keeps_template_text_and_drops_slots():
    sk = tpl.skeleton(_prompts(COT_TEMPLATE, 1))
    assert "expert olympiad tutor" in sk
    assert not any("chessboard" in s or "necklace" in s for s in sk)
    assert tpl.skeleton(_prompts(COT_TEMPLATE, 1, n=2)) is None  # too few prompts to tell slot from template


def test_signatures_tolerate_slot_changes_and_tell_templates_apart():
    a = tpl.signature(tpl.skeleton(_prompts(COT_TEMPLATE, 1)), KEY)
    b = tpl.signature(tpl.skeleton(_prompts(COT_TEMPLATE, 99, n=5)), KEY)  # other slots, fewer prompts
    edited = COT_TEMPLATE.replace("olympiad tutor", "competition coach")  # a small wording change
    c = tpl.signature(tpl.skeleton(_prompts(edited, 5)), KEY)
    other = tpl.signature(tpl.skeleton(_prompts(CODE_TEMPLATE, 1)), KEY)
    rng = random.Random(3)
    app = tpl.signature(tpl.skeleton([BENIGN_APP_TEMPLATE.format(slot=benign_prompt(rng)) for _ in range(10)]), KEY)
    assert tpl.jaccard(a, b) >= 0.85
    assert tpl.jaccard(a, c) >= 0.6
    assert tpl.jaccard(a, other) < 0.2
    assert tpl.jaccard(a, app) < 0.2


def test_keyed_signatures_do_not_compare_across_keys():
    sk = tpl.skeleton(_prompts(COT_TEMPLATE, 1))
    assert tpl.jaccard(tpl.signature(sk, KEY), tpl.signature(sk, OTHER)) < 0.1
    assert tpl.jaccard(tpl.signature(sk, KEY), tpl.signature(sk, KEY)) == 1.0


def test_masking_hides_per_request_values():
    assert tpl.mask("Mail bob@corp.example about ticket 4411 at https://x.example/a?b=1") == \
        tpl.mask("Mail eve@other.example about ticket 93 at http://y.example/")


def test_wire_form_round_trips_and_rejects_garbage():
    sig = tpl.signature({"a b c", "b c d"}, KEY)
    assert np.array_equal(tpl.decode(tpl.encode(sig)), sig)
    assert len(tpl.encode(sig)) == 8 * tpl.NUM_PERM
    for bad in ("", "xyz", "0123456"):
        with pytest.raises(ValueError):
            tpl.decode(bad)


def test_algorithm_is_frozen_for_partners():
    """A test vector: partners reimplementing docs/intel.md must get these numbers; so must we, forever."""
    sig = tpl.signature({"solve the following", "the following problem"}, None)
    assert tpl.encode(sig)[:32] == FROZEN_UNKEYED_PREFIX


FROZEN_UNKEYED_PREFIX = "4d3e6b5ad96a100990653149b2e551f1"


def test_numpy_minhash_equals_the_documented_algorithm():
    """Plain-Python transcription of the spec in docs/intel.md, keyed, compared value by value."""
    import hashlib
    import hmac

    shingles = tpl.shingles("Solve the following problem: 12 apples and 7 pears, step by step.")
    secret = KEY.secret

    def h(s):
        return int.from_bytes(hmac.new(secret, f"distillguard-intel-v1|shingle|{s}".encode(),
                                       hashlib.sha256).digest()[:4], "big")

    def u32(tag, i):
        return int.from_bytes(hashlib.sha256(f"distillguard-minhash-v1|{tag}|{tpl.SEED}|{i}".encode()).digest()[:4], "big")

    want = []
    for i in range(tpl.NUM_PERM):
        a, b = 1 + u32("a", i) % (2**32 - 1), u32("b", i)
        want.append(min(((a * h(s) + b) % (2**61 - 1)) % 2**32 for s in shingles))
    assert tpl.signature(shingles, KEY).tolist() == want


@pytest.mark.parametrize("kind,raw,want", [
    ("ip", " 203.0.113.7 ", "203.0.113.7"),
    ("ip", "::ffff:203.0.113.7", "203.0.113.7"),
    ("ip", "2001:DB8::1", "2001:db8::1"),
    ("ip", "not-an-ip", None),
    ("ip24", "203.0.113.7", "203.0.113.0/24"),
    ("ip24", "2001:db8:abcd:12::1", "2001:db8:abcd::/48"),
    ("asn", "AS64512", "64512"),
    ("asn", 64512, "64512"),
    ("email_domain", "Relaymail.Example.", "relaymail.example"),
    ("email_domain", "user@Bücher.example", "xn--bcher-kva.example"),
    ("user_agent", "  harvest-client/2.3   (linux) ", "harvest-client/2.3 (linux)"),
    ("ja4", " T13D_ABC ", "t13d_abc"),
])
def test_canonical_forms(kind, raw, want):
    assert canonical(kind, raw) == want


def test_keyed_hash_depends_on_key_and_kind():
    assert KEY.hash_value("ip", "203.0.113.7") != OTHER.hash_value("ip", "203.0.113.7")
    assert KEY.hash_value("ip", "x") != KEY.hash_value("user_agent", "x")
    assert KEY.hash_value("ip", "203.0.113.7") == parse_key(
        "8f1c2b7d9e0a4c6b3d5e7f9a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e", "t").hash_value("ip", "203.0.113.7")
    assert "8f1c2b" not in repr(KEY)
    with pytest.raises(ConfigError, match="too short"):
        parse_key("abcd", "t")
