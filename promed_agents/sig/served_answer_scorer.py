"""v(S) from a served model: the log-probabilities of the answer's prompt tokens.

case -> consultation graph -> trace in SQL -> **Shapley** / SIG -> MCTS-SFT / GRPO

:class:`ServedAnswerScorer` asks an OpenAI-compatible server for the log-probability of
every prompt token, and v(S) is their mean over the answer's tokens. Two ways, by the
server:

- ``chat`` (``vllm:``): the scorer's own chat (:func:`~.answer_scorer.scorer_chat`) to
  vLLM's ``/v1/chat/completions`` with ``continue_final_message`` (the prompt ends with
  the answer, as the local scorer cuts it) and ``prompt_logprobs=0``, one request per
  coalition, ``concurrency`` at a time (the server batches them). The server renders the
  model's chat template and tokenizes the whole text as
  :class:`~.local_answer_scorer.LocalAnswerScorer` does, so on the same weights the
  values are the local scorer's (to the float tolerance of another kernel).
- ``completion`` (``openai:``, any server that keeps the legacy completions API): each
  batch of coalitions as one ``/v1/completions`` request with ``echo=True`` and
  ``logprobs=0``; the prompt is plain text (no chat template), the answer's tokens found
  by text offset::

      Question: ... Options: A. ... What you know about the patient: <facts in S>
      Answer: <answer>
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from promed_agents.case import Case
from promed_agents.errors import BackendError
from promed_agents.sig.answer_scorer import (
    AnswerTarget,
    answer_text,
    case_question,
    facts_text,
    scorer_chat,
)
from promed_agents.sig.shapley import Coalition, ValueFunction

PromptForm = Literal["chat", "completion"]


def served_prompt(case: Case, coalition: Coalition) -> str:
    """The completion form's prompt up to and including ``Answer:`` (``Diagnosis:`` for an
    open-ended case; the answer follows after a space)."""
    return (f"{case_question(case)}\n\nWhat you know about the patient: "
            f"{facts_text(case, coalition)}\n{'Diagnosis' if case.open_ended else 'Answer'}:")


@dataclass
class ServedAnswerScorer:
    """v(S) from an OpenAI-compatible server that returns prompt logprobs."""

    model: str
    base_url: str
    provider: str = "vllm"
    target: AnswerTarget = "text"
    batch_size: int = 64
    """Coalitions per request (completion form)."""
    concurrency: int = 16
    """Requests at once (chat form)."""
    timeout_s: float = 120.0
    prompt: PromptForm | None = None
    """``chat`` or ``completion`` [default: chat for vLLM, completion otherwise]."""

    @property
    def spec(self) -> str:
        return f"{self.provider}:{self.model}@{self.base_url}"

    @property
    def form(self) -> PromptForm:
        return self.prompt or ("chat" if self.provider == "vllm" else "completion")

    def _client(self) -> Any:
        from openai import OpenAI

        return OpenAI(base_url=self.base_url, api_key="not-needed", timeout=self.timeout_s)

    def value_function(self, case: Case) -> ValueFunction:
        if self.form == "chat":
            return self._chat_values(case)
        return self._completion_values(case)

    def _chat_values(self, case: Case) -> ValueFunction:
        client = self._client()
        answer = answer_text(case, self.target)

        def one(coalition: Coalition) -> float:
            response = client.chat.completions.create(
                model=self.model, messages=scorer_chat(case, facts_text(case, coalition),
                                                       answer),
                max_tokens=1, temperature=0.0,
                extra_body={"add_generation_prompt": False, "continue_final_message": True,
                            "prompt_logprobs": 0, "return_token_ids": True})
            data = response.model_dump()
            return _chat_answer_logprob(data.get("prompt_logprobs"),
                                        data.get("prompt_token_ids"), answer, self.spec)

        def value(coalitions: Sequence[Coalition]) -> list[float]:
            with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                return list(pool.map(one, coalitions))

        return value

    def _completion_values(self, case: Case) -> ValueFunction:
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


def _chat_answer_logprob(prompt_logprobs: list[dict[str, Any] | None] | None,
                         prompt_ids: list[int] | None, answer: str, spec: str) -> float:
    """Mean logprob of the prompt's last tokens that overlap ``answer`` (the prompt ends
    with it): walking back, the tokens until their text covers the answer's length."""
    if not prompt_logprobs or not prompt_ids or len(prompt_logprobs) != len(prompt_ids):
        raise BackendError(f"scorer {spec!r}: the server returned no prompt logprobs for "
                           "prompt_logprobs=0 with return_token_ids; the chat form needs "
                           "vLLM (or use openai:MODEL@URL, the completions form)")
    picked, covered = [], 0
    for token_id, entry in zip(reversed(prompt_ids), reversed(prompt_logprobs), strict=True):
        if entry is None or covered >= len(answer):
            break
        logprob = entry.get(str(token_id), entry.get(token_id))
        if logprob is None:
            raise BackendError(f"scorer {spec!r}: the prompt logprobs lack the prompt's own "
                               f"token {token_id}")
        picked.append(logprob["logprob"])
        covered += len(logprob.get("decoded_token") or "")
    if covered < len(answer):
        raise BackendError(f"scorer {spec!r}: the prompt's tokens do not cover the answer "
                           "(does the server continue the final message?)")
    return sum(picked) / len(picked)


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
