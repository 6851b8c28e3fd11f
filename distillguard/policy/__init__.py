"""Policy: which enforcement decisions and live signals lead to which gateway action (YAML, hot-reloaded)."""

from distillguard.policy.engine import Decision, RequestFacts, evaluate
from distillguard.policy.model import ACTIONS, DEFAULT_POLICY, RECORD_WORD, Policy, load_policy, parse_policy
from distillguard.policy.reload import PolicyHolder

__all__ = ["ACTIONS", "DEFAULT_POLICY", "RECORD_WORD", "Decision", "Policy", "PolicyHolder", "RequestFacts",
           "evaluate", "load_policy", "parse_policy"]
