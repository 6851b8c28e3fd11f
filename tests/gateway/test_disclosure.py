"""Silent by default: a flagged account's responses look like anyone else's unless disclosure is configured."""

from __future__ import annotations

import orjson
import pytest
from openai import OpenAI

MSG = [{"role": "user", "content": "hello there"}]
LIMITS = {"account": {"requests": {"rate": 100, "per_seconds": 60}}, "throttle_factor": 0.1}


def _enforcement(tmp_path):
    f = tmp_path / "enf.jsonl"
    rows = [{"subject_type": "account", "subject_id": "flagged", "action": "throttle", "reason": "campaign",
             "source": "scan", "created_at": "2026-01-01T00:00:00Z"},
            {"subject_type": "account", "subject_id": "protected", "action": "protect_reasoning", "reason": "cot",
             "source": "scan", "created_at": "2026-01-01T00:00:00Z"}]
    f.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return f


def _headers(gw, account):
    c = OpenAI(base_url=gw.url, api_key=gw.keys[account], max_retries=0)
    return c.chat.completions.with_raw_response.create(model="m", messages=MSG).headers


@pytest.mark.parametrize("disclose", [False, True])
def test_throttled_and_protected_responses_reveal_nothing_unless_configured(make_gateway, tmp_path, disclose):
    gw = make_gateway(accounts=("flagged", "protected", "clean"), enforcement_file=str(_enforcement(tmp_path)),
                      limits=LIMITS, disclosure={"action_header": disclose, "throttled_limits": disclose})
    clean, flagged, protected = (_headers(gw, a) for a in ("clean", "flagged", "protected"))
    # the decision really applies in both cases
    assert gw.gateway.snapshot.decision("account", "flagged", 2e9).action == "throttle"
    if not disclose:
        for h in (clean, flagged, protected):
            assert not any(k.lower().startswith("x-distillguard-action") for k in h)
        assert flagged["x-ratelimit-limit-requests"] == clean["x-ratelimit-limit-requests"] == "100"
        # the same used share: one request of the (throttled) bucket is ten of the nominal one
        assert int(flagged["x-ratelimit-remaining-requests"]) > 50
    else:
        assert flagged["x-distillguard-action"] == "throttle"
        assert protected["x-distillguard-action"] == "protect_reasoning"
        assert "x-distillguard-action" not in clean
        assert flagged["x-ratelimit-limit-requests"] == "10" and clean["x-ratelimit-limit-requests"] == "100"


def test_blocked_response_has_no_action_header_by_default(make_gateway, tmp_path):
    f = tmp_path / "enf.jsonl"
    f.write_bytes(orjson.dumps({"subject_type": "account", "subject_id": "acct-1", "action": "block",
                                "created_at": "2026-01-01T00:00:00Z"}) + b"\n")
    gw = make_gateway(enforcement_file=str(f))
    c = OpenAI(base_url=gw.url, api_key=gw.keys["acct-1"], max_retries=0)
    r = c.chat.completions.with_raw_response
    import openai

    with pytest.raises(openai.PermissionDeniedError) as e:
        r.create(model="m", messages=MSG)
    assert e.value.code == "account_blocked" and "x-distillguard-action" not in e.value.response.headers
