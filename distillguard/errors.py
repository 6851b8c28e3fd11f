"""One root exception so callers can catch everything distillguard raises on bad input.

Each error carries where the bad input came from (a file, a line, a config key) because an
operator fixing a 5 GB log or a 300-line policy needs the location more than the stack.
"""

from __future__ import annotations


class DistillguardError(Exception):
    """Root of every error raised on bad input or bad configuration."""

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None):
        self.message = message
        self.source = source
        self.line = line
        where = ""
        if source is not None:
            where = f"{source}:{line}: " if line is not None else f"{source}: "
        super().__init__(where + message)


class RecordError(DistillguardError):
    """A single log record cannot be turned into an exchange; the record is quarantined, the run goes on."""


class ConfigError(DistillguardError):
    """A configuration file or option is invalid; names the offending key."""


class StoreError(DistillguardError):
    """The store directory is missing, unreadable or written by an incompatible version."""
