from distillguard.signals import score_texts
from distillguard.signals.template import skeleton_text

WRAP_A = ("You are a meticulous solver. Think through the problem below and put every intermediate thought in "
          "<think> tags.\n\n{q}\n\nEnd with the final answer after ####.")
WRAP_B = "Translate the following sentence into formal German and explain any idioms you used: {q}"
WRAP_C = "Quick question from {name}: {q} Please answer in one short paragraph, no bullet points, thanks!"

QUESTIONS = [
    "A farmer has 17 cows and buys 5 more each month. How many cows will he have after 9 months if 3 die?",
    "Lucia reads 24 pages a day. Her book has 480 pages and she has already read 96. How many more days does she need?",
    "A tank holds 1200 liters. A pipe fills 35 liters per minute while another drains 10. When is it full?",
    "Tom bought 4 shirts at $18 each and 2 pairs of jeans at $42 each. He paid with $200. What change did he get?",
]


def _keys(texts):
    return list(score_texts(texts, detectors=["task_dataset"])["template_key"])


def test_slot_variants_share_a_key():
    # Same wrapper, different payloads, numbers, names and quoted spans: one template.
    a = _keys([WRAP_A.format(q=q) for q in QUESTIONS])
    assert len(set(a)) == 1 and a[0] is not None
    c = _keys([WRAP_C.format(name=n, q="What is " + str(k) + " times " + str(k + 7) + "?")
               for n, k in (("Alice", 3), ("Bob", 19), ("Chidi", 250))])
    assert len(set(c)) == 1 and c[0] is not None
    quoted = _keys(['Summarise the quoted review in one sentence and rate its tone: "' + r + '"'
                    for r in ("Great phone, battery lasts two days.", "Terrible support, never again!",
                              "It is fine I guess, nothing special about it at all.")])
    assert len(set(quoted)) == 1


def test_different_templates_get_different_keys():
    q = QUESTIONS[0]
    keys = _keys([WRAP_A.format(q=q), WRAP_B.format(q=q), WRAP_C.format(name="Dana", q=q),
                  "Please help me with my homework: " + q])
    assert len(set(keys)) == 4


def test_unrelated_benign_prompts_rarely_collide():
    prompts = [
        "What are good exercises for lower back pain?", "Write a limerick about a cat who loves jazz.",
        "How do I center a div in CSS?", "Explain the difference between a virus and bacteria.",
        "Plan a three day trip to Lisbon on a budget.", "What is the tallest mountain in Africa?",
        "Give me a recipe for vegan lasagna with spinach.", "How does compound interest work?",
        "Suggest names for a coffee shop near the sea.", "Why is the sky blue during the day but red at sunset?",
        "What should I pack for a week of hiking in Scotland?", "How do vaccines train the immune system?",
    ]
    keys = [k for k in _keys(prompts) if k is not None]
    assert len(set(keys)) == len(keys) >= 10


def test_too_short_prompt_has_no_key():
    assert _keys(["hi", "42", ""]) == [None, None, None]


def test_skeleton_masks_slots():
    sk = skeleton_text('Dear Maria, the invoice "INV-2291" for 1,250.00 EUR is at https://x.example/i/9 ```code```')
    assert "maria" not in sk and "1,250" not in sk and "https" not in sk and "inv-2291" not in sk
    assert "qqnum" in sk and "qqquote" in sk and "qqurl" in sk and "qqcode" in sk


def test_prefix_before_colon_or_greeting_is_the_template():
    # Payloads not in any task index, behind a "label:" prefix or a greeting comma.
    tasks = ["How do I reverse a linked list in place without using extra memory at all?",
             "What is the fastest way to parse a large JSON file line by line in Go?",
             "Why does my React component render twice in development mode with hooks?"]
    colon = _keys(["Solve in Python: " + t for t in tasks])
    assert len(set(colon)) == 1 and colon[0] is not None
    greet = _keys(["hey, " + t + "\nthanks a lot in advance" for t in tasks])
    assert len(set(greet)) == 1 and greet[0] is not None
    assert colon[0] != greet[0]
    # a bare greeting in front of a question is no template at all
    assert _keys(["hey, " + t for t in tasks]) == [None, None, None]


def test_sentence_start_after_comma_is_not_a_name():
    sk = skeleton_text("hey, Please help me. I met Alice yesterday")
    assert "please" in sk and "qqname" in sk and "alice" not in sk


def test_key_strings_match_the_formatted_hash_pair():
    import numpy as np

    from distillguard.signals.template import _key_strings

    rng = np.random.default_rng(3)
    k1 = rng.integers(0, 2**63, 50, dtype=np.uint64) * np.uint64(2)  # top bit set on some
    k2 = rng.integers(0, 2**63, 50, dtype=np.uint64)
    docs = np.arange(0, 100, 2)
    ok = rng.random(50) < 0.7
    got = _key_strings(100, docs, k1, k2, ok).to_pylist()
    want = [None] * 100
    for d, x, y, o in zip(docs.tolist(), k1.tolist(), k2.tolist(), ok.tolist(), strict=True):
        if o:
            want[d] = f"t{x >> 16:012x}{y >> 16:012x}"
    assert got == want
    assert _key_strings(3, docs[:0], k1[:0], k2[:0], ok[:0]).to_pylist() == [None] * 3


def test_span_triggers_find_every_row_a_substring_search_finds():
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from distillguard.signals.template import SPAN_MASKS, _rows_containing

    texts = pa.array(["plain", "see https://x.org", "mail a@b.co", "say \"hi\" now", "“quoted”", "«fr»", "`code`",
                      "é“", "", None] * 3).slice(2)
    # a trigger split across two rows ("... :" then "//...") may mark the first: a regex run that finds nothing
    straddle = pa.array(["ends with :", "//starts"])
    for _, _, triggers in SPAN_MASKS:
        for arr, exact in ((texts, True), (straddle, False)):
            want = np.zeros(len(arr), dtype=bool)
            for t in triggers:
                want |= np.asarray(pc.fill_null(pc.match_substring(arr, t), False))
            got = _rows_containing(arr, triggers)
            assert (got >= want).all()
            if exact:
                assert (got == want).all()


def test_span_masks_on_python_re_match_arrow_re2():
    """The masks moved from Arrow's RE2 to Python's ``re`` give exactly RE2's result: quotes of every
    length around the 300-character bound, empty and unclosed quotes, line breaks, mixed quote styles,
    non-ASCII text."""
    import random

    import pyarrow as pa
    import pyarrow.compute as pc

    from distillguard.signals.template import PYTHON_RE_MASKS, SPAN_MASKS, mask_spans

    rng = random.Random(13)
    alphabet = list("ab \n\"“”«»é漢—") + ["\u00a0", "\t"]
    texts = ["say \"hi\" now", "\"\"", "\"" + "x" * 300 + "\"", "\"" + "x" * 301 + "\" then \"y\"",
             "\"" + "é" * 300 + "\"", "“a”“b”", "«" + "z" * 299 + "»", "\"open", "\"a\nb\"", "“mixed\"", ""]
    for _ in range(400):
        n = rng.choice([5, 40, 320, 700])
        texts.append("".join(rng.choice(alphabet) if rng.random() < 0.3 else "x" for _ in range(n)))
    arr = pa.array(texts)
    assert PYTHON_RE_MASKS
    want = arr
    for pattern, repl, _ in SPAN_MASKS:
        want = pc.replace_substring_regex(want, pattern, repl)
    assert mask_spans(arr).to_pylist() == want.to_pylist()
