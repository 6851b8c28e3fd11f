"""Property tests: hostile input through every reader via the real ingest loop.

Whatever arrives (random JSON, sample records with parts swapped for random values, truncated
lines, random bytes), the run must finish, every non-blank line must be accounted for exactly
once (stored, mapped to nothing, or quarantined), and the valid lines mixed in must all be stored.
"""

from __future__ import annotations

import functools
import json
import os

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distillguard.ingest import ingest_paths
from distillguard.store import Store
from tests.ingest.helpers import DATA

#: DG_FUZZ_EXAMPLES=200 runs a longer search locally; the suite keeps it short.
#: Which sample lines are valid on their own for each reader.
VALID_FILES = {
    "native": ["native_exchanges.jsonl"],
    "accounts": ["accounts.jsonl"],
    "openai": ["openai_chat.jsonl", "openai_responses.jsonl"],
    "anthropic": ["anthropic_messages.jsonl"],
    "litellm": ["litellm_payloads.jsonl"],
    "otel": ["otel_genai.jsonl"],
}
KEYS = sorted({
    "request", "response", "metadata", "timestamp", "messages", "content", "role", "type", "text", "choices",
    "message", "usage", "tools", "tool_calls", "function", "name", "input", "output", "model", "system", "thinking",
    "custom_id", "body", "url", "method", "result", "params", "error", "resourceSpans", "scopeSpans", "spans",
    "attributes", "key", "value", "stringValue", "intValue", "arrayValue", "kvlistValue", "startTimeUnixNano",
    "call_type", "startTime", "endTime", "model_parameters", "exchange_id", "ts", "account_id", "turns",
    "max_tokens", "temperature", "created", "id", "status_code", "headers", "parts", "user", "account", "user_id",
    "reasoning", "reasoning_content", "instructions", "summary", "prompt_tokens", "input_tokens", "created_at",
    "events", "object", "delta", "index", "content_block",
})

leaves = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
          | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12) | st.sampled_from(KEYS))
json_values = st.recursive(
    leaves,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), c, max_size=5),
    max_leaves=25,
)


@functools.cache
def _valid_lines(fmt: str) -> tuple[bytes, ...]:
    if fmt == "quarantine":  # quarantine records wrapping valid records of other formats
        return tuple(orjson.dumps({"path": "orig.jsonl", "line": i + 1, "reason": "test", "raw": line.decode()})
                     for i, line in enumerate(_valid_lines("openai") + _valid_lines("otel")))
    return tuple(line.rstrip(b"\n") for name in VALID_FILES[fmt]
                 for line in (DATA / name).read_bytes().splitlines() if line.strip())


def _dumps(obj) -> bytes:
    """stdlib json: it also writes integers beyond 64 bits, which orjson refuses (and must quarantine)."""
    return json.dumps(obj).encode()


def _replace(obj, key, value):
    """Swap the first value under `key` (anywhere in the tree) for `value`."""
    if isinstance(obj, dict):
        if key in obj:
            return {**obj, key: value}, True
        for k, v in obj.items():
            new, done = _replace(v, key, value)
            if done:
                return {**obj, k: new}, True
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            new, done = _replace(v, key, value)
            if done:
                return obj[:i] + [new] + obj[i + 1:], True
    return obj, False


def _line_strategy(fmt: str):
    valid = st.sampled_from(_valid_lines(fmt))

    @st.composite
    def mutated(draw):
        obj = orjson.loads(draw(valid))
        for key, value in draw(st.lists(st.tuples(st.sampled_from(KEYS), json_values), min_size=1, max_size=3)):
            obj, _ = _replace(obj, key, value)
        return _dumps(obj)

    @st.composite
    def truncated(draw):
        line = draw(valid)
        return line[: draw(st.integers(min_value=0, max_value=max(len(line) - 1, 0)))]

    return st.one_of(valid, mutated(), truncated(), json_values.map(_dumps),
                     st.binary(max_size=40), st.just(b""), st.just(b"   "), st.just(b"\xef\xbb\xbf"),
                     valid.map(lambda line: b"\xef\xbb\xbf" + line))


def _nonblank(data: bytes) -> int:
    """Lines holding anything but whitespace and a byte-order mark."""
    return sum(1 for line in data.split(b"\n") if line.strip().removeprefix(b"\xef\xbb\xbf").strip())


def _expected_ids(fmt: str) -> dict[bytes, set[str]]:
    """Ids each valid sample line yields on its own, from the reader and the row normaliser directly."""
    from distillguard.ingest.normalize import normalize_exchange
    from distillguard.ingest.registry import RecordContext, get_reader

    reader = get_reader(fmt)
    out = {}
    for i, line in enumerate(_valid_lines(fmt)):
        rows = reader.to_exchanges(orjson.loads(line), RecordContext("ref.jsonl", i + 1, line, {}))
        key = "account_id" if fmt == "accounts" else "exchange_id"
        out[line] = {(r if fmt == "accounts" else normalize_exchange(r))[key] for r in rows}
    return out


def _ids(store: Store, fmt: str) -> set[str]:
    if fmt == "accounts":
        return {r[0] for r in store.accounts().select("account_id").fetchall()} if any(
            (store.path / "accounts").iterdir()) else set()
    return {r[0] for r in store.exchanges(columns=["exchange_id"]).fetchall()} if store.has_exchanges() else set()


_REF: dict[str, dict[bytes, set[str]]] = {}


def _check(fmt: str, lines: list[bytes], tmp_path_factory, check_valid: bool = True) -> None:
    d = tmp_path_factory.mktemp("fuzz")
    data = b"\n".join(lines) + b"\n"
    (d / "in.jsonl").write_bytes(data)
    store = Store(d / "store", create=True)
    res = ingest_paths(store, [d / "in.jsonl"], fmt=fmt)  # must not raise
    f = res.files[0]
    assert f.lines == _nonblank(data)
    assert f.lines == f.stored_lines + f.empty + f.quarantined_lines
    assert f.quarantined >= f.quarantined_lines
    if fmt != "accounts":
        assert len(_ids(store, fmt)) <= res.records
        stored = store.exchanges().count("*").fetchall()[0][0] if store.has_exchanges() else 0
        assert stored == res.records
    if check_valid:
        ref = _REF.setdefault(fmt, _expected_ids(fmt))
        got = _ids(store, fmt)
        for line in lines:
            if line in ref:
                assert ref[line] <= got, f"valid {fmt} line lost: {line[:120]!r}"


@pytest.mark.slow
@pytest.mark.parametrize("fmt", [*sorted(VALID_FILES), "quarantine"])
def test_every_reader_survives_hostile_lines_and_keeps_valid_ones(fmt, tmp_path_factory):
    # Few examples of many lines each: every example is a full ingest run (store, catalog, Parquet).
    @settings(max_examples=int(os.environ.get("DG_FUZZ_EXAMPLES", "8")), deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(first=st.sampled_from(_valid_lines(fmt)), rest=st.lists(_line_strategy(fmt), min_size=5, max_size=30))
    def run(first, rest):
        # A valid first line keeps the file in JSON Lines mode (a leading '[' would make it one document).
        _check(fmt, [first, *rest], tmp_path_factory)

    run()


@pytest.mark.slow
def test_auto_detection_on_garbage_never_crashes(tmp_path_factory):
    @settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(lines=st.lists(st.one_of(json_values.map(_dumps), st.binary(max_size=30),
                                    st.sampled_from(_valid_lines("openai") + _valid_lines("otel"))), max_size=10))
    def run(lines):
        d = tmp_path_factory.mktemp("auto")
        data = b"\n".join(lines) + b"\n"
        (d / "in.jsonl").write_bytes(data)
        res = ingest_paths(Store(d / "store", create=True), [d / "in.jsonl"])
        f = res.files[0]
        assert f.lines == f.stored_lines + f.empty + f.quarantined_lines
        if not data.lstrip().startswith(b"["):  # otherwise read as one JSON document
            assert f.lines == _nonblank(data) or f.lines == 1

    run()


def test_every_registered_reader_is_fuzzed():
    from distillguard.ingest.registry import all_readers

    assert set(all_readers()) == set(VALID_FILES) | {"quarantine"}
