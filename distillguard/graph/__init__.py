"""Coordination: what accounts share, as an edge table, and the communities and dense blocks in it."""

from distillguard.graph.communities import communities
from distillguard.graph.denseblock import dense_blocks
from distillguard.graph.edges import build_graph_partials, coordination_edges, incidence

__all__ = ["build_graph_partials", "incidence", "coordination_edges", "communities", "dense_blocks"]
