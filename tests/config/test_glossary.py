"""docs/glossary.md names exactly the action words the code uses, so one word keeps one meaning."""

import re
from pathlib import Path

from distillguard.policy.model import ACTIONS, RECORD_WORD

GLOSSARY = (Path(__file__).parents[2] / "docs" / "glossary.md").read_text()
CHECK_ANSWERS = ("allow", "deny", "rate_limited")


def test_policy_actions_and_recorded_words_are_the_glossary_s():
    listed = re.search(r"\*\*action\*\* \| [^|]*?: (.*?) \|", GLOSSARY).group(1)
    assert re.findall(r"`(\w+)`", listed) == list(ACTIONS)
    recorded = re.search(r"Recorded words \(`exchanges.action`\): (.*)", GLOSSARY, re.S).group(1)
    words = set(re.findall(r"`(\w+)`", recorded))
    assert set(RECORD_WORD.values()) | {"rate_limited"} <= words


def test_rate_limited_and_throttle_are_different_words_in_the_code():
    src = (Path(__file__).parents[2] / "distillguard" / "gateway" / "check.py").read_text()
    answers = set(re.findall(r'_refuse\([^,]+, api, "(\w+)"', src)) | {"allow"}
    assert answers == set(CHECK_ANSWERS)
    assert "throttle" not in answers  # a refusal over a limit is never called throttle
    proxy = (Path(__file__).parents[2] / "distillguard" / "gateway" / "proxy.py").read_text()
    assert '"throttle", reasons' not in proxy and '"rate_limited", reasons' in proxy
