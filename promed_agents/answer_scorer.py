"""The value of a coalition of facts: how likely a scorer model finds the correct answer.

case -> consultation graph -> trace in SQL -> **Shapley** / SIG -> MCTS-SFT / GRPO

v(S) is the mean log-probability of the correct answer's tokens (the option text, or
letter and text) after a chat prompt holding the exam question, the options and the facts
in S, in the case's order. The prompt is laid out so that everything before the facts is
shared by all coalitions of a case: :class:`LocalAnswerScorer` runs that prefix once, and
keeps the key/value states of the coalitions it scores, so a coalition whose first facts
(in the case's order) were scored before, such as {0, 2, 5} after {0, 2}, reads only the
rest. Coalitions are scored in batches, in float32 (bfloat16 results depend on the batch
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

    def _segments(self, tokenizer: Any, case: Case) -> tuple[list[int], list[int], list[int]]:
        """Token ids of the shared prefix, of the text between facts and answer, and of
        the answer, cut from the chat template rendered around placeholders."""
        options = "\n".join(f"{k}. {v}" for k, v in case.options.items())
        user = f"Question: {case.question}\nOptions:\n{options}\n\nWhat you know about the " \
               f"patient: {_FACTS}"
        text = tokenizer.apply_chat_template(
            [{"role": "system", "content": SCORER_SYSTEM}, {"role": "user", "content": user},
             {"role": "assistant", "content": f"answer: {_ANSWER}"}], tokenize=False)
        prefix, rest = text.split(_FACTS)
        middle, _ = rest.split(_ANSWER)

        def ids(s: str) -> list[int]:
            return tokenizer(s, add_special_tokens=False)["input_ids"]

        return ids(prefix), ids(middle), ids(answer_text(case, self.target))

    def value_function(self, case: Case) -> ValueFunction:
        """v for batches of coalitions of ``case``'s facts."""
        import torch

        from promed_agents.backends.local_weights import load_local_model
        from promed_agents.backends.prefix_cache import PrefixCache, extend

        model, tokenizer = load_local_model(self.model_ref)
        prefix, middle, answer = self._segments(tokenizer, case)
        with torch.inference_mode():
            shared = extend(model, prefix, 0, None)
        # The shared prefix always stays; reuse_mb is what coalitions may add to it.
        cache = PrefixCache((self.reuse_mb << 20) + sum(k.nbytes + v.nbytes for k, v in shared))
        cache.store(prefix, shared)

        def value(coalitions: Sequence[Coalition]) -> list[float]:
            rows = [prefix + tokenizer(" " + facts_text(case, c),
                                       add_special_tokens=False)["input_ids"]
                    for c in coalitions]
            out: list[float] = []
            for start in range(0, len(rows), self.batch_size):
                out += _score(model, cache, rows[start:start + self.batch_size],
                              middle + answer, len(answer), tokenizer.pad_token_id,
                              keep=self.reuse_mb > 0)
            return out

        value.cache = cache  # type: ignore[attr-defined]  # for inspection
        return value


def _score(model: Any, cache: Any, rows: list[list[int]], suffix: list[int], n_answer: int,
           pad: int, keep: bool) -> list[float]:
    """Mean log-probability of the last ``n_answer`` tokens of each ``row + suffix``.

    Each row starts from the longest prefix whose states ``cache`` holds (at least the
    shared prompt prefix; with ``keep``, also the facts of coalitions scored before, in
    the same order). The batch is laid out as [padding, cached part, padding, rest], so
    every row's answer ends the batch and only those positions go through the output
    layer; with ``keep``, each row's states up to its last fact are stored back."""
    import torch
    from transformers import DynamicCache

    from promed_agents.backends.prefix_cache import cached_layout, left_pad, row_states

    hits = [cache.lookup(row, len(row)) for row in rows]
    full, mask, head = cached_layout([row + suffix for row in rows], [c for c, _ in hits], pad)
    ids, width = full[:, head:], full.shape[1] - head
    tails = [len(row) + len(suffix) - c for row, (c, _) in zip(rows, hits, strict=True)]
    positions = (mask.cumsum(-1) - 1)[:, head:].clamp(min=0)
    states = DynamicCache(ddp_cache_data=left_pad([kv for _, kv in hits], head))
    with torch.inference_mode():
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions,
                    past_key_values=states, use_cache=keep, logits_to_keep=n_answer + 1)
        if keep:
            for i, ((c, _), row) in enumerate(zip(hits, rows, strict=True)):
                start = head + width - tails[i]
                kept = torch.cat([mask[i, :head].nonzero().squeeze(1),
                                  torch.arange(start, start + len(row) - c)])
                cache.store(row, row_states(out.past_key_values, i, kept))
    logprobs = torch.log_softmax(out.logits[:, :-1].float(), dim=-1)
    picked = logprobs.gather(-1, ids[:, width - n_answer:].unsqueeze(-1)).squeeze(-1)
    return picked.mean(dim=-1).tolist()
