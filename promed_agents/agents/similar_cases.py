"""Similar cases: the question bank ranked for a case by what it acquired on the known
cases most like it.

case -> partial view -> **doctor (proposer, reference doctors)** <-> patient -> evaluator

A fixed script (``bank:fixed``) asks every case the same questions; a doctor that reads
the case can do better only if the case's text says something about which questions
will pay. :class:`SimilarCases` is that reading without a model: it takes the
``neighbours`` known cases whose reading (what the doctor knows at the start and the exam
question) shares most inverse-document-frequency weight with this case's (cosine over content
tokens, :func:`~promed_agents.text_similarity.matching_tokens`), and ranks the bank
greedily by the new facts each question acquires on them after the questions already
asked, as :func:`~promed_agents.agents.question_bank.rank_by_yield` ranks it over all
cases (ties keep the bank's order).

Known cases are cases with their facts, the training cases: never the evaluated ones. A
known case is never its own neighbour (matched by its id), so a
search of a training case ranks its questions as an unseen case's would be ranked, and
SFT on that search teaches a rule that can be applied to a case whose facts are hidden.
It serves the ``bank:similar`` reference doctor and MCTS proposer
(:mod:`~promed_agents.agents.reference_doctors`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from promed_agents.agents.patient import FactSelectPatient
from promed_agents.agents.question_bank import case_language
from promed_agents.case import Case
from promed_agents.errors import ConsultationError
from promed_agents.partial_view import (
    DEFAULT_POLICY,
    PartialInfoPolicy,
    PartialView,
    partial_view,
)
from promed_agents.text_similarity import bundled_term_weights, matching_tokens

DEFAULT_NEIGHBOURS = 30
"""Known cases a ranking reads. On 300 training iMedQA cases, ranking 200 unseen ones
(BENCHMARKS.md): 20-50 neighbours gave the same choice ratio; 100 diluted it."""


def reading(case: Case, view: PartialView) -> dict[str, float]:
    """Content tokens of what the doctor knows at the start and of the exam question (not
    the options, not numbers), weighted by inverse document frequency, unit length."""
    text = f"{view.opening_text(case)} {case.question}"
    weight = bundled_term_weights().weight
    vector = {t: weight(t) for t in matching_tokens(text) if not t.startswith("#")}
    norm = math.sqrt(sum(w * w for w in vector.values())) or 1.0
    return {t: w / norm for t, w in vector.items()}


@dataclass(frozen=True)
class KnownCase:
    """A known case as a ranking reads it: its reading and what each bank
    question acquires on it."""

    case_id: str
    reading: dict[str, float]
    known: frozenset[int]
    replies: Mapping[str, frozenset[int]]


@dataclass
class SimilarCases:
    """Ranks the question bank for a case by its yield on the most similar known cases."""

    cases: Sequence[Case]
    questions: Mapping[str, Sequence[str]]
    """The bank by language (``en``, ``zh``); a case is read against its language's."""
    neighbours: int = DEFAULT_NEIGHBOURS
    patient: FactSelectPatient = field(default_factory=FactSelectPatient)
    policy: PartialInfoPolicy | str = DEFAULT_POLICY

    def __post_init__(self) -> None:
        if self.neighbours < 1:
            raise ConsultationError(f"neighbours must be >= 1, got {self.neighbours}")
        if not self.cases:
            raise ConsultationError("bank:similar needs known cases (training cases with "
                                    "their facts); import some with `promed cases import`")
        self._known: list[KnownCase] = []
        for case in self.cases:
            view = partial_view(case, self.policy)
            bank = self._bank(case_language(case))
            self._known.append(KnownCase(
                case.id, reading(case, view), frozenset(view.known_fact_ids),
                {q: frozenset(self.patient.select(case, q)) for q in bank}))

    def _bank(self, language: str) -> Sequence[str]:
        return self.questions.get(language) or self.questions["en"]

    def similar(self, case: Case, view: PartialView) -> list[KnownCase]:
        """The known cases most like ``case`` as ``view`` shows it, most similar first
        (the case itself left out)."""
        mine = reading(case, view)
        scored = [(sum(w * other.reading.get(t, 0.0) for t, w in mine.items()), i, other)
                  for i, other in enumerate(self._known) if other.case_id != case.id]
        scored.sort(key=lambda s: (-s[0], s[1]))
        return [other for _, _, other in scored[: self.neighbours]]

    def ranked(self, case: Case, view: PartialView, asked: Sequence[str] = ()) -> list[str]:
        """The bank questions not in ``asked``, best first for ``case`` (in its language)."""
        bank = self._bank(case_language(case))
        neighbours = self.similar(case, view)
        acquired = [set(n.known).union(*(n.replies.get(q, ()) for q in asked))
                    for n in neighbours]
        order: list[str] = []
        left = [q for q in bank if q not in set(asked)]
        while left:
            def gain(question: str) -> int:
                return sum(len(n.replies.get(question, frozenset()) - got)
                           for n, got in zip(neighbours, acquired, strict=True))
            best = max(left, key=gain)  # max keeps the first of equal gains
            order.append(best)
            left.remove(best)
            for n, got in zip(neighbours, acquired, strict=True):
                got |= n.replies.get(best, frozenset())
        return order
