"""Terminal output shared by every command.

Scripts pipe our output: when stdout is not a terminal, Rich would wrap tables at 80 columns and cut ids, so
off a terminal the consoles print at their natural width without colour codes. Messages that quote
attacker-controlled or user-supplied text (patterns like ``^sig_[a-z0-9_]+$``, prompts, file names) go through
`plain` so Rich markup cannot eat parts of them.
"""

from __future__ import annotations

import sys

from rich.console import Console
from rich.markup import escape

#: Width used off a terminal: wide enough that no table or id is ever wrapped or cut.
PIPE_WIDTH = 100_000


def make_console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=PIPE_WIDTH, soft_wrap=True, no_color=True, highlight=False)


def plain(text: object) -> str:
    """Escape text so Rich prints it verbatim."""
    return escape(str(text))


def print_json(obj: object) -> None:
    """One JSON document on stdout, for scripts (`--json`); never styled, never wrapped."""
    import orjson

    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")


#: Shown where a first-flag / time-to-detect value is empty because the scan was not a replay: a full scan
#: judges all traffic at once, so it has no "when"; `scan --replay` evaluates step by step and records it.
REPLAY_HINT = "— (run scan --replay)"
#: The same, for JSON (beside the null value) and prose.
REPLAY_NOTE = ("first-flag times exist only after a replay scan (distillguard scan --replay); "
               "a full scan judges all traffic at once")


def sentences(reasons: list[str] | None) -> str:
    """Reasons as prose: each is a sentence that may open with a capital ("Of the campaign's 25 accounts, …"),
    so they are joined as sentences, not with semicolons that would leave a capital mid-sentence."""
    out = []
    for r in reasons or []:
        r = str(r).strip()
        if r:
            out.append(r[0].upper() + r[1:] + ("" if r[-1] in ".!?" else "."))
    return " ".join(out)
