"""distillguard: detect and stop distillation attacks on model APIs."""

__version__ = "0.1.0"
