"""The evaluator: information gain after each reply, correctness at the end.

case -> doctor <-> patient -> **evaluator** -> trace in SQL -> Shapley/SIG -> training

The gain of a question (or of an open-ended case's test order) is the weight of the facts
it newly acquired. Weights come from a :data:`FactWeights` callable: uniform (1/n per fact)
until Shapley values exist; normalised Shapley weights pass through the same interface,
which turns the gain into SIG. A multiple-choice answer is right when its letters are the
case's; an open-ended case's diagnosis is right when the evaluator's
:class:`~promed_agents.agents.judge.Judge` says so, and its verdict is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from promed_agents.agents.judge import DEFAULT_JUDGE, Judge, resolve_judge, rouge_l_f1
from promed_agents.case import Case
from promed_agents.sig.fact_weights import information_state, shapley_information_gain
from promed_agents.trace import Verdict

if TYPE_CHECKING:
    from promed_agents.agents.knowledge_summary import KnowledgeSummary

FactWeights = Callable[[Case], Sequence[float]]


def uniform_weights(case: Case) -> list[float]:
    """Each fact weighs 1/n (no weights for a case without facts)."""
    n = len(case.facts)
    return [1.0 / n] * n if n else []


@dataclass(frozen=True)
class ReplyScore:
    new_fact_ids: list[int]
    gain: float
    acquired: list[int] = field(default_factory=list)
    """The facts known after the reply (the information state's facts)."""


@dataclass(frozen=True)
class FinalScore:
    correct: bool
    format_score: float
    num_questions: int
    fact_recall: float
    weighted_recall: float = 0.0
    """The weight of the facts known at the end under the evaluator's fact weights."""
    verdict: Verdict | None = None
    """An open-ended case's judged diagnosis; None for options, or without a diagnosis."""
    diagnosis_rouge: float | None = None
    """An open-ended case's ROUGE-L F1 of the diagnosis (0 without one); None for options."""


@dataclass
class Evaluator:
    """Scores replies and episodes. ``weights`` weigh facts (uniform, or Shapley weights,
    which make the gain SIG). With ``summary``, a fact is acquired when an LLM summary of
    the dialogue contains it (:mod:`promed_agents.agents.knowledge_summary`) rather than when the
    patient discloses it. ``judge`` judges open-ended cases' diagnoses (default
    :data:`~promed_agents.agents.judge.DEFAULT_JUDGE`)."""

    weights: FactWeights = field(default=uniform_weights)
    name: str = "uniform-gain"
    summary: KnowledgeSummary | None = None
    judge: Judge = field(default_factory=lambda: resolve_judge(DEFAULT_JUDGE))

    def weighting(self, case: Case) -> str:
        """How ``case``'s facts are weighed, as recorded with each episode: ``uniform``,
        ``shapley:SCORER`` (stored Shapley values), or ``custom`` (another callable)."""
        describe = getattr(self.weights, "weighting", None)
        if describe is not None:
            return str(describe(case))
        return "uniform" if self.weights is uniform_weights else "custom"

    def score_reply(self, case: Case, acquired: Iterable[int],
                    disclosed: Iterable[int]) -> ReplyScore:
        """Gain by disclosure: the weight of the disclosed facts not acquired before."""
        before = set(acquired)
        new, gain = shapley_information_gain(self.weights(case), before, disclosed)
        return ReplyScore(new_fact_ids=new, gain=gain, acquired=sorted(before | set(new)))

    async def ascore_reply(self, case: Case, acquired: Iterable[int],
                           disclosed: Iterable[int], known_at_start: Sequence[int],
                           dialogue: Sequence[tuple[str, str]]) -> ReplyScore:
        """:meth:`score_reply`, or with ``summary`` the change of the information state
        the summary of ``dialogue`` gives (may be negative)."""
        if self.summary is None:
            return self.score_reply(case, acquired, disclosed)
        before = set(acquired)
        after = await self.summary.known_facts(case, known_at_start, dialogue)
        weights = self.weights(case)
        gain = information_state(weights, after) - information_state(weights, before)
        return ReplyScore(new_fact_ids=sorted(set(after) - before), gain=gain, acquired=after)

    def score_final(self, case: Case, answer: Sequence[str] | None,
                    format_scores: Sequence[float], num_questions: int,
                    acquired: Iterable[int], verdict: Verdict | None = None) -> FinalScore:
        """The episode's scores; an open-ended case's correctness is ``verdict``'s
        (:meth:`ascore_final` asks the judge for it)."""
        if case.open_ended:
            correct = verdict is not None and verdict.correct
        else:
            correct = answer is not None and set(answer) == set(case.answer)
        mean_format = sum(format_scores) / len(format_scores) if format_scores else 0.0
        recall = len(set(acquired)) / len(case.facts) if case.facts else 1.0
        weighted = information_state(self.weights(case), acquired) if case.facts else 1.0
        return FinalScore(correct=correct, format_score=mean_format,
                          num_questions=num_questions, fact_recall=recall,
                          weighted_recall=weighted, verdict=verdict,
                          diagnosis_rouge=rouge_l_f1(answer[0], case.answer_text) if
                          case.open_ended and answer else 0.0 if case.open_ended else None)

    async def ascore_final(self, case: Case, answer: Sequence[str] | None,
                           format_scores: Sequence[float], num_questions: int,
                           acquired: Iterable[int]) -> FinalScore:
        """:meth:`score_final`, the judge first judging an open-ended case's diagnosis
        (``answer``'s one text; no diagnosis, no verdict, not correct)."""
        verdict = None
        if case.open_ended and answer:
            verdict = await self.judge.ajudge(case, answer[0])
        return self.score_final(case, answer, format_scores, num_questions, acquired,
                                verdict)
