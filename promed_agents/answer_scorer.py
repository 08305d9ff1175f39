"""The value of a coalition of facts: how likely a scorer model finds the correct answer.

case -> consultation graph -> trace in SQL -> **Shapley** / SIG -> MCTS-SFT / GRPO

v(S) is the mean log-probability of the correct answer's tokens (the option text, or
letter and text) after a chat prompt holding the exam question, the options and the facts
in S, in the case's order (:func:`scored_text`). The scored tokens are exactly those the
tokenizer gives for the whole rendered text, prompt and answer together, the answer's
tokens being those that overlap its characters (with SmolLM2 the first is ``' Mig'``,
space included, as the model reads it). The prompt is laid out so that everything before
the facts is shared by all coalitions of a case: :class:`LocalAnswerScorer` runs that
prefix once, and keeps the key/value states of the coalitions it scores, so a coalition
whose first facts (in the case's order) were scored before, such as {0, 2, 5} after
{0, 2}, reads only the rest. Reuse is on token ids of the joint tokenization (a token
prefix has the same states whatever follows it), so it never changes a value.
Coalitions are scored in batches, in float32 (bfloat16 results depend on the batch
composition, which would make v depend on it too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from promed_agents.case import Case
from promed_agents.errors import BackendError
from promed_agents.shapley import Coalition, ValueFunction

AnswerTarget = Literal["text", "letter-text"]
SCORER_SYSTEM = "You are a doctor answering a medical exam question about a patient."
_FACTS, _ANSWER = "\x00FACTS\x00", "\x00ANSWER\x00"


def answer_text(case: Case, target: AnswerTarget) -> str:
    """The scored continuation: the correct option(s)' text, or letter and text."""
    parts = [case.options[letter] if target == "text" else f"{letter}. {case.options[letter]}"
             for letter in case.answer]
    return "; ".join(parts)


def facts_text(case: Case, coalition: Coalition) -> str:
    return " ".join(case.facts[i] for i in sorted(coalition)) or "(nothing)"


@dataclass(frozen=True)
class ScoredText:
    """The rendered prompt and answer of one coalition, with character spans."""

    text: str
    facts: tuple[int, int]
    """Where the coalition's facts are in ``text``."""
    answer: tuple[int, int]
    """Where the scored answer is in ``text``."""


def scored_text(tokenizer: Any, case: Case, coalition: Coalition,
                target: AnswerTarget = "text") -> ScoredText:
    """The scorer's chat (system, user with question, options and the facts of
    ``coalition``, assistant ``answer: <answer>``) rendered by ``tokenizer``'s chat
    template, with the facts' and the answer's character spans."""
    options = "\n".join(f"{k}. {v}" for k, v in case.options.items())
    user = f"Question: {case.question}\nOptions:\n{options}\n\nWhat you know about the " \
           f"patient: {_FACTS}"
    rendered = tokenizer.apply_chat_template(
        [{"role": "system", "content": SCORER_SYSTEM}, {"role": "user", "content": user},
         {"role": "assistant", "content": f"answer: {_ANSWER}"}], tokenize=False)
    prefix, rest = rendered.split(_FACTS)
    middle, end = rest.split(_ANSWER)
    facts, answer = facts_text(case, coalition), answer_text(case, target)
    facts_at = len(prefix)
    answer_at = facts_at + len(facts) + len(middle)
    return ScoredText(prefix + facts + middle + answer + end,
                      (facts_at, facts_at + len(facts)), (answer_at, answer_at + len(answer)))


@dataclass(frozen=True)
class ScoredTokens:
    """One coalition's token ids, from the joint tokenization of its :class:`ScoredText`,
    cut after the answer's last token."""

    ids: list[int]
    n_answer: int
    """The last ``n_answer`` ids are the answer's (tokens overlapping its characters)."""
    n_facts_end: int
    """``ids[:n_facts_end]`` ends with the last token overlapping the facts: the part whose
    states later coalitions with the same first facts can reuse."""


def scored_tokens(tokenizer: Any, scored: ScoredText) -> ScoredTokens:
    encoded = tokenizer(scored.text, add_special_tokens=False, return_offsets_mapping=True)
    spans = encoded["offset_mapping"]
    (f_start, f_end), (a_start, a_end) = scored.facts, scored.answer
    answer = [i for i, (s, e) in enumerate(spans) if s < a_end and e > a_start]
    if not answer:
        raise BackendError("the scorer's tokenizer gives no token for the answer text")
    facts_end = max((i + 1 for i, (s, e) in enumerate(spans) if s < f_end and e > f_start),
                    default=0)
    last = answer[-1] + 1
    return ScoredTokens(list(encoded["input_ids"][:last]), last - answer[0],
                        min(facts_end, answer[0]))


class AnswerScorer(Protocol):
    """Anything that gives v for batches of a case's coalitions, named by a spec."""

    @property
    def spec(self) -> str: ...

    def value_function(self, case: Case) -> ValueFunction: ...


def resolve_scorer(spec: str, target: AnswerTarget = "text") -> AnswerScorer:
    """The scorer a model spec names: ``local:smollm2``, ``local:PATH``, or a server that
    echoes prompt logprobs, ``vllm:MODEL@URL`` / ``openai:MODEL@URL``
    (:mod:`promed_agents.served_answer_scorer`)."""
    from promed_agents.backends import ModelSpec

    parsed = ModelSpec.parse(spec)
    if parsed.provider == "local":
        return LocalAnswerScorer(model_ref=parsed.model, target=target)
    if parsed.provider in ("vllm", "openai") and parsed.base_url:
        from promed_agents.served_answer_scorer import ServedAnswerScorer

        return ServedAnswerScorer(model=parsed.model, base_url=parsed.base_url,
                                  provider=parsed.provider, target=target)
    raise BackendError(f"scorer {spec!r}: Shapley values need the prompt's token "
                       f"log-probabilities: use 'local:smollm2', 'local:PATH' (a "
                       f"transformers model directory) or 'vllm:MODEL@http://host:port/v1'")


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

        from promed_agents.backends.local_weights import load_local_model
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
            out: list[float] = []
            for start in range(0, len(rows), self.batch_size):
                out += _score(model, cache, rows[start:start + self.batch_size],
                              tokenizer.pad_token_id, keep=self.reuse_mb > 0)
            return out

        value.cache = cache  # type: ignore[attr-defined]  # for inspection
        return value


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
