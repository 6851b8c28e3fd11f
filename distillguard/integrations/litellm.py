"""distillguard inside a LiteLLM proxy: a guardrail LiteLLM loads from its own config.

A LiteLLM deployment already knows who is calling (its virtual keys, users, teams and end users),
so putting distillguard in front of it would lose that identity. Loaded as a guardrail, distillguard
sees LiteLLM's identity and decides with the inline gateway's own parts (``Gateway`` state: policy,
enforcement snapshot, cluster-aware rate limiter, reasoning protection, recorder):

- pre-call: the account is resolved from LiteLLM's key, user and team (order configurable), then
  policy and limits; a refusal is raised as an HTTP error LiteLLM returns to the client (403 / 429);
- post-call: reasoning is stripped or summarised when the decision asks for it (also in streams), the
  tokens used are charged to the limits, and the exchange is recorded into the store's spool or the
  Redis stream, exactly as the inline gateway records it.

LiteLLM config (``config.yaml``)::

    guardrails:
      - guardrail_name: distillguard
        litellm_params:
          guardrail: distillguard.integrations.litellm.DistillguardGuardrail
          mode: [pre_call, post_call]
          default_on: true
          distillguard_config: /etc/distillguard/gateway.yaml  # the gateway YAML: store, policy, limits, recorder
          account_from: [user_id, key_alias, token]  # first one set wins
          org_from: [team_id, org_id]

``distillguard_config`` may also come from ``DISTILLGUARD_LITELLM_CONFIG``. See docs/deploy/litellm.md.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import orjson
from fastapi import HTTPException
from litellm.integrations.custom_guardrail import CustomGuardrail

from distillguard.errors import ConfigError
from distillguard.gateway.check import CheckResult, decide
from distillguard.gateway.extract import CHAT, MESSAGES, RESPONSES, parse_request, reply_from_body
from distillguard.gateway.reasoning import WITHHELD_NOTICE, rewrite_reply
from distillguard.policy import RECORD_WORD

log = logging.getLogger("distillguard.litellm")

#: LiteLLM call types -> the API whose request shape the body has.
_CALL_API = {"completion": CHAT, "acompletion": CHAT, "responses": RESPONSES, "aresponses": RESPONSES,
             "anthropic_messages": MESSAGES}
#: Identity sources: attributes of LiteLLM's UserAPIKeyAuth, plus ``end_user`` (the request's ``user``).
_SOURCES = {"user_id", "team_id", "org_id", "key_alias", "token", "end_user_id", "end_user"}
_STATE = "distillguard"


def _meta(data: dict) -> dict:
    for k in ("metadata", "litellm_metadata"):
        if isinstance(data.get(k), dict):
            return data[k]
    return data.setdefault("metadata", {})


class DistillguardGuardrail(CustomGuardrail):
    """Pre-call decision and post-call protection/recording; the gateway state is built on first use."""

    def __init__(self, distillguard_config: str | None = None, account_from: list[str] | None = None,
                 org_from: list[str] | None = None, **kwargs: Any):
        self.config_path = distillguard_config or os.environ.get("DISTILLGUARD_LITELLM_CONFIG")
        self.account_from = list(account_from or ["user_id", "key_alias", "token"])
        self.org_from = list(org_from or ["team_id", "org_id"])
        for name, lst in (("account_from", self.account_from), ("org_from", self.org_from)):
            bad = [s for s in lst if s not in _SOURCES]
            if bad:
                raise ConfigError(f"distillguard guardrail: {name}: unknown source(s) {bad}; "
                                  f"choose from {sorted(_SOURCES)}")
        self.gw = None
        kwargs.setdefault("guardrail_name", "distillguard")
        super().__init__(**kwargs)

    async def _gateway(self):
        if self.gw is None:
            from distillguard.gateway.app import Gateway
            from distillguard.gateway.config import load_config

            cfg = load_config(self.config_path)
            # Inside LiteLLM the account comes from LiteLLM's own key / user / team (see _pick), never from a
            # distillguard API key: a keys file is not needed, so "no keys" is not a misconfiguration here.
            cfg.identity.allow_no_keys = True
            gw = Gateway(cfg)
            await gw.startup()
            self.gw = gw
        return self.gw

    def _pick(self, sources: list[str], auth: Any, data: dict) -> str | None:
        for s in sources:
            v = data.get("user") if s == "end_user" else getattr(auth, s, None)
            if isinstance(v, str) and v.strip():
                return v.strip()
        return None

    # ------------------------------------------------------------------ pre-call
    async def async_pre_call_hook(self, user_api_key_dict, cache, data: dict, call_type):
        from litellm.types.guardrails import GuardrailEventHooks

        if not self.should_run_guardrail(data=data, event_type=GuardrailEventHooks.pre_call):
            return data
        api = _CALL_API.get(str(call_type))
        if api is None:  # embeddings, images, ...: not what distillation is made of
            return data
        gw = await self._gateway()
        account = self._pick(self.account_from, user_api_key_dict, data)
        if account is None:
            raise HTTPException(status_code=401, detail={"error": "distillguard: no account for this key",
                                                          "code": "invalid_api_key"})
        org = self._pick(self.org_from, user_api_key_dict, data)
        meta = _meta(data)
        req = parse_request(api, data)
        ip = meta.get("requester_ip_address") or None
        size = len(orjson.dumps({k: data.get(k) for k in ("messages", "input", "system", "tools")}, default=str))
        res = await decide(gw, account, org, api, req, ip, size / gw.cfg.limits.bytes_per_token)
        rec = _record(gw, res, account, org, api, req, meta, user_api_key_dict)
        if res.action != "allow":
            rec.update(http_status=res.status, action=RECORD_WORD.get(res.decided, res.action)
                       if res.action == "deny" else "rate_limited", action_reasons=res.reasons)
            if gw.cfg.recorder.enabled:
                gw.recorder.end(rec)
            headers = {k.decode(): v.decode() for k, v in res.headers}
            raise HTTPException(status_code=res.status, headers=headers,
                                detail={"error": res.message, "code": res.code, "action": res.action})
        meta[_STATE] = {"res": res, "rec": rec, "t0": time.perf_counter(), "api": api}
        return data

    # ------------------------------------------------------------------ post-call
    async def async_post_call_success_hook(self, data: dict, user_api_key_dict, response):
        st = _meta(data).pop(_STATE, None)
        if st is None or self.gw is None:
            return response
        gw, res, rec, api = self.gw, st["res"], st["rec"], st["api"]
        try:
            obj = response.model_dump() if hasattr(response, "model_dump") else dict(response)
        except Exception:  # noqa: BLE001 - an unknown reply type is recorded without its reply fields
            obj = None
        info = rw = None
        if isinstance(obj, dict) and api == CHAT:
            info = reply_from_body(api, obj)
            rp = gw.policy.policy.reasoning
            rw = rewrite_reply(api, obj, res.protect, rp, lambda text, sig, protected: sig)
            if res.protect:
                _apply_chat(response, obj)
        await _charge(gw, res, info)
        _finish(gw, rec, st["t0"], 200, res, info, rw)
        return response

    async def async_post_call_streaming_iterator_hook(self, user_api_key_dict, response, request_data: dict):
        st = _meta(request_data).pop(_STATE, None)
        if st is None or self.gw is None:
            async for item in response:
                yield item
            return
        res = st["res"]
        answer, hidden, out_tokens = [], [], 0
        async for chunk in response:
            for c in getattr(chunk, "choices", None) or []:
                delta = getattr(c, "delta", None)
                if delta is None:
                    continue
                r = getattr(delta, "reasoning_content", None)
                if r:
                    hidden.append(r)
                    if res.protect:
                        delta.reasoning_content = None
                if getattr(delta, "content", None):
                    answer.append(delta.content)
            usage = getattr(chunk, "usage", None)
            if usage is not None and getattr(usage, "completion_tokens", None):
                out_tokens = usage.completion_tokens
            yield chunk
        rec = st["rec"]
        rec.update(response_chars=len("".join(answer)), reasoning_chars=len("".join(hidden)) or None,
                   reasoning_redacted=bool(res.protect and hidden), output_tokens=out_tokens or None)
        if self.gw.cfg.recorder.record_text:
            rec.update(response_text="".join(answer), reasoning_text=None if res.protect else "".join(hidden) or None)
        _finish(self.gw, rec, st["t0"], 200, res, None, None)


def _apply_chat(response, obj: dict) -> None:
    """Carry the protected reply dict back into LiteLLM's response object."""
    for c, new in zip(getattr(response, "choices", None) or [], obj.get("choices") or [], strict=False):
        msg, nmsg = getattr(c, "message", None), new.get("message") or {}
        if msg is None:
            continue
        msg.content = nmsg.get("content")
        for attr in ("reasoning_content", "thinking_blocks"):
            if hasattr(msg, attr):
                setattr(msg, attr, nmsg.get(attr))
        psf = getattr(msg, "provider_specific_fields", None)
        if isinstance(psf, dict):
            psf.pop("reasoning_content", None)
        if new.get("finish_reason") == "content_filter":
            c.finish_reason = "content_filter"


def _record(gw, res: CheckResult, account: str, org: str | None, api: str, req, meta: dict, auth) -> dict:
    """The exchange row, in the inline gateway's shape; source_format says it came through LiteLLM."""
    rec = {"exchange_id": "dg-litellm-" + os.urandom(9).hex(), "ts": time.time_ns() // 1_000_000,
           "account_id": account, "org_id": org, "api_key_id": getattr(auth, "key_alias", None)
           or (getattr(auth, "token", None) or "")[:16] or None, "model": req.model, "endpoint": api,
           "conversation_id": req.conversation_id, "client_ip": meta.get("requester_ip_address") or None,
           "user_agent": meta.get("user_agent") or None, "n_turns": len(req.turns),
           "tools_offered": req.tools_offered, "has_images": req.has_images, "max_tokens": req.max_tokens,
           "temperature": req.temperature, "top_p": req.top_p, "n": req.n, "stream": req.stream,
           "reasoning_requested": req.reasoning_requested, "reasoning_effort": req.reasoning_effort,
           "thinking_budget": req.thinking_budget, "action": RECORD_WORD.get(res.decided, "allow"),
           "action_reasons": res.reasons, "source_format": "gateway",
           "extra": {"decided": res.decided, "via": "litellm"}}
    if gw.cfg.recorder.record_text:
        rec.update(system_prompt=req.system_prompt, turns=req.turns, prompt=req.prompt)
    return rec


async def _charge(gw, res: CheckResult, info) -> None:
    if info is None or not res.buckets:
        return
    used = (info.output_tokens or 0)
    if used > 0:
        if gw.limiter.is_async:
            await gw.limiter.charge(res.buckets, used)
        else:
            gw.limiter.charge(res.buckets, used)


def _finish(gw, rec: dict, t0: float, status: int, res: CheckResult, info, rw) -> None:
    rec.update(http_status=status, latency_ms=int((time.perf_counter() - t0) * 1000))
    if res.protect:
        rec["action"] = "protect"
    if info is not None:
        rec.update(response_chars=len(info.answer), tool_calls=info.tool_calls, stop_reason=info.stop_reason,
                   input_tokens=info.input_tokens, output_tokens=info.output_tokens,
                   reasoning_tokens=info.reasoning_tokens,
                   reasoning_chars=(rw.reasoning_chars if rw is not None and rw.reasoning_chars
                                    else len(info.reasoning_text) or None),
                   reasoning_redacted=bool(rw.redacted) if rw is not None else False)
        if gw.cfg.recorder.record_text:
            rec["response_text"] = WITHHELD_NOTICE if rw is not None and rw.withheld else info.answer
            rec["reasoning_text"] = rw.returned_reasoning if rw is not None else (info.reasoning_text or None)
    if gw.cfg.recorder.enabled:
        gw.recorder.end(rec)
