"""The investigation console: a web app where an analyst reviews campaigns and decides.

Read side (``data``) answers every page from the detection tables plus pre-built ``console_*``
aggregates (``aggregates``); write side (``actions``) turns a decision into appended
``enforcement``, ``analyst_labels`` and ``audit_log`` rows; ``app`` serves both behind login,
roles and CSRF checks. See docs/console.md.
"""
