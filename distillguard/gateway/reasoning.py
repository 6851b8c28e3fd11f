"""Reasoning protection: hide chain-of-thought from marked accounts, and bind every reasoning block.

Distillers want the reasoning more than the answer, so for accounts the policy marks, reasoning
fields, thinking blocks, Responses reasoning items and inline ``<think>`` spans are removed or cut
to a short extractive summary, and an answer that repeats the hidden reasoning verbatim (checked
by word n-gram overlap) is withheld.

Binding: every reasoning block the gateway returns carries an HMAC over (account, conversation,
text). Clients that send reasoning back (multi-turn, tool loops) must send it unchanged; a block
issued to another account, moved to another conversation or edited no longer verifies. That closes
the disclosed trick of replaying summarised or harvested reasoning across sessions. Where the
upstream has its own signature (Anthropic ``signature``, Responses ``encrypted_content``) it is
kept inside ours and restored before forwarding, so the upstream's check still works.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets

from distillguard.gateway.extract import CHAT, MESSAGES, RESPONSES, as_list, as_str, carried_text
from distillguard.policy.model import ReasoningPolicy

WITHHELD_NOTICE = "[answer withheld by policy: it repeated the model's hidden reasoning]"
_WORD = re.compile(r"\w+")
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.S)
SIG_PREFIX = "dg1."


class Binder:
    """HMAC binding of reasoning text to (account, conversation)."""

    def __init__(self, secret: bytes | None = None, secret_env: str | None = None):
        if secret is None and secret_env:
            v = os.environ.get(secret_env)
            secret = v.encode() if v else None
        self.secret = secret or secrets.token_bytes(32)
        self.ephemeral = secret is None

    def _tag(self, account: str) -> str:
        return hmac.new(self.secret, b"acct\x1f" + account.encode(), hashlib.sha256).hexdigest()[:12]

    def _mac(self, account: str, conv: str, text: str) -> str:
        digest = hashlib.sha256(text.encode()).hexdigest()
        msg = f"{account}\x1f{conv}\x1f{digest}".encode()
        return hmac.new(self.secret, msg, hashlib.sha256).hexdigest()[:32]

    def sign(self, account: str, conv: str, text: str, upstream: str | None = None, protected: bool = False) -> str:
        return f"{SIG_PREFIX}{'p' if protected else 'o'}.{self._tag(account)}.{self._mac(account, conv, text)}.{upstream or ''}"

    def verify(self, account: str, conv: str, text: str, sig) -> tuple[str, str | None, bool]:
        """(state, upstream signature, protected): state is valid, unsigned, foreign or altered."""
        if not isinstance(sig, str) or not sig.startswith(SIG_PREFIX):
            return "unsigned", sig if isinstance(sig, str) else None, False
        parts = sig.split(".", 4)
        if len(parts) != 5:
            return "altered", None, False
        _, flag, tag, mac, upstream = parts
        if hmac.compare_digest(mac, self._mac(account, conv, text)):
            return "valid", upstream or None, flag == "p"
        if not hmac.compare_digest(tag, self._tag(account)):
            return "foreign", None, False
        return "altered", None, False


_STATE_RANK = {"valid": 0, "unsigned": 1, "altered": 2, "foreign": 3}


def reasoning_item_text(it: dict) -> str:
    """The text a Responses reasoning item is bound over: its content, else its summary."""
    text = carried_text(it, "content")
    if not text:
        text = "".join(as_str(s.get("text")) for s in as_list(it.get("summary")) if isinstance(s, dict))
    return text


def check_carried(req, binder: Binder, account: str, conv: str) -> tuple[str | None, list[dict]]:
    """Verify and unwrap reasoning the client sent back: (worst binding state or None, blocks to drop).

    Valid blocks get their upstream signature restored; blocks of protected replies (whose text
    the gateway changed, so the upstream would refuse them) are dropped from the request.
    """
    worst = None
    drop = []
    for container, text_key, sig_key in req.carried:
        text = reasoning_item_text(container) if req.api == RESPONSES else carried_text(container, text_key)
        state, upstream, protected = binder.verify(account, conv, text, container.get(sig_key))
        if worst is None or _STATE_RANK[state] > _STATE_RANK[worst]:
            worst = state
        if state == "valid":
            if protected and req.api == MESSAGES:
                drop.append(container)
            elif upstream:
                container[sig_key] = upstream
            else:
                container.pop(sig_key, None)
        elif req.api == CHAT:
            container.pop(sig_key, None)
    return worst, drop


def summarize(text: str, chars: int) -> str:
    """A short extractive summary: the opening of the reasoning plus how much was withheld."""
    n = len(_WORD.findall(text))
    if chars <= 0 or not text.strip():
        return f"[reasoning withheld: {n} words]"
    first = text.strip().split(". ", 1)[0]
    if len(first) > chars:
        first = first[:chars].rsplit(" ", 1)[0] + " …"
    return f"{first} [reasoning summarised: {n} words withheld]"


def split_think(text: str) -> tuple[str, str]:
    """(visible, hidden) for text with inline <think> spans (an unclosed span hides to the end)."""
    if "<think>" not in text:
        return text, ""
    hidden = "".join(m.group(0)[7:].removesuffix("</think>") for m in _THINK.finditer(text))
    return _THINK.sub("", text).lstrip("\n"), hidden


class ThinkFilter:
    """Streaming version of split_think: tags may be split across deltas."""

    def __init__(self):
        self.inside = False
        self.carry = ""

    def feed(self, text: str) -> tuple[str, str]:
        text = self.carry + text
        self.carry = ""
        vis, hid = [], []
        while text:
            tag = "</think>" if self.inside else "<think>"
            i = text.find(tag)
            if i < 0:
                # keep a possible partial tag at the end for the next delta
                k = max((j for j in range(1, len(tag)) if text.endswith(tag[:j])), default=0)
                body, self.carry = (text[:-k], text[-k:]) if k else (text, "")
                (hid if self.inside else vis).append(body)
                break
            (hid if self.inside else vis).append(text[:i])
            text = text[i + len(tag):]
            self.inside = not self.inside
        return "".join(vis), "".join(hid)

    def flush(self) -> tuple[str, str]:
        c, self.carry = self.carry, ""
        return ("", c) if self.inside else (c, "")


def _grams(words: list[str], n: int) -> set[int]:
    return {hash(" ".join(words[i:i + n])) for i in range(len(words) - n + 1)}


def leak_matches(answer: str, reasoning: str, n: int) -> int:
    """How many word n-grams of the answer appear verbatim in the reasoning."""
    if not answer or not reasoning:
        return 0
    idx = _grams(_WORD.findall(reasoning.lower()), n)
    aw = _WORD.findall(answer.lower())
    return sum(1 for i in range(len(aw) - n + 1) if hash(" ".join(aw[i:i + n])) in idx)


class LeakGuard:
    """Streaming leak check with a hold-back of n-1 words, so no matched n-gram is released unchecked.

    Events carrying answer text are queued and released only once every n-gram covering their
    words has been compared with the hidden reasoning; after ``min_matches`` hits the rest of the
    answer text is withheld (events without answer text still flow, in order).
    """

    def __init__(self, n: int, min_matches: int):
        self.n = n
        self.min = min_matches
        self.words: list[str] = []
        self.tail = ""
        self.matches = 0
        self.withheld = False
        #: Set once, when withholding starts, so the caller can insert its notice there.
        self.just_withheld = False
        self.pending: list[tuple[object, int, bool]] = []
        self.index: set[int] | None = None

    def set_reasoning(self, reasoning: str) -> None:
        self.index = _grams(_WORD.findall(reasoning.lower()), self.n)

    def _push_words(self, ws: list[str]) -> None:
        n, idx = self.n, self.index
        for w in ws:
            self.words.append(w)
            if idx and len(self.words) >= n and hash(" ".join(self.words[-n:])) in idx:
                self.matches += 1
        if not self.withheld and self.matches >= self.min:
            self.withheld = self.just_withheld = True

    def _drain_withheld(self) -> list:
        out = [it for it, _, is_text in self.pending if not is_text]
        self.pending.clear()
        return out

    def add(self, item, text: str) -> list:
        """Queue ``item`` (an event) carrying answer ``text`` ('' for none); returns items safe to release."""
        if self.withheld:
            return [] if text else self._drain_withheld() + [item]
        if text:
            s = self.tail + text.lower()
            ws = _WORD.findall(s)
            if s and (s[-1].isalnum() or s[-1] == "_") and ws:
                self.tail = ws.pop()
            else:
                self.tail = ""
            self._push_words(ws)
        if self.withheld:
            return self._drain_withheld() + ([] if text else [item])
        self.pending.append((item, len(self.words) + (1 if self.tail else 0), bool(text)))
        safe = len(self.words) - (self.n - 1)
        out = []
        while self.pending and self.pending[0][1] <= safe:
            out.append(self.pending.pop(0)[0])
        return out

    def finish(self) -> list:
        if self.tail:
            self._push_words([self.tail])
            self.tail = ""
        if self.withheld:
            return self._drain_withheld()
        out = [it for it, _, _ in self.pending]
        self.pending.clear()
        return out


class ReplyRewrite:
    """What happened to one non-streamed reply (for the record and metrics)."""

    __slots__ = ("reasoning_chars", "redacted", "withheld", "leak_matches", "returned_reasoning", "hidden")

    def __init__(self):
        self.reasoning_chars = 0
        self.redacted = False
        self.withheld = False
        self.leak_matches = 0
        self.returned_reasoning: str | None = None
        self.hidden = ""


def rewrite_reply(api: str, obj: dict, protect: bool, rp: ReasoningPolicy, sign) -> ReplyRewrite:
    """Protect (if asked) and sign reasoning in a whole reply, in place.

    ``sign(text, upstream_sig, protected) -> signature`` binds the returned reasoning.
    """
    rw = ReplyRewrite()
    summary_mode = rp.mode == "summary"
    if api == CHAT:
        for c in as_list(obj.get("choices")):
            msg = c.get("message") if isinstance(c, dict) else None
            if not isinstance(msg, dict):
                continue
            key = "reasoning_content" if "reasoning_content" in msg else "reasoning" if "reasoning" in msg else None
            hidden = msg.get(key) if key and isinstance(msg.get(key), str) else ""
            content = msg.get("content") if isinstance(msg.get("content"), str) else None
            if protect and content and "<think>" in content:
                content, extra = split_think(content)
                msg["content"] = content
                hidden += extra
            rw.reasoning_chars += len(hidden)
            if protect and hidden:
                rw.redacted = True
                rw.hidden += hidden
                if rp.leak_check.enabled and content:
                    m = leak_matches(content, hidden, rp.leak_check.ngram)
                    rw.leak_matches += m
                    if m >= rp.leak_check.min_matches:
                        rw.withheld = True
                        msg["content"] = WITHHELD_NOTICE
                        c["finish_reason"] = "content_filter"
                returned = summarize(hidden, rp.summary_chars) if summary_mode else None
                if key:
                    del msg[key]
                if returned is not None:
                    msg["reasoning_content"] = returned
                    msg["reasoning_signature"] = sign(returned, None, True)
                rw.returned_reasoning = returned
            elif hidden and key:
                msg["reasoning_signature"] = sign(hidden, None, False)
                rw.returned_reasoning = hidden
    elif api == RESPONSES:
        hidden_all = ""
        for it in as_list(obj.get("output")):
            if isinstance(it, dict) and it.get("type") == "reasoning":
                hidden_all += _protect_reasoning_item(it, protect, rp, sign, rw)
        if protect and rp.leak_check.enabled and hidden_all:
            for it in as_list(obj.get("output")):
                if isinstance(it, dict) and it.get("type") == "message":
                    for p in as_list(it.get("content")):
                        if isinstance(p, dict) and p.get("type") == "output_text":
                            m = leak_matches(as_str(p.get("text")), hidden_all, rp.leak_check.ngram)
                            rw.leak_matches += m
                            if m >= rp.leak_check.min_matches:
                                rw.withheld = True
                                p["text"] = WITHHELD_NOTICE
    else:
        blocks = as_list(obj.get("content"))
        hidden_all = ""
        for b in blocks:
            if isinstance(b, dict) and b.get("type") == "thinking":
                text = as_str(b.get("thinking"))
                rw.reasoning_chars += len(text)
                if protect:
                    rw.redacted = True
                    hidden_all += text
                    returned = summarize(text, rp.summary_chars) if summary_mode else ""
                    b["thinking"] = returned
                    b["signature"] = sign(returned, b.get("signature"), True)
                    rw.returned_reasoning = returned or None
                else:
                    b["signature"] = sign(text, b.get("signature"), False)
                    rw.returned_reasoning = text
        rw.hidden = hidden_all
        if protect and rp.leak_check.enabled and hidden_all:
            for b in blocks:
                if isinstance(b, dict) and b.get("type") == "text":
                    m = leak_matches(as_str(b.get("text")), hidden_all, rp.leak_check.ngram)
                    rw.leak_matches += m
                    if m >= rp.leak_check.min_matches:
                        rw.withheld = True
                        b["text"] = WITHHELD_NOTICE
                        obj["stop_reason"] = "refusal"
    return rw


def _protect_reasoning_item(it: dict, protect: bool, rp: ReasoningPolicy, sign, rw: ReplyRewrite | None) -> str:
    """Strip/summarise and sign one Responses reasoning item in place; returns the hidden text."""
    text = reasoning_item_text(it)
    upstream = it.get("encrypted_content")
    if rw is not None:
        rw.reasoning_chars += len(text)
    if protect:
        returned = summarize(text, rp.summary_chars) if rp.mode == "summary" else ""
        it["content"] = []
        it["summary"] = [{"type": "summary_text", "text": returned}] if returned else []
        it["encrypted_content"] = sign(returned, None, True)
        if rw is not None:
            rw.redacted = True
            rw.hidden += text
            rw.returned_reasoning = returned or None
        return text
    it["encrypted_content"] = sign(text, upstream, False)
    if rw is not None:
        rw.returned_reasoning = text
    return ""
