"""The request classifier the policy's ``signal`` conditions read (e.g. ``sig_cot_elicitation``).

The scorer lives in `distillguard.signals` (``score_prompt(text, system_prompt=None) -> {name: score}``);
its names are given the ``sig_`` prefix here so a policy rule, the ``exchange_signals`` column and
the scan all call one signal by one name.
It is imported lazily, the first time a rule needs a score, so a gateway without that package
still runs: then there is **no request classifier**, every ``signal`` condition is false (a rule
that needs a missing signal never fires), and this is logged once.
"""

from __future__ import annotations

import logging

log = logging.getLogger("distillguard.gateway")


class RequestClassifier:
    def __init__(self):
        self._fn = None
        self._loaded = False
        self.available = False

    def load(self) -> None:
        self._loaded = True
        try:
            from distillguard.signals import score_prompt  # type: ignore[attr-defined]
        except ImportError as e:
            log.warning("no request classifier: distillguard.signals.score_prompt unavailable; "
                        "rules with a `signal` condition will not fire", extra={"error": str(e)})
            return
        self._fn = score_prompt
        self.available = True

    def score(self, prompt: str | None, system_prompt: str | None) -> dict[str, float] | None:
        if not self._loaded:
            self.load()
        if self._fn is None or not prompt:
            return None
        try:
            return {f"sig_{k}": v for k, v in self._fn(prompt, system_prompt=system_prompt).items()}
        except Exception:  # noqa: BLE001 - a classifier bug must not take the gateway down
            log.exception("request classifier failed; signal treated as unavailable")
            return None
