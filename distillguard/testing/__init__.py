"""Builders for test data, shared by our tests and by plugin authors' tests."""

from distillguard.testing.factory import make_account, make_exchange, write_world

__all__ = ["make_account", "make_exchange", "write_world"]
