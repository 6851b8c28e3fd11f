"""Content profiles: what a group's requests say, read from YAML files and built into Arrow columns.

A profile is templates (several languages, paraphrases, slots) wrapped around task items read from
prompt files, plus request habits (tools, images, reasoning, multi-turn history, sampling knobs) and
response shape. Benign personas and attack campaigns use the same profile machinery, so nothing in the
mechanics marks a request as an attack; only the words and habits the files give differ.

At world start each profile is expanded once into pools (a few hundred filled-in wrappers, the task
items, response texts); exchanges then pick from the pools with index arrays and Arrow ``take`` /
``binary_join_element_wise``, never a Python loop per exchange.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from distillguard.errors import ConfigError
from distillguard.events.schema import TURN_TYPE
from distillguard.sim.config import resolve_data_path
from distillguard.sim.textgen import add_typos, text_pool


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResponseSpec(_M):
    style: Literal["prose", "code", "math", "grade", "tool", "list", "reasoning"] = Field(
        "prose", description="Shape of the synthetic answer text.")
    median_chars: float = Field(900, gt=0, description="Median answer length (log-normal).")
    sigma: float = Field(0.7, ge=0, description="Log-normal spread of the length.")
    inline_reasoning: bool = Field(False, description="The answer carries its reasoning inline in <think> tags.")


class ReasoningSpec(_M):
    median_chars: float = Field(2500, gt=0, description="Median reasoning length when reasoning is requested.")
    sigma: float = Field(0.6, ge=0, description="Log-normal spread of the length.")


class ProfileSpec(_M):
    name: str = Field(..., pattern=r"^[a-z][a-z0-9_]*$", description="Name used in persona/campaign content maps.")
    capability: str = Field("chat", description="What the content exercises (reasoning, coding, agentic, ...).")
    tasks: list[str] = Field(default_factory=list, description="prompt_files names filling the {task} slot.")
    task_limit: int | None = Field(None, ge=1, description="Use at most this many items per task file.")
    templates: dict[str, list[str]] = Field(..., description="Language → templates; {task} and {slot} placeholders.")
    languages: dict[str, float] = Field(default_factory=dict, description="Language → weight (default: 'en' only "
                                        "when present, else equal).")
    slots: dict[str, list[str]] = Field(default_factory=dict, description="Slot name → values filled into {slot}.")
    file_slots: dict[str, list[str]] = Field(default_factory=dict, description="Slot name → prompt_files names: "
                                             "{slot} gets an item of those files drawn per request (several "
                                             "file-backed slots in one template, beside {task}).")
    system_prompts: list[str] = Field(default_factory=list, description="System prompt templates (slots allowed).")
    system_prompt_share: float = Field(0.0, ge=0, le=1, description="Share of requests (or accounts) sending one.")
    system_prompt_scope: Literal["account", "exchange"] = Field(
        "exchange", description="account: each account keeps one system prompt (an app); exchange: drawn per request.")
    typo_rate: float = Field(0.05, ge=0, le=1, description="Share of filled prompts with typing noise.")
    tools: list[list[str]] = Field(default_factory=list, description="Tool sets offered (one per account).")
    tool_call_rate: float = Field(0.0, ge=0, le=1, description="Share of responses that call one offered tool.")
    image_share: float = Field(0.0, ge=0, le=1, description="Share of requests carrying an image ([image] marker).")
    history: Literal["none", "chat", "agent", "replay"] = Field(
        "none", description="Earlier turns sent with later requests of a conversation: chat (user/assistant), agent "
        "(assistant/tool), replay (assistant turns carrying <thinking> blocks).")
    max_history_pairs: int = Field(0, ge=0, le=40, description="Most earlier turn pairs sent.")
    max_tokens: list[int] = Field(default_factory=lambda: [1024, 2048, 4096], description="Values drawn uniformly.")
    temperature: list[float] = Field(default_factory=lambda: [1.0, 0.7, 0.2], description="Values drawn uniformly.")
    top_p: list[float | None] = Field(default_factory=lambda: [None, None, 1.0, 0.95], description="Values drawn uniformly (null = not sent).")
    n: list[int] = Field(default_factory=lambda: [1], description="Choices requested; values drawn uniformly.")
    reasoning_share: float = Field(0.0, ge=0, le=1, description="Share of requests asking for reasoning.")
    reasoning_effort: dict[str, float] = Field(default_factory=lambda: {"medium": 0.5, "high": 0.3, "low": 0.2},
                                               description="Effort → weight (messages endpoint sends thinking_budget instead).")
    response: ResponseSpec = Field(default_factory=ResponseSpec, description="Answer shape and length.")
    reasoning: ReasoningSpec = Field(default_factory=ReasoningSpec, description="Reasoning length.")


    @model_validator(mode="after")
    def _file_slot_names(self):
        clash = [k for k in self.file_slots if k == "task" or k in self.slots]
        if clash:
            raise ValueError(f"file_slots {clash} clash with 'task' or a slots entry")
        return self


class ContentFile(_M):
    profiles: list[ProfileSpec] = Field(..., description="Content profiles defined by this file.")


_SLOT = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_TASK_CACHE: dict[tuple, list[str]] = {}


def read_prompt_file(path: Path, categories: tuple[str, ...] | None = None, category_field: str = "category"
                     ) -> list[str]:
    """JSONL with a ``text`` field per line (the /work/shared/data format), or plain text one per line.

    With ``categories``, only JSONL lines whose ``category_field`` is one of them are kept (an empty
    result is an error: a filter that matches nothing is a typo, not a world without prompts).
    """
    key = (path, categories, category_field)
    if key in _TASK_CACHE:
        return _TASK_CACHE[key]
    if categories is not None and path.suffix != ".jsonl":
        raise ConfigError("categories need a JSONL prompt file", source=str(path))
    out: list[str] = []
    with path.open("rb") as f:
        for i, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            if path.suffix == ".jsonl":
                try:
                    rec = orjson.loads(line)
                except orjson.JSONDecodeError as e:
                    raise ConfigError(f"not JSON: {e}", source=str(path), line=i) from None
                t = rec.get("text") if isinstance(rec, dict) else None
                if not isinstance(t, str):
                    raise ConfigError("each line needs a string 'text' field", source=str(path), line=i)
                if categories is None or rec.get(category_field) in categories:
                    out.append(t)
            else:
                out.append(line.decode("utf-8"))
    if not out:
        what = f"no line has {category_field} in {list(categories)}" if categories else "prompt file is empty"
        raise ConfigError(what, source=str(path))
    _TASK_CACHE[key] = out
    return out


def _read_source(src) -> list[str]:
    return read_prompt_file(*src) if isinstance(src, tuple) else read_prompt_file(src)


def load_profiles(files: list[str], base: Path) -> dict[str, ProfileSpec]:
    profiles: dict[str, ProfileSpec] = {}
    for name in files:
        p = resolve_data_path(name, base)
        try:
            raw = yaml.safe_load(p.read_text(encoding="utf-8"))
            cf = ContentFile.model_validate(raw)
        except yaml.YAMLError as e:
            raise ConfigError(f"not valid YAML: {e}", source=str(p)) from None
        except ValidationError as e:
            from distillguard.sim.config import _format_error

            raise _format_error(e, str(p)) from None
        for prof in cf.profiles:
            if prof.name in profiles:
                raise ConfigError(f"content profile {prof.name!r} defined twice", source=str(p))
            profiles[prof.name] = prof
    return profiles


@dataclass
class ProfilePools:
    spec: ProfileSpec
    prefix: pa.StringArray
    suffix: pa.StringArray
    has_task: np.ndarray
    tasks: pa.StringArray
    system: pa.StringArray | None
    tool_sets: pa.ListArray | None
    tool_set_len: np.ndarray
    tool_flat: list[str]
    resp: pa.StringArray
    resp_len: np.ndarray
    reas: pa.StringArray
    reas_len: np.ndarray
    summary: pa.StringArray
    hist_user: pa.StringArray
    hist_asst: pa.StringArray
    hist_tool: pa.StringArray
    #: file-slot profiles only: per wrapper position j, the literal text and the slot read after it
    parts: list[pa.StringArray] | None = None
    refs: np.ndarray | None = None
    slot_values: pa.StringArray | None = None
    slot_off: np.ndarray | None = None
    slot_len: np.ndarray | None = None


def _fill(rng: np.random.Generator, tpl: str, slots: dict[str, list[str]], profile: str,
          keep: tuple[str, ...] = ("task",)) -> str:
    def rep(m: re.Match) -> str:
        k = m.group(1)
        if k in keep:
            return "{" + k + "}"
        vals = slots.get(k)
        if not vals:
            raise ConfigError(f"template uses slot {{{k}}} but the profile has no slots.{k}", source=f"profile {profile}")
        return str(vals[int(rng.integers(len(vals)))])

    return _SLOT.sub(rep, tpl)


def _split_slots(wrappers: list[str], names: list[str]) -> tuple[list[pa.StringArray], np.ndarray]:
    """Wrappers cut at their slot markers: literal parts by position, and which slot follows each."""
    pat = re.compile(r"\{(" + "|".join(map(re.escape, names)) + r")\}")
    cut = [pat.split(w) for w in wrappers]
    m = max(len(c) // 2 for c in cut)
    refs = np.full((len(wrappers), m), -1, dtype=np.int64)
    lits = [[""] * len(wrappers) for _ in range(m + 1)]
    for i, c in enumerate(cut):
        for j in range(0, len(c), 2):
            lits[j // 2][i] = c[j]
        for j in range(1, len(c), 2):
            refs[i, j // 2] = names.index(c[j])
    return [pa.array(x, pa.string()) for x in lits], refs


def _slot_prompt(pools: ProfilePools, rng: np.random.Generator, w: np.ndarray) -> pa.Array:
    """Prompts of file-slot wrappers: literal parts joined with a value drawn per row for each slot."""
    refs = pools.refs[w]
    parts: list = [pools.parts[0].take(pa.array(w))]
    empty = len(pools.slot_values) - 1
    for j in range(refs.shape[1]):
        r = refs[:, j]
        rr = np.maximum(r, 0)
        idx = pools.slot_off[rr] + (rng.random(len(w)) * pools.slot_len[rr]).astype(np.int64)
        parts.append(pools.slot_values.take(pa.array(np.where(r >= 0, idx, empty))))
        parts.append(pools.parts[j + 1].take(pa.array(w)))
    return pc.binary_join_element_wise(*parts, "")


def build_pools(spec: ProfileSpec, prompt_files: dict, rng: np.random.Generator,
                n_wrappers: int = 400) -> ProfilePools:
    langs = spec.languages or ({"en": 1.0} if "en" in spec.templates else {k: 1.0 for k in spec.templates})
    for lang in langs:
        if not spec.templates.get(lang):
            raise ConfigError(f"languages.{lang} has no templates", source=f"profile {spec.name}")
    ln = list(langs)
    lw = np.array([langs[k] for k in ln], dtype=float)
    tasks: list[str] = []
    for t in spec.tasks:
        if t not in prompt_files:
            raise ConfigError(f"tasks names {t!r}, which is not in the world's prompt_files", source=f"profile {spec.name}")
        items = _read_source(prompt_files[t])
        tasks.extend(items[: spec.task_limit] if spec.task_limit else items)
    uses_task = any("{task}" in x for v in spec.templates.values() for x in v)
    if uses_task and not tasks:
        raise ConfigError("templates use {task} but the profile lists no tasks", source=f"profile {spec.name}")
    if tasks and spec.typo_rate > 0:
        idx = np.nonzero(rng.random(len(tasks)) < spec.typo_rate)[0]
        tasks = list(tasks)
        for i in idx:
            if len(tasks[i]) < 600:
                tasks[i] = add_typos(rng, tasks[i], 1.0)
    pre, suf, has = [], [], []
    keep = ("task", *spec.file_slots)
    filled: list[str] = []
    pick_lang = rng.choice(len(ln), size=n_wrappers, p=lw / lw.sum())
    for i in range(n_wrappers):
        tpls = spec.templates[ln[pick_lang[i]]]
        s = _fill(rng, tpls[int(rng.integers(len(tpls)))], spec.slots, spec.name, keep)
        if rng.random() < spec.typo_rate:
            # Typos go around the slot, never into it: a mangled "{taskk}" would ship as literal text.
            if spec.file_slots:
                cut = re.split(r"(\{(?:" + "|".join(map(re.escape, keep)) + r")\})", s)
                s = "".join(p if j % 2 else add_typos(rng, p, 1.0) for j, p in enumerate(cut))
            else:
                s = "{task}".join(add_typos(rng, part, 1.0) for part in s.split("{task}"))
        # casing / whitespace habits vary by person
        r = rng.random()
        if r < 0.08:
            s = s.lower()
        elif r < 0.12:
            s = s.rstrip(".!?") if s.rstrip().endswith(tuple(".!?")) and "{task}" not in s[-8:] else s
        filled.append(s)
        if "{task}" in s:
            a, b = s.split("{task}", 1)
            b = b.replace("{task}", "")
            pre.append(a)
            suf.append(b)
            has.append(True)
        else:
            pre.append(s)
            suf.append("")
            has.append(False)
    system = None
    if spec.system_prompts:
        system = pa.array([_fill(rng, spec.system_prompts[i % len(spec.system_prompts)], spec.slots, spec.name)
                           for i in range(max(len(spec.system_prompts), 64))], pa.string())
    tool_sets = None
    tool_len = np.zeros(1, dtype=np.int64)
    flat: list[str] = []
    if spec.tools:
        tool_sets = pa.array(spec.tools, pa.list_(pa.string()))
        tool_len = np.array([len(t) for t in spec.tools], dtype=np.int64)
        flat = [x for t in spec.tools for x in t]
    r = spec.response
    if r.inline_reasoning:
        reas_inline = text_pool(rng, "reasoning", spec.reasoning.median_chars, spec.reasoning.sigma)
        ans = text_pool(rng, r.style, r.median_chars, r.sigma)
        resp_list = [f"<think>\n{a}\n</think>\n\n{b}" for a, b in zip(reas_inline, ans, strict=True)]
    else:
        resp_list = text_pool(rng, r.style, r.median_chars, r.sigma)
    reas_list = text_pool(rng, "reasoning", spec.reasoning.median_chars, spec.reasoning.sigma)
    summ = text_pool(rng, "prose", 300, 0.4, size=64)
    hist_asst_style = "tool" if spec.history == "agent" else r.style
    hist_asst = text_pool(rng, hist_asst_style, 260, 0.6, size=128)
    if spec.history == "replay":
        hist_asst = [f"<thinking>\n{a}\n</thinking>\n{b}" for a, b in
                     zip(text_pool(rng, "reasoning", 900, 0.5, size=128), hist_asst, strict=True)]
    hist_tool = text_pool(rng, "code" if spec.capability == "coding" else "list", 220, 0.8, size=128)
    hu_src = tasks if tasks else pre
    hist_user = [hu_src[int(i)][:400] for i in rng.integers(0, len(hu_src), size=128)]
    extra = {}
    if spec.file_slots:
        names = ["task", *spec.file_slots]
        vals = [tasks or [""]] + [[x for f in files for x in _read_source(prompt_files[f])]
                                  for files in spec.file_slots.values()]
        lens = np.array([len(v) for v in vals], dtype=np.int64)
        parts, refs = _split_slots(filled, names)
        extra = dict(parts=parts, refs=refs, slot_values=pa.array([x for v in vals for x in v] + [""], pa.string()),
                     slot_off=np.concatenate([[0], np.cumsum(lens)[:-1]]), slot_len=lens)
    return ProfilePools(
        **extra, spec=spec, prefix=pa.array(pre, pa.string()), suffix=pa.array(suf, pa.string()), has_task=np.array(has),
        tasks=pa.array(tasks or [""], pa.string()), system=system, tool_sets=tool_sets, tool_set_len=tool_len,
        tool_flat=flat, resp=pa.array(resp_list, pa.string()), resp_len=np.array([len(x) for x in resp_list]),
        reas=pa.array(reas_list, pa.string()), reas_len=np.array([len(x) for x in reas_list]),
        summary=pa.array(summ, pa.string()), hist_user=pa.array(hist_user, pa.string()),
        hist_asst=pa.array(hist_asst, pa.string()), hist_tool=pa.array(hist_tool, pa.string()))


_ROLES = pa.array(["user", "assistant", "tool"], pa.string())


def _turns(prompt: pa.Array, pairs: np.ndarray, pools: ProfilePools, rng: np.random.Generator
           ) -> tuple[pa.ListArray, np.ndarray]:
    """list<struct<role,text>> per row, and the total characters of each row's turns."""
    n = len(prompt)
    nt = 2 * pairs + 1
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(nt, out=offsets[1:])
    total = int(offsets[-1])
    if total == n:  # single turn everywhere
        roles = pa.DictionaryArray.from_arrays(np.zeros(n, dtype=np.int8), _ROLES).cast(pa.string())
        struct = pa.StructArray.from_arrays([roles, prompt], fields=list(TURN_TYPE))
        lens = pc.binary_length(prompt).to_numpy(zero_copy_only=False)
        return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), struct), lens
    row = np.repeat(np.arange(n), nt)
    k = np.arange(total) - offsets[row]
    last = k == (nt[row] - 1)
    hu, ha, ht = len(pools.hist_user), len(pools.hist_asst), len(pools.hist_tool)
    src_idx = np.empty(total, dtype=np.int64)
    role = np.empty(total, dtype=np.int8)
    if pools.spec.history == "agent":
        first = k == 0
        odd = (k % 2) == 1
        role[:] = 2
        role[odd] = 1
        role[first] = 0
        src_idx[:] = n + hu + ha + rng.integers(0, ht, size=total)
        src_idx[odd] = n + hu + rng.integers(0, ha, size=int(odd.sum()))
        src_idx[first] = row[first]
    else:
        odd = (k % 2) == 1
        role[:] = 0
        role[odd] = 1
        src_idx[:] = n + rng.integers(0, hu, size=total)
        src_idx[odd] = n + hu + rng.integers(0, ha, size=int(odd.sum()))
        src_idx[last] = row[last]
    src = pa.concat_arrays([prompt, pools.hist_user, pools.hist_asst, pools.hist_tool])
    texts = src.take(pa.array(src_idx))
    roles = pa.DictionaryArray.from_arrays(role, _ROLES).cast(pa.string())
    struct = pa.StructArray.from_arrays([roles, texts], fields=list(TURN_TYPE))
    tlen = pc.binary_length(texts).to_numpy(zero_copy_only=False)
    lens = np.add.reduceat(tlen, offsets[:-1])
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), struct), lens


def _choice_list(rng, vals: list, n: int, typ: pa.DataType) -> pa.Array:
    arr = pa.array(vals, typ)
    return arr.take(pa.array(rng.integers(0, len(vals), size=n)))


def build_content(pools: ProfilePools, rng: np.random.Generator, acc_idx: np.ndarray, acct_salt: np.ndarray,
                  pos: np.ndarray, endpoint: np.ndarray, model_vis: np.ndarray, text_mode: bool) -> dict[str, pa.Array]:
    """Content columns for n rows of one profile.

    ``acct_salt`` is a per-account random integer (fixes an account's system prompt / tool set),
    ``pos`` the request's position in its session, ``endpoint`` codes (0 chat, 1 responses, 2 messages,
    3 batch, ...), ``model_vis`` 0 visible / 1 summarized / 2 hidden reasoning.
    """
    s = pools.spec
    n = len(acc_idx)
    w = rng.integers(0, len(pools.prefix), size=n)
    t = rng.integers(0, len(pools.tasks), size=n)
    wi = pa.array(w)
    task = pools.tasks.take(pa.array(t))
    has = pools.has_task[w]
    if not has.all():
        task = pc.if_else(pa.array(has), task, "")
    prompt = pc.binary_join_element_wise(pools.prefix.take(wi), task, pools.suffix.take(wi), "")
    if pools.refs is not None:
        prompt = _slot_prompt(pools, rng, w)
    has_images = rng.random(n) < s.image_share if s.image_share > 0 else np.zeros(n, dtype=bool)
    if has_images.any():
        prompt = pc.if_else(pa.array(has_images), pc.binary_join_element_wise("[image] ", prompt, ""), prompt)
    pairs = np.zeros(n, dtype=np.int64)
    if s.history != "none" and s.max_history_pairs > 0:
        pairs = np.minimum(pos, s.max_history_pairs)
        if s.history == "agent":
            pairs = np.minimum(pos + rng.integers(0, 3, size=n), s.max_history_pairs)
    turns, turn_chars = _turns(prompt, pairs, pools, rng)
    salt = acct_salt[acc_idx]
    system = None
    sys_chars = np.zeros(n, dtype=np.int64)
    if pools.system is not None and s.system_prompt_share > 0:
        if s.system_prompt_scope == "account":
            si = salt % len(pools.system)
            on = ((salt // 7) % 1000) < s.system_prompt_share * 1000
        else:
            si = rng.integers(0, len(pools.system), size=n)
            on = rng.random(n) < s.system_prompt_share
        system = pc.if_else(pa.array(on), pools.system.take(pa.array(si)), pa.scalar(None, pa.string()))
        sys_chars = pc.fill_null(pc.binary_length(system), 0).to_numpy(zero_copy_only=False)
    if system is None:
        system = pa.nulls(n, pa.string())
    n_tools = np.zeros(n, dtype=np.int64)
    tool_calls_arr = pa.array([[]] * 0, pa.list_(pa.string()))
    if pools.tool_sets is not None:
        ts = (salt // 13) % len(pools.tool_sets)
        tools_offered = pools.tool_sets.take(pa.array(ts))
        n_tools = pools.tool_set_len[ts]
        call = rng.random(n) < s.tool_call_rate
        starts = np.concatenate([[0], np.cumsum(pools.tool_set_len)[:-1]])
        j = (rng.random(n) * n_tools).astype(np.int64)
        names = pa.array(pools.tool_flat, pa.string()).take(pa.array((starts[ts] + j)[call]))
        offs = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(call.astype(np.int32), out=offs[1:])
        tool_calls_arr = pa.ListArray.from_arrays(pa.array(offs), names)
    else:
        call = np.zeros(n, dtype=bool)
        tools_offered = pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, dtype=np.int32)), pa.array([], pa.string()))
        tool_calls_arr = tools_offered
    max_tokens = np.array(s.max_tokens, dtype=np.int64)[rng.integers(0, len(s.max_tokens), size=n)]
    reasoning = rng.random(n) < s.reasoning_share
    effort = pa.nulls(n, pa.string())
    budget = pa.nulls(n, pa.int32())
    if reasoning.any():
        ek = list(s.reasoning_effort)
        ew = np.array([s.reasoning_effort[k] for k in ek], dtype=float)
        e = pa.array(ek, pa.string()).take(pa.array(rng.choice(len(ek), size=n, p=ew / ew.sum())))
        is_msg = endpoint == 2
        effort = pc.if_else(pa.array(reasoning & ~is_msg), e, pa.scalar(None, pa.string()))
        b = np.array([1024, 4096, 8192, 16000, 32000])[rng.integers(0, 5, size=n)]
        budget = pa.array(np.where(reasoning & is_msg, b, 0), pa.int32(), mask=~(reasoning & is_msg))
    ri = rng.integers(0, len(pools.resp), size=n)
    resp_chars = pools.resp_len[ri]
    qi = rng.integers(0, len(pools.reas), size=n)
    reas_chars = np.where(reasoning, pools.reas_len[qi], 0)
    visible = reasoning & (model_vis == 0)
    summarized = reasoning & (model_vis == 1)
    redacted = reasoning & (model_vis > 0)
    out_tok = ((resp_chars + reas_chars) / 3.8 * rng.uniform(0.9, 1.1, size=n)).astype(np.int64) + 1
    truncated = out_tok > max_tokens + reas_chars // 4
    stop_code = np.where(call, 2, np.where(truncated, 1, 0))
    stop = pa.DictionaryArray.from_arrays(np.where((stop_code == 0) & (endpoint == 2), 3, stop_code).astype(np.int8),
                                          pa.array(["stop", "length", "tool_calls", "end_turn"])).cast(pa.string())
    in_tok = ((turn_chars + sys_chars) / 3.8).astype(np.int64) + 8 + n_tools * 110 + has_images * 850
    if text_mode:
        resp_text = pools.resp.take(pa.array(ri))
        reas_text = pa.nulls(n, pa.string())
        if reasoning.any():
            full = pools.reas.take(pa.array(qi))
            summ = pools.summary.take(pa.array(qi % len(pools.summary)))
            reas_text = pc.if_else(pa.array(visible), full,
                                   pc.if_else(pa.array(summarized), summ, pa.scalar(None, pa.string())))
    else:
        resp_text = pa.nulls(n, pa.string())
        reas_text = pa.nulls(n, pa.string())
    temps = np.array(s.temperature, dtype=np.float32)[rng.integers(0, len(s.temperature), size=n)]
    top_p_vals = [np.nan if v is None else v for v in s.top_p]
    tp = np.array(top_p_vals, dtype=np.float32)[rng.integers(0, len(top_p_vals), size=n)]
    nn = np.array(s.n, dtype=np.int32)[rng.integers(0, len(s.n), size=n)]
    return {
        "system_prompt": system, "turns": turns, "prompt": prompt, "n_turns": pa.array((2 * pairs + 1).astype(np.int32)),
        "tools_offered": tools_offered, "has_images": pa.array(has_images), "max_tokens": pa.array(max_tokens.astype(np.int32)),
        "temperature": pa.array(temps), "top_p": pa.array(tp, mask=np.isnan(tp)), "n": pa.array(nn),
        "reasoning_requested": pa.array(reasoning), "reasoning_effort": effort, "thinking_budget": budget,
        "response_text": resp_text, "response_chars": pa.array(resp_chars.astype(np.int32)),
        "reasoning_text": reas_text,
        "reasoning_chars": pa.array(reas_chars.astype(np.int32), mask=~reasoning),
        "reasoning_redacted": pa.array(redacted, mask=~reasoning), "tool_calls": tool_calls_arr,
        "stop_reason": stop, "input_tokens": pa.array(in_tok.astype(np.int32)),
        "output_tokens": pa.array(np.minimum(out_tok, max_tokens + reas_chars // 4).astype(np.int32)),
        "reasoning_tokens": pa.array((reas_chars // 4).astype(np.int32), mask=~reasoning),
        "_pairs": pairs, "_out_tok": out_tok,
    }
