"""Integrations that run distillguard inside other gateways (LiteLLM)."""
