"""The evaluator: information gain after each reply, correctness at the end.

case -> doctor <-> patient -> **evaluator** -> trace in SQL -> Shapley/SIG -> training

The gain of a question is the weight of the facts it newly acquired. Weights come from a
:data:`FactWeights` callable: uniform (1/n per fact) until Shapley values exist; #4 passes
normalised Shapley weights through the same interface, which turns the gain into SIG.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from promed_agents.case import Case
from promed_agents.fact_weights import shapley_information_gain

FactWeights = Callable[[Case], Sequence[float]]


def uniform_weights(case: Case) -> list[float]:
    """Each fact weighs 1/n (no weights for a case without facts)."""
    n = len(case.facts)
    return [1.0 / n] * n if n else []


@dataclass(frozen=True)
class ReplyScore:
    new_fact_ids: list[int]
    gain: float


@dataclass(frozen=True)
class FinalScore:
    correct: bool
    format_score: float
    num_questions: int
    fact_recall: float


@dataclass
class Evaluator:
    weights: FactWeights = field(default=uniform_weights)
    name: str = "uniform-gain"

    def score_reply(self, case: Case, acquired: Iterable[int],
                    disclosed: Iterable[int]) -> ReplyScore:
        new, gain = shapley_information_gain(self.weights(case), acquired, disclosed)
        return ReplyScore(new_fact_ids=new, gain=gain)

    def score_final(self, case: Case, answer: Sequence[str] | None,
                    format_scores: Sequence[float], num_questions: int,
                    acquired: Iterable[int]) -> FinalScore:
        correct = answer is not None and set(answer) == set(case.answer)
        mean_format = sum(format_scores) / len(format_scores) if format_scores else 0.0
        recall = len(set(acquired)) / len(case.facts) if case.facts else 1.0
        return FinalScore(correct=correct, format_score=mean_format,
                          num_questions=num_questions, fact_recall=recall)
