"""Partial-information views: what the doctor knows when a consultation starts.

case -> **partial view** -> consultation graph -> trace in SQL -> Shapley/SIG -> training

A view names the known facts by index into ``Case.facts``; the rest the doctor must ask the
patient for. The policy used is recorded with every episode, because SIG counts the known
facts as acquired from the start.

Policies:

- ``half-facts`` (ProMed training, the default): the first ``floor(n / 2)`` facts.
- ``first-sentence`` (MediQ evaluation): the first context sentence, kept as given text,
  mapped to the facts it contains by a matcher (token overlap by default; pass your own
  :data:`FactMatcher` for another rule).
- ``initial``: the facts the case says the doctor is given (``Case.initial_fact_ids``:
  AgentClinic's demographics and chief complaint, beside the objective, which is the
  case's question); a case that does not say is an error.
- ``none``: no fact, only the question (AgentClinic's own doctor is given nothing but its
  objective; ``initial`` adds the demographics and the chief complaint).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field

from promed_agents.case import Case
from promed_agents.errors import PartialInfoError
from promed_agents.text_similarity import content_tokens


class PartialInfoPolicy(str, Enum):
    """How much of a case the doctor is given at the start."""

    HALF_FACTS = "half-facts"
    FIRST_SENTENCE = "first-sentence"
    INITIAL = "initial"
    NONE = "none"


DEFAULT_POLICY = PartialInfoPolicy.HALF_FACTS

FactMatcher = Callable[[str, str], bool]
"""``matcher(fact, text) -> bool``: does ``text`` state ``fact``?"""

def token_overlap_matcher(threshold: float = 0.75) -> FactMatcher:
    """A matcher that accepts a fact when every number in it occurs in the text and at
    least ``threshold`` of its other content tokens (words; character bigrams for Chinese)
    do too."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")

    def matches(fact: str, text: str) -> bool:
        fact_tokens, fact_numbers = content_tokens(fact)
        text_tokens, text_numbers = content_tokens(text)
        if not fact_numbers <= text_numbers:
            return False
        if not fact_tokens:
            return bool(fact_numbers)
        return len(fact_tokens & text_tokens) / len(fact_tokens) >= threshold

    return matches


class PartialView(BaseModel):
    """The doctor's starting knowledge of one case."""

    model_config = ConfigDict(frozen=True)

    policy: PartialInfoPolicy
    known_fact_ids: list[int] = Field(description="Indices into Case.facts, ascending.")
    given_text: str | None = Field(
        default=None,
        description="Text shown to the doctor as given (first-sentence); None means the "
        "known facts themselves are shown.",
    )

    def known_facts(self, case: Case) -> list[str]:
        return [case.facts[i] for i in self.known_fact_ids]

    def hidden_fact_ids(self, case: Case) -> list[int]:
        known = set(self.known_fact_ids)
        return [i for i in range(len(case.facts)) if i not in known]

    def opening_text(self, case: Case) -> str:
        """What the doctor reads at the start: the given text, or the known facts."""
        if self.given_text is not None:
            return self.given_text
        return " ".join(self.known_facts(case))


def partial_view(
    case: Case,
    policy: PartialInfoPolicy | str = DEFAULT_POLICY,
    matcher: FactMatcher | None = None,
) -> PartialView:
    """Build the starting view of ``case`` under ``policy``."""
    try:
        policy = PartialInfoPolicy(policy)
    except ValueError:
        choices = ", ".join(p.value for p in PartialInfoPolicy)
        raise PartialInfoError(
            f"unknown partial-information policy {policy!r}; choose one of {choices}"
        ) from None
    if policy is PartialInfoPolicy.NONE:
        return PartialView(policy=policy, known_fact_ids=[])
    if policy is PartialInfoPolicy.HALF_FACTS:
        return PartialView(policy=policy, known_fact_ids=list(range(len(case.facts) // 2)))
    if policy is PartialInfoPolicy.INITIAL:
        if case.initial_fact_ids is None:
            raise PartialInfoError(
                f"case {case.id}: policy 'initial' needs the facts the case gives at the "
                "start (initial_fact_ids, as AgentClinic's cases have) and this case has "
                "none; use 'half-facts'")
        return PartialView(policy=policy, known_fact_ids=sorted(set(case.initial_fact_ids)))
    if not case.context:
        raise PartialInfoError(
            f"case {case.id}: policy 'first-sentence' needs context sentences and this case "
            "has none; use 'half-facts'"
        )
    first = case.context[0]
    match = matcher or token_overlap_matcher()
    known = [i for i, fact in enumerate(case.facts) if match(fact, first)]
    return PartialView(policy=policy, known_fact_ids=known, given_text=first)
