"""The value of a coalition of facts: how likely a scorer model finds the correct answer.

case -> consultation graph -> trace in SQL -> **Shapley** / SIG -> MCTS-SFT / GRPO

v(S) is the mean log-probability of the correct answer's tokens (the option text, or
letter and text) after a chat prompt holding the exam question, the options and the facts
in S, in the case's order. The prompt is laid out so that everything before the facts is
shared by all coalitions of a case: :class:`LocalAnswerScorer` runs that prefix once,
then scores coalitions in right-padded batches on top of its key/value states, in float32
(bfloat16 results depend on the batch composition, which would make v depend on it too).
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
    """The scorer a model spec names: ``local:smollm2`` or ``local:PATH``."""
    provider, _, name = spec.partition(":")
    if provider == "local" and name:
        return LocalAnswerScorer(model_ref=name, target=target)
    raise BackendError(f"scorer {spec!r}: Shapley values need the prompt's token "
                       f"log-probabilities, which only local models give here; use "
                       f"'local:smollm2' or 'local:PATH' (a transformers model directory)")


@dataclass
class LocalAnswerScorer:
    """v(S) under a local transformers model (``smollm2`` or a model directory)."""

    model_ref: str = "smollm2"
    target: AnswerTarget = "text"
    batch_size: int = 32

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

        model, tokenizer = load_local_model(self.model_ref)
        prefix, middle, answer = self._segments(tokenizer, case)
        with torch.inference_mode():
            shared = model(input_ids=torch.tensor([prefix]), use_cache=True,
                           logits_to_keep=1).past_key_values

        def value(coalitions: Sequence[Coalition]) -> list[float]:
            rows = [tokenizer(" " + facts_text(case, c), add_special_tokens=False)["input_ids"]
                    + middle + answer for c in coalitions]
            out: list[float] = []
            for start in range(0, len(rows), self.batch_size):
                out += _score(model, shared, len(prefix), rows[start:start + self.batch_size],
                              len(answer), tokenizer.pad_token_id)
            return out

        return value


def _score(model: Any, shared: Any, prefix_len: int, rows: list[list[int]], n_answer: int,
           pad: int) -> list[float]:
    """Mean log-probability of each row's last ``n_answer`` tokens, the rows continuing
    the shared prefix states. Rows are left-padded after the prefix, so every row's
    answer ends the batch and only those positions go through the output layer."""
    import torch
    from transformers import DynamicCache

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), prefix_len + width), dtype=torch.long)
    mask[:, :prefix_len] = 1
    for i, row in enumerate(rows):
        ids[i, width - len(row):] = torch.tensor(row)
        mask[i, prefix_len + width - len(row):] = 1
    positions = (mask.cumsum(-1) - 1)[:, prefix_len:].clamp(min=0)
    states = DynamicCache(ddp_cache_data=[
        (layer.keys.expand(len(rows), -1, -1, -1), layer.values.expand(len(rows), -1, -1, -1))
        for layer in shared.layers])
    with torch.inference_mode():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions,
                       past_key_values=states, logits_to_keep=n_answer + 1).logits
    logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    picked = logprobs.gather(-1, ids[:, width - n_answer:].unsqueeze(-1)).squeeze(-1)
    return picked.mean(dim=-1).tolist()
