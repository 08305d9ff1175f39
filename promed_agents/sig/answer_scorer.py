"""The value of a coalition of facts: how likely a scorer model finds the correct answer.

case -> consultation graph -> trace in SQL -> **Shapley** / SIG -> MCTS-SFT / GRPO

v(S) is the mean log-probability of the correct answer's tokens (the option text, or
letter and text) after a chat prompt holding the exam question, the options and the facts
in S, in the case's order (:func:`scored_text`). The scored tokens are exactly those the
tokenizer gives for the whole rendered text, prompt and answer together, the answer's
tokens being those that overlap its characters (with SmolLM2 the first is ``' Mig'``,
space included, as the model reads it). This module holds the :class:`AnswerScorer`
protocol and what every scorer shares; :mod:`.local_answer_scorer` scores with local
weights, :mod:`.served_answer_scorer` with a server, and :mod:`.scorer_spec` picks one
from a model spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from promed_agents.case import Case
from promed_agents.errors import BackendError
from promed_agents.sig.shapley import Coalition, ValueFunction

AnswerTarget = Literal["text", "letter-text"]
SCORER_SYSTEM = "You are a doctor answering a medical exam question about a patient."
OPEN_SCORER_SYSTEM = "You are a doctor diagnosing a patient."
"""The system message for an open-ended case (a diagnosis, no options)."""
_FACTS, _ANSWER = "\x00FACTS\x00", "\x00ANSWER\x00"


def answer_text(case: Case, target: AnswerTarget) -> str:
    """The scored continuation: the correct option(s)' text, or letter and text; an
    open-ended case's diagnosis (``target`` aside: it has no letters)."""
    if case.open_ended:
        return case.answer_text
    parts = [case.options[letter] if target == "text" else f"{letter}. {case.options[letter]}"
             for letter in case.answer]
    return "; ".join(parts)


def case_question(case: Case) -> str:
    """The question as the scorers put it: with its options, or an open-ended case's
    objective alone (no options to give the answer away)."""
    if case.open_ended:
        return f"Question: {case.question}"
    options = "\n".join(f"{k}. {v}" for k, v in case.options.items())
    return f"Question: {case.question}\nOptions:\n{options}"


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


def scorer_chat(case: Case, facts: str, answer: str) -> list[dict[str, str]]:
    """The scorer's chat: system, user with question, options and ``facts``, assistant
    ``answer: <answer>`` (an open-ended case: no options, ``diagnosis: <diagnosis>``);
    every scorer reads v(S) off it."""
    user = f"{case_question(case)}\n\nWhat you know about the patient: {facts}"
    marker = "diagnosis" if case.open_ended else "answer"
    system = OPEN_SCORER_SYSTEM if case.open_ended else SCORER_SYSTEM
    return [{"role": "system", "content": system}, {"role": "user", "content": user},
            {"role": "assistant", "content": f"{marker}: {answer}"}]


def scored_text(tokenizer: Any, case: Case, coalition: Coalition,
                target: AnswerTarget = "text") -> ScoredText:
    """The scorer's chat (:func:`scorer_chat`) for the facts of ``coalition``, rendered by
    ``tokenizer``'s chat template, with the facts' and the answer's character spans."""
    rendered = tokenizer.apply_chat_template(scorer_chat(case, _FACTS, _ANSWER),
                                             tokenize=False)
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
