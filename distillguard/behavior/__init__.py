"""Account behaviour: what each account does over time, as one feature row per account."""

from distillguard.behavior.features import account_features, build_partials

__all__ = ["account_features", "build_partials"]
