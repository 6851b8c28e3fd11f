"""Hot reload: a policy file is re-read when it changes; a bad edit keeps the last good policy.

Polling the file's (mtime, size) is deliberate: it works on every filesystem, inside containers
and on ConfigMap-style symlink swaps, where inotify events are unreliable.
"""

from __future__ import annotations

import logging
from pathlib import Path

from distillguard.errors import ConfigError
from distillguard.policy.enforcement import file_mtime
from distillguard.policy.model import DEFAULT_POLICY, Policy, load_policy

log = logging.getLogger("distillguard.policy")


class PolicyHolder:
    """Holds the policy in force; ``check()`` reloads it when the file changed."""

    def __init__(self, path: Path | None):
        self.path = Path(path) if path else None
        self.policy: Policy = DEFAULT_POLICY
        self.last_error: str | None = None
        self.version = 0
        self._stamp = None
        if self.path is not None:
            self.policy = load_policy(self.path)  # start-up: a bad policy is fatal
            self._stamp = file_mtime(self.path)
            self.version = 1

    def check(self) -> bool:
        """Reload if changed. Returns True when a new policy took effect."""
        if self.path is None:
            return False
        stamp = file_mtime(self.path)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            new = load_policy(self.path)
        except ConfigError as e:
            self.last_error = str(e)
            log.error("policy reload refused; previous policy stays in force", extra={"error": str(e)})
            return False
        self.policy = new
        self.last_error = None
        self.version += 1
        log.info("policy reloaded", extra={"path": str(self.path), "version": self.version, "mode": new.mode,
                                           "rules": len(new.rules)})
        return True
