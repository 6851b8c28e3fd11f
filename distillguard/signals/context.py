"""Per-batch shared work: the expensive pieces several detectors need, computed once per batch.

Detectors stay pure functions of the batch: a context is built from the batch alone and thrown
away with it. Passing one context to every detector only avoids hashing the same prompts eight
times. A detector called without a context builds its own.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.signals import hashing as H
from distillguard.signals import lexical, tasks, template
from distillguard.signals.memo import PromptMemo

#: De-duplicate a batch's prompts when distinct ones are at most this share of the rows.
DEDUP_MAX_SHARE = 0.8


def column(batch: pa.RecordBatch, name: str) -> pa.Array | None:
    i = batch.schema.get_field_index(name)
    if i < 0:
        return None
    col = batch.column(i)
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


class BatchContext:
    """``memo``: a PromptMemo that the prompt's text signals are looked up in and added to (the
    store's signals stage passes its process's memo; without one, each batch stands alone)."""

    def __init__(self, batch: pa.RecordBatch, memo: PromptMemo | None = None):
        self.batch = batch
        self.n = batch.num_rows
        self.memo = memo

    @cached_property
    def prompts(self) -> pa.Array:
        col = column(self.batch, "prompt")
        if col is None:
            return pa.array([""] * self.n, type=pa.string())
        return H.as_string_array(col)

    @cached_property
    def _unique(self) -> tuple[pa.Array, np.ndarray] | None:
        """(distinct prompts, row -> distinct index) when repeats make de-duplication pay.

        Apps, batch jobs and tools send the same prompt many times; every text signal is a
        function of the prompt alone, so each distinct prompt is scored once.
        """
        if self.n < 64 and (self.memo is None or self.n == 0):
            return None
        enc = pc.dictionary_encode(self.prompts)
        if self.memo is None and len(enc.dictionary) > DEDUP_MAX_SHARE * self.n:
            return None
        return enc.dictionary, enc.indices.to_numpy(zero_copy_only=False)

    def _texts(self) -> pa.Array:
        return self._unique[0] if self._unique is not None else self.prompts

    def _expand(self, values: np.ndarray) -> np.ndarray:
        return values[self._unique[1]] if self._unique is not None else values

    def _expand_arrow(self, values: pa.Array) -> pa.Array:
        return values.take(pa.array(self._unique[1])) if self._unique is not None else values

    @cached_property
    def _memoised(self) -> tuple[np.ndarray, np.ndarray, pa.Array, pa.Array]:
        """Per distinct prompt: lexical scores, task score, task key, template key; prompts the memo
        holds are not scored again, the others are scored together and added to it."""
        texts = self._texts()
        model, index = lexical.get_model(), tasks.get_index()
        memo = self.memo
        memo.bind((id(model), id(index)), len(model.tactics))  # type: ignore[union-attr]
        plist = texts.to_pylist()
        d = len(plist)
        hit, h_lex, h_ts, h_tk, h_tm = memo.recall(plist)  # type: ignore[union-attr]
        lex = np.empty((d, len(model.tactics)), dtype=np.float32)
        ts = np.zeros(d, dtype=np.float32)
        tk = np.empty(d, dtype=object)
        tm = np.empty(d, dtype=object)
        lex[hit], ts[hit], tk[hit], tm[hit] = h_lex, h_ts, h_tk, h_tm
        miss = np.flatnonzero(~hit)
        if len(miss):
            # A handful of texts takes the model's small-batch path (other float rounding): pad with
            # remembered prompts so every prompt is scored as in a batch, whatever else it met.
            pad = np.flatnonzero(hit)[:max(0, lexical.SMALL_BATCH + 1 - len(miss))]
            todo = np.concatenate([miss, pad])
            sub = texts.take(pa.array(todo))
            lx = model.predict(sub, part_memo=memo.parts)[:len(miss)]  # type: ignore[union-attr]
            mt = template.masked_tokens(sub)
            m = tasks.match(mt, index)
            keys = template.template_keys(mt, m.token_mask)
            lex[miss], ts[miss] = lx, m.score[:len(miss)]
            tk[miss] = m.key.to_numpy(zero_copy_only=False)[:len(miss)]
            tm[miss] = keys.to_numpy(zero_copy_only=False)[:len(miss)]
            memo.add([plist[i] for i in miss], lex[miss], ts[miss], tk[miss], tm[miss])  # type: ignore[union-attr]
        return lex, ts, pa.array(tk, type=pa.string()), pa.array(tm, type=pa.string())

    @cached_property
    def lexical_prompt(self) -> np.ndarray:
        """(n, tactics) calibrated lexical scores of the prompt."""
        if self.n == 0:
            return lexical.empty_scores(0)
        if self.memo is not None:
            return self._expand(self._memoised[0])
        return self._expand(lexical.get_model().predict(self._texts()))

    @cached_property
    def lexical_system(self) -> np.ndarray:
        """(n, tactics) lexical scores of the system prompt; each distinct system prompt is scored once
        (an application sends the same one with every request)."""
        col = column(self.batch, "system_prompt")
        if col is None or self.n == 0 or col.null_count == len(col):
            return lexical.empty_scores(self.n)
        enc = pc.dictionary_encode(H.as_string_array(col))
        uniq = enc.dictionary
        probs = lexical.get_model().predict(uniq)
        idx = enc.indices.to_numpy(zero_copy_only=False)
        out = probs[idx]
        empty = np.asarray(pc.equal(pc.utf8_length(H.as_string_array(col)), 0))
        out[empty] = 0.0
        return out

    def lexical(self, tactic: str, system: bool = True) -> np.ndarray:
        j = lexical.TACTICS.index(tactic)
        s = self.lexical_prompt[:, j]
        if system:
            s = np.maximum(s, self.lexical_system[:, j])
        return s.astype(np.float32, copy=False)

    @cached_property
    def masked(self) -> template.MaskedTokens:
        """Masked tokens of the *distinct* prompts (see ``_unique``); internal to task and template keys."""
        return template.masked_tokens(self._texts())

    @cached_property
    def _task_match_distinct(self) -> tasks.TaskMatch:
        return tasks.match(self.masked)

    @cached_property
    def task_match(self) -> tasks.TaskMatch:
        """Per row: best task item containment and key (``token_mask`` is per distinct prompt)."""
        m = self._task_match_distinct
        return tasks.TaskMatch(self._expand(m.score), self._expand_arrow(m.key), m.token_mask)

    @cached_property
    def task_score(self) -> np.ndarray:
        """Per row: containment of the best-matching task item (``task_match.score``, memoised)."""
        if self.memo is not None and self.n:
            return self._expand(self._memoised[1])
        return self.task_match.score

    @cached_property
    def task_keys(self) -> pa.Array:
        """Per row: the matched task item's id or null (``task_match.key``, memoised)."""
        if self.memo is not None and self.n:
            return self._expand_arrow(self._memoised[2])
        return self.task_match.key

    @cached_property
    def template_keys(self) -> pa.Array:
        if self.memo is not None and self.n:
            return self._expand_arrow(self._memoised[3])
        return self._expand_arrow(template.template_keys(self.masked, self._task_match_distinct.token_mask))

    def list_column(self, name: str) -> tuple[np.ndarray, pa.Array] | None:
        """(row of each element, flattened values) of a list column, or None when absent."""
        col = column(self.batch, name)
        if col is None or self.n == 0:
            return None
        flat = pc.list_flatten(col)
        parent = pc.list_parent_indices(col).to_numpy(zero_copy_only=False)
        return parent, flat

    def bool_column(self, name: str) -> np.ndarray | None:
        """Tri-state as float: 1 true, 0 false, NaN unknown."""
        col = column(self.batch, name)
        if col is None:
            return None
        return np.asarray(pc.cast(col, pa.float32()).to_numpy(zero_copy_only=False), dtype=np.float32)
