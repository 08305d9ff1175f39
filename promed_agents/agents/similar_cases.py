"""Similar cases: the question bank ranked for a case by what it acquired on the known
cases most like it.

case -> partial view -> **doctor (proposer, reference doctors)** <-> patient -> evaluator

A fixed script (``bank:fixed``) asks every case the same questions; a doctor that reads
the case can do better only if the case's text says something about which questions
will pay. :class:`SimilarCases` is that reading without a model: it takes the
``neighbours`` known cases whose prompt (what the doctor knows and the exam question)
shares most inverse-document-frequency weight with this case's (cosine over content
tokens, :func:`~promed_agents.text_similarity.matching_tokens`), and ranks the bank
greedily by the new facts each question acquires on them after the questions already
asked, as :func:`~promed_agents.agents.question_bank.rank_by_yield` ranks it over all
cases (ties keep the bank's order).

Known cases are cases with their facts, the training cases: never the evaluated ones. A
known case is never its own neighbour (matched by its exam question and options), so a
search of a training case ranks its questions as an unseen case's would be ranked, and
SFT on that search teaches a rule that can be applied to a case whose facts are hidden.
It serves the ``bank:similar`` reference doctor and MCTS proposer
(:mod:`~promed_agents.agents.reference_doctors`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from promed_agents.agents.doctor import case_prompt
from promed_agents.agents.patient import FactSelectPatient
from promed_agents.agents.question_bank import case_language
from promed_agents.case import Case
from promed_agents.errors import ConsultationError
from promed_agents.partial_view import DEFAULT_POLICY, PartialInfoPolicy, partial_view
from promed_agents.text_similarity import bundled_term_weights, matching_tokens

DEFAULT_NEIGHBOURS = 30
"""Known cases a ranking reads. On 300 training iMedQA cases, ranking 200 unseen ones
(BENCHMARKS.md): 20-50 neighbours gave the same choice ratio; 100 diluted it."""


def exam_part(prompt: str) -> str:
    """The exam question and options of a doctor's first prompt: what identifies a case."""
    return prompt.partition("\n\nQuestion: ")[2]


def _reading(prompt: str) -> dict[str, float]:
    """Content tokens of what the doctor knows and the question (not the options, not
    numbers), weighted by inverse document frequency, unit length."""
    text = prompt.partition("\nOptions:\n")[0]
    weight = bundled_term_weights().weight
    vector = {t: weight(t) for t in matching_tokens(text) if not t.startswith("#")}
    norm = math.sqrt(sum(w * w for w in vector.values())) or 1.0
    return {t: w / norm for t, w in vector.items()}


@dataclass(frozen=True)
class KnownCase:
    """A known case as a ranking reads it: its prompt's reading and what each bank
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
        self._known: dict[str, KnownCase] = {}
        for case in self.cases:
            view = partial_view(case, self.policy)
            bank = self._bank(case_language(case))
            self._known[exam_part(case_prompt(case, view))] = KnownCase(
                case.id, _reading(case_prompt(case, view)), frozenset(view.known_fact_ids),
                {q: frozenset(self.patient.select(case, q)) for q in bank})

    def _bank(self, language: str) -> Sequence[str]:
        return self.questions.get(language) or self.questions["en"]

    def similar(self, prompt: str) -> list[KnownCase]:
        """The known cases most like the case of ``prompt``, most similar first (the case
        itself left out)."""
        reading = _reading(prompt)
        itself = exam_part(prompt)
        scored = [(sum(w * other.reading.get(t, 0.0) for t, w in reading.items()), i, other)
                  for i, (key, other) in enumerate(self._known.items()) if key != itself]
        scored.sort(key=lambda s: (-s[0], s[1]))
        return [other for _, _, other in scored[: self.neighbours]]

    def ranked(self, prompt: str, asked: Sequence[str], language: str = "en") -> list[str]:
        """The bank questions not in ``asked``, best first for the case of ``prompt``."""
        bank = self._bank(language)
        neighbours = self.similar(prompt)
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
