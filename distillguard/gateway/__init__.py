"""Inline gateway: an OpenAI/Anthropic-compatible proxy that enforces policy, limits, reasoning protection, and records."""

from distillguard.gateway.app import build_app
from distillguard.gateway.config import GatewayConfig, load_config

__all__ = ["GatewayConfig", "build_app", "load_config"]
