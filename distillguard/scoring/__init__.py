"""Risk: how likely an account or a cluster is harvesting the model, with reasons in words."""

from distillguard.scoring.risk import score_clusters
from distillguard.scoring.suspicion import account_suspicion

__all__ = ["account_suspicion", "score_clusters"]
