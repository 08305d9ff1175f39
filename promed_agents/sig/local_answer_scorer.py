"""v(S) under local transformers weights: the embedded SmolLM2 or a model directory.

case -> consultation graph -> trace in SQL -> **Shapley** / SIG -> MCTS-SFT / GRPO

The prompt (:func:`~promed_agents.sig.answer_scorer.scored_text`) is laid out so that
everything before the facts is shared by all coalitions of a case:
:class:`LocalAnswerScorer` runs that prefix once, and keeps the key/value states of the
coalitions it scores, so a coalition whose first facts (in the case's order) were scored
before, such as {0, 2, 5} after {0, 2}, reads only the rest. Reuse is on token ids of the
joint tokenization (a token prefix has the same states whatever follows it), so it never
changes a value. Coalitions are scored in batches of similar uncached length (padding
costs as much as tokens), in float32 (bfloat16 results depend on
the batch composition, which would make v depend on it too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from promed_agents.case import Case
from promed_agents.sig.answer_scorer import (
    AnswerTarget,
    ScoredTokens,
    scored_text,
    scored_tokens,
)
from promed_agents.sig.shapley import Coalition, ValueFunction


@dataclass
class LocalAnswerScorer:
    """v(S) under a local transformers model (``smollm2`` or a model directory)."""

    model_ref: str = "smollm2"
    target: AnswerTarget = "text"
    batch_size: int = 32
    reuse_mb: int = 1024
    """Memory for the states of scored coalitions, reused by later coalitions that start
    with the same facts (0: only the shared prompt prefix is reused)."""

    @property
    def spec(self) -> str:
        return f"local:{self.model_ref}"

    def tokens(self, tokenizer: Any, case: Case, coalition: Coalition) -> ScoredTokens:
        """The token ids whose answer part is scored for ``coalition``."""
        return scored_tokens(tokenizer, scored_text(tokenizer, case, coalition, self.target))

    def value_function(self, case: Case) -> ValueFunction:
        """v for batches of coalitions of ``case``'s facts."""
        import torch

        from promed_agents.backends.model_pool import load_local_model
        from promed_agents.backends.prefix_cache import PrefixCache, extend

        model, tokenizer = load_local_model(self.model_ref)
        # The prefix every coalition shares: the tokens before the facts that the empty
        # and the full coalition's joint tokenizations have in common.
        empty = self.tokens(tokenizer, case, frozenset())
        full = self.tokens(tokenizer, case, frozenset(range(len(case.facts))))
        shared_len = next((i for i, (a, b) in enumerate(zip(empty.ids, full.ids, strict=False))
                           if a != b), min(len(empty.ids), len(full.ids)))
        prefix = empty.ids[:min(shared_len, len(empty.ids) - empty.n_answer - 1)]
        with torch.inference_mode():
            shared = extend(model, prefix, 0, None)
        # The shared prefix always stays; reuse_mb is what coalitions may add to it.
        cache = PrefixCache((self.reuse_mb << 20) + sum(k.nbytes + v.nbytes for k, v in shared))
        cache.store(prefix, shared)

        def value(coalitions: Sequence[Coalition]) -> list[float]:
            rows = [self.tokens(tokenizer, case, c) for c in coalitions]
            out = [0.0] * len(rows)
            for batch in _length_buckets(rows, cache, self.batch_size):
                scores = _score(model, cache, [rows[i] for i in batch],
                                tokenizer.pad_token_id, keep=self.reuse_mb > 0)
                for i, score in zip(batch, scores, strict=True):
                    out[i] = score
            return out

        value.cache = cache  # type: ignore[attr-defined]  # for inspection
        return value


def _length_buckets(rows: list[ScoredTokens], cache: Any, batch_size: int,
                    waste: float = 0.25) -> list[list[int]]:
    """Row indices in batches of similar uncached length, longest first.

    A batch costs its rows times its longest uncached part, so a batch mixing a
    one-fact coalition with a ten-fact one pays for padding; a row joins the current
    batch only while the padding stays under ``waste`` of the batch's tokens."""
    rest = [len(row.ids) - cache.lookup(row.ids, len(row.ids) - row.n_answer - 1)[0]
            for row in rows]
    batches: list[list[int]] = []
    real = 0
    for i in sorted(range(len(rows)), key=lambda i: -rest[i]):
        if batches and len(batches[-1]) < batch_size:
            width, count = rest[batches[-1][0]], len(batches[-1]) + 1
            if (width * count - real - rest[i]) <= waste * width * count:
                batches[-1].append(i)
                real += rest[i]
                continue
        batches.append([i])
        real = rest[i]
    return batches


def _score(model: Any, cache: Any, rows: list[ScoredTokens], pad: int,
           keep: bool) -> list[float]:
    """Mean log-probability of the answer tokens (the last ``n_answer``) of each row.

    Each row starts from the longest prefix whose states ``cache`` holds (at least the
    shared prompt prefix; with ``keep``, also the facts of coalitions scored before, in
    the same order). The batch is laid out as [padding, cached part, padding, rest], so
    every row's answer ends the batch and only those positions go through the output
    layer; with ``keep``, each row's states up to its last fact token are stored back."""
    import torch
    from transformers import DynamicCache

    from promed_agents.backends.prefix_cache import cached_layout, left_pad, row_states

    hits = [cache.lookup(row.ids, len(row.ids) - row.n_answer - 1) for row in rows]
    for (reused, _), row in zip(hits, rows, strict=True):  # what the cache saved
        cache.hits_tokens += reused
        cache.computed_tokens += len(row.ids) - reused
    full, mask, head = cached_layout([row.ids for row in rows], [c for c, _ in hits], pad)
    ids, width = full[:, head:], full.shape[1] - head
    positions = (mask.cumsum(-1) - 1)[:, head:].clamp(min=0)
    states = DynamicCache(ddp_cache_data=left_pad([kv for _, kv in hits], head))
    n_keep = max(row.n_answer for row in rows)
    with torch.inference_mode():
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions,
                    past_key_values=states, use_cache=keep, logits_to_keep=n_keep + 1)
        if keep:
            for i, ((c, _), row) in enumerate(zip(hits, rows, strict=True)):
                if row.n_facts_end <= c:
                    continue
                start = head + width - (len(row.ids) - c)
                kept = torch.cat([mask[i, :head].nonzero().squeeze(1),
                                  torch.arange(start, start + row.n_facts_end - c)])
                cache.store(row.ids[:row.n_facts_end],
                            row_states(out.past_key_values, i, kept))
    logprobs = torch.log_softmax(out.logits[:, :-1].float(), dim=-1)
    picked = logprobs.gather(-1, ids[:, width - n_keep:].unsqueeze(-1)).squeeze(-1)
    return [float(picked[i, n_keep - row.n_answer:].mean()) for i, row in enumerate(rows)]
