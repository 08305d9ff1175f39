"""v(S) from a served model: prompt log-probabilities over the OpenAI completions API.

case -> consultation graph -> trace in SQL -> **Shapley** / SIG -> MCTS-SFT / GRPO

:class:`ServedAnswerScorer` sends each batch of coalitions as one ``/v1/completions``
request with ``echo=True`` and ``logprobs=0``, which vLLM (and other servers that keep the
legacy completions API) answer with the log-probability of every prompt token and its
text offset; v(S) is the mean over the tokens of the answer, found by offset. The prompt
is plain text (the server applies no chat template to completions):

    Question: ... Options: A. ... What you know about the patient: <facts in S>
    Answer: <answer>
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from promed_agents.case import Case
from promed_agents.errors import BackendError
from promed_agents.sig.answer_scorer import AnswerTarget, answer_text, facts_text
from promed_agents.sig.shapley import Coalition, ValueFunction


def served_prompt(case: Case, coalition: Coalition) -> str:
    """The prompt up to and including ``Answer:`` (the answer follows after a space)."""
    options = "\n".join(f"{k}. {v}" for k, v in case.options.items())
    return (f"Question: {case.question}\nOptions:\n{options}\n\nWhat you know about the "
            f"patient: {facts_text(case, coalition)}\nAnswer:")


@dataclass
class ServedAnswerScorer:
    """v(S) from an OpenAI-compatible server that echoes prompt logprobs (vLLM)."""

    model: str
    base_url: str
    provider: str = "vllm"
    target: AnswerTarget = "text"
    batch_size: int = 64
    timeout_s: float = 120.0

    @property
    def spec(self) -> str:
        return f"{self.provider}:{self.model}@{self.base_url}"

    def _client(self) -> Any:
        from openai import OpenAI

        return OpenAI(base_url=self.base_url, api_key="not-needed", timeout=self.timeout_s)

    def value_function(self, case: Case) -> ValueFunction:
        client = self._client()
        answer = " " + answer_text(case, self.target)

        def value(coalitions: Sequence[Coalition]) -> list[float]:
            out: list[float] = []
            for start in range(0, len(coalitions), self.batch_size):
                prompts = [served_prompt(case, c) for c in coalitions[start:start +
                                                                      self.batch_size]]
                response = client.completions.create(
                    model=self.model, prompt=[p + answer for p in prompts], echo=True,
                    logprobs=0, max_tokens=1, temperature=0.0)
                choices = sorted(response.choices, key=lambda c: c.index)
                out += [_answer_logprob(choice, len(prompt), len(prompt) + len(answer),
                                        self.spec)
                        for choice, prompt in zip(choices, prompts, strict=True)]
            return out

        return value


def _answer_logprob(choice: Any, start: int, end: int, spec: str) -> float:
    """Mean logprob of the echoed tokens whose text starts in [start, end)."""
    logprobs = choice.logprobs
    if logprobs is None or not logprobs.token_logprobs or not logprobs.text_offset:
        raise BackendError(f"scorer {spec!r}: the server returned no prompt logprobs for "
                           f"echo=True, logprobs=0; Shapley scoring needs a server that "
                           f"echoes them (vLLM does)")
    picked = [lp for offset, lp in zip(logprobs.text_offset, logprobs.token_logprobs,
                                       strict=True)
              if start <= offset < end and lp is not None]
    if not picked:
        raise BackendError(f"scorer {spec!r}: no echoed token falls on the answer (text "
                           f"offsets {start}..{end}); does the server echo the prompt?")
    return sum(picked) / len(picked)
