"""Per-exchange signals: pluggable detectors scoring each exchange, plus template and task-item keys.

Public API: ``score_batch``, ``score_texts``, ``score_prompt``, ``run_signals``, the ``Detector``
base class and ``register`` for plugins. See docs/signals.md.
"""

from distillguard.signals.registry import REGISTRY, Detector, detectors, register
from distillguard.signals.score import (
           TABLE,
           output_schema,
           run_signals,
           score_batch,
           score_prompt,
           score_texts,
)

__all__ = ["REGISTRY", "Detector", "detectors", "register", "TABLE", "output_schema", "run_signals", "score_batch",
           "score_prompt", "score_texts"]
