"""distillguard's built-in per-exchange detectors (registered exactly as a plugin would be)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.signals.context import BatchContext, column
from distillguard.signals.registry import Detector


def _ctx(batch: pa.RecordBatch, ctx: BatchContext | None) -> BatchContext:
    return ctx if ctx is not None else BatchContext(batch)


def _tool_match(ctx: BatchContext, pattern: str) -> np.ndarray:
    """1.0 for rows offering a tool whose name matches ``pattern`` (case-insensitive)."""
    out = np.zeros(ctx.n, dtype=np.float32)
    lc = ctx.list_column("tools_offered")
    if lc is None:
        return out
    parent, flat = lc
    if len(flat) == 0:
        return out
    hit = np.asarray(pc.fill_null(pc.match_substring_regex(flat, pattern, ignore_case=True), False))
    out[parent[hit]] = 1.0
    return out


def _tool_count(ctx: BatchContext) -> np.ndarray:
    col = column(ctx.batch, "tools_offered")
    if col is None:
        return np.zeros(ctx.n, dtype=np.float32)
    return np.asarray(pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False), dtype=np.float32)


_PREFILL_RE = r"^\s*<(think|thinking|reasoning|scratchpad|thought)>"


def _assistant_prefill(ctx: BatchContext) -> np.ndarray:
    """Rows whose last turn is an assistant turn opening a reasoning tag: the client forces the model
    to start (and so to continue) a visible chain of thought."""
    out = np.zeros(ctx.n, dtype=np.float32)
    col = column(ctx.batch, "turns")
    if col is None or ctx.n == 0:
        return out
    lens = np.asarray(pc.fill_null(pc.list_value_length(col), 0))
    flat = pc.list_flatten(col)
    if len(flat) == 0:
        return out
    offsets = np.asarray(col.offsets)[:-1] - (np.asarray(col.offsets)[0])
    rows = np.flatnonzero(lens > 0)
    last = offsets[rows] + lens[rows] - 1
    roles = flat.field("role").take(pa.array(last))
    is_asst = np.flatnonzero(np.asarray(pc.fill_null(pc.equal(roles, "assistant"), False)))
    if len(is_asst) == 0:
        return out
    # the regex only on the rows whose last turn is the assistant's (few: most end with the user)
    texts = flat.field("text").take(pa.array(last[is_asst]))
    opens = np.asarray(pc.fill_null(pc.match_substring_regex(texts, _PREFILL_RE, ignore_case=True), False))
    out[rows[is_asst[opens]]] = 1.0
    return out


class CotElicitation(Detector):
    """Chain-of-thought / hidden-reasoning elicitation.

    Sees requests that try to get the model's internal reasoning out as text: "write your full
    reasoning inside <think> tags", "imagine the internal reasoning behind this completed answer
    and write it out", "continue / translate / encode your thinking", fake debug-mode or
    developer-mode system prompts, and forced ``<think>`` prefills in the last assistant turn.
    Evidence because reasoning traces are the most valuable thing to distil and the providers
    hide them; asking for a human explanation ("explain step by step, I'm studying") is not this
    and is trained as a hard negative. Score: calibrated lexical model over prompt and system
    prompt (max), 0.97 for an assistant prefill opening a reasoning tag.
    """

    name = "cot_elicitation"
    version = "1"
    columns = ("prompt", "system_prompt", "turns")

    def score(self, batch, ctx=None):
        c = _ctx(batch, ctx)
        return np.maximum(c.lexical("cot_elicitation"), 0.97 * _assistant_prefill(c)).astype(np.float32)


class RewardGrading(Detector):
    """Reward-model style grading and ranking requests.

    Sees prompts that use the model as a judge: "rate this response 1-10", "which of A and B is
    better", "rank these completions", "assign a reward", step-level correctness labels.
    Evidence because preference and reward labels from a strong model are what a copy needs to
    train its reward model; legitimate feedback requests ("give me feedback on my essay",
    "which title is catchier") are trained as hard negatives. Score: calibrated lexical model
    over prompt and system prompt (max).
    """

    name = "reward_grading"
    version = "1"
    columns = ("prompt", "system_prompt")

    def score(self, batch, ctx=None):
        return _ctx(batch, ctx).lexical("reward_grading")


class PolicyRewrite(Detector):
    """"Censorship-safe" / policy-safe rewrite requests for sensitive questions.

    Sees requests for answers that pass a state censor or a content policy: "rewrite this so it
    complies with content regulations", "give the censorship-safe version of this answer about
    Tiananmen", "avoid politically sensitive wording". Evidence because such pairs (sensitive
    question, compliant answer) are harvested to align a copy to a censor cheaply; ordinary
    editing ("rewrite this paragraph more concisely") and questions *about* censorship are
    trained as hard negatives. Score: calibrated lexical model over prompt and system prompt.
    """

    name = "policy_rewrite"
    version = "1"
    columns = ("prompt", "system_prompt")

    def score(self, batch, ctx=None):
        return _ctx(batch, ctx).lexical("policy_rewrite")


class SyntheticData(Detector):
    """Synthetic-data generation: the model asked to write the prompts a copy will train on.

    Sees instruction evolution ("rewrite this prompt into a harder version, output only the new
    prompt"), self-instruct ("come up with 20 diverse task instructions", "write 15 new tasks like
    these"), and persona- or seed-driven question generation ("as a night-shift nurse, what would
    you ask an assistant? write 10 questions"). Evidence because this is how a student's training
    set is grown before the teacher is asked to answer it; a teacher's quiz for a class, editing
    one's own text or test fixtures as JSON are trained as hard negatives. Score: calibrated
    lexical model over prompt and system prompt (max).
    """

    name = "synthetic_data"
    version = "1"
    columns = ("prompt", "system_prompt")

    def score(self, batch, ctx=None):
        return _ctx(batch, ctx).lexical("synthetic_data")


class CapCoding(Detector):
    """Capability targeting: coding.

    Sees programming tasks (write/complete/fix code, function signatures with docstrings, code
    blocks). Not an attack by itself: the share of coding exchanges in an account or cluster is
    part of a campaign's capability mix, and a cluster doing nothing but benchmark-style coding
    tasks is a distillation profile. Score: calibrated lexical model (trained on GPTeacher
    code tasks, HumanEval and Arena-Hard coding prompts vs other prompts).
    """

    name = "cap_coding"
    version = "1"
    columns = ("prompt", "system_prompt")

    def score(self, batch, ctx=None):
        c = _ctx(batch, ctx)
        code_tools = _tool_match(c, r"code|python|exec|interpreter|repl|compile")
        return np.maximum(c.lexical("coding"), 0.6 * code_tools).astype(np.float32)


class CapAgentic(Detector):
    """Capability targeting: agentic / tool use.

    Sees requests that drive the model as an agent: tools offered with the request, ReAct-style
    Thought/Action/Observation prompts, "you are an autonomous agent with access to...", tool
    call trajectories. Harvested to teach a copy tool use. Score: max of the lexical model
    (prompt and system prompt) and request fields: 0.9 when any tool is offered, 0.97 with
    three or more.
    """

    name = "cap_agentic"
    version = "1"
    columns = ("prompt", "system_prompt", "tools_offered")

    def score(self, batch, ctx=None):
        c = _ctx(batch, ctx)
        n_tools = _tool_count(c)
        fields = np.where(n_tools >= 3, 0.97, np.where(n_tools >= 1, 0.9, 0.0)).astype(np.float32)
        return np.maximum(c.lexical("agentic"), fields).astype(np.float32)


_COMPUTER_TOOLS = r"^computer|computer_use|screenshot|mouse|click|keyboard|browser|gui|desktop|xdotool|playwright|selenium"


class CapComputerUse(Detector):
    """Capability targeting: computer use (GUI / browser control).

    Sees requests to operate a screen: click/type/scroll actions on screenshots, "open the
    browser and book...", accessibility trees, and computer/browser tools offered. Score: max
    of the lexical model and 0.95 when a computer-, mouse-, screenshot- or browser-like tool is
    offered.
    """

    name = "cap_computer_use"
    version = "1"
    columns = ("prompt", "system_prompt", "tools_offered")

    def score(self, batch, ctx=None):
        c = _ctx(batch, ctx)
        return np.maximum(c.lexical("computer_use"), 0.95 * _tool_match(c, _COMPUTER_TOOLS)).astype(np.float32)


class CapVision(Detector):
    """Capability targeting: vision (image inputs).

    Sees requests about attached images (describe, OCR, charts, screenshots to code). The
    request field ``has_images`` is the strong evidence (0.95); the lexical model covers logs
    where it is unknown, and is halved when the request is known to carry no image (an image
    question without an image is not vision traffic).
    """

    name = "cap_vision"
    version = "1"
    columns = ("prompt", "has_images")

    def score(self, batch, ctx=None):
        c = _ctx(batch, ctx)
        lex = c.lexical("vision", system=False)
        img = c.bool_column("has_images")
        if img is None:
            return lex
        out = np.where(img == 1.0, np.maximum(lex, 0.95), np.where(img == 0.0, 0.5 * lex, lex))
        return out.astype(np.float32)


class CapDataAnalysis(Detector):
    """Capability targeting: data analysis.

    Sees requests to analyse tables, CSVs, logs and datasets (statistics, pivots, regressions,
    forecasts), alone or with a code-interpreter / SQL tool. Score: max of the lexical model and
    0.5 when an interpreter, SQL or spreadsheet tool is offered.
    """

    name = "cap_data_analysis"
    version = "1"
    columns = ("prompt", "system_prompt", "tools_offered")

    def score(self, batch, ctx=None):
        c = _ctx(batch, ctx)
        tools = _tool_match(c, r"interpreter|sql|pandas|spreadsheet|excel|csv|dataframe")
        return np.maximum(c.lexical("data_analysis"), 0.5 * tools).astype(np.float32)


class TaskDataset(Detector):
    """Task-dataset fingerprint: the prompt's core is a known benchmark / task-set item.

    Sees GSM8K, HumanEval and GPTeacher code-instruction items (plus any sets named in
    ``DISTILLGUARD_TASKSETS``) inside whatever wrapper, with numbers and names changed.
    Evidence because campaigns harvest answers on public task sets with checkable solutions, and
    ordinary users rarely paste benchmark items verbatim (researchers evaluating a model do, so
    this is weighed with volume and templates at the account level). Score: the share of the
    best-matching item's distinctive word 4-grams found in the prompt; ``task_item_key`` names
    the item when the share is at least 0.5.
    """

    name = "task_dataset"
    version = "1"
    columns = ("prompt",)

    def score(self, batch, ctx=None):
        return _ctx(batch, ctx).task_score


#: distillguard's own detectors, in output column order. The registry loads them exactly as it loads a
#: plugin's entry point (a Detector subclass each).
BUILTIN = (CotElicitation, RewardGrading, PolicyRewrite, SyntheticData, CapCoding, CapAgentic, CapComputerUse, CapVision,
           CapDataAnalysis, TaskDataset)
