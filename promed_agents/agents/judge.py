"""Judges: is a free-text diagnosis the case's correct one?

case -> consultation graph -> **evaluator (judge)** -> trace in SQL -> rewards, evaluation

An open-ended case's answer is a diagnosis text, so correctness is a judgement. A
:class:`Judge` takes the case and the doctor's diagnosis and returns a :class:`Verdict`:
right or wrong, a score in [0, 1], and the judge's name, recorded with the episode so that
two runs judged differently are never compared as if they were not.

- ``exact`` (:class:`ExactMatchJudge`): the normalised texts are equal (case, accents,
  punctuation, articles and spacing aside).
- ``token-f1[:T]`` and ``rouge[:T]`` (:class:`OverlapJudge`): token F1 (SQuAD's) or
  ROUGE-L F1 (Google's ``rouge-score`` package, with stemming: DoctorAgent-RL's scorer)
  against the correct diagnosis; right at ``T`` or more (default 0.5); the score is the F1.
- ``llm:MODEL_SPEC`` (:class:`LLMJudge`): AgentClinic's moderator, any chat model: the
  correct diagnosis and the doctor's, "Are these the same?", right on a yes.

:func:`resolve_judge` turns a spec into a judge, as every model spec is resolved.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage

from promed_agents.backends.model_spec import resolve_chat_model, sampling_kwargs
from promed_agents.case import Case
from promed_agents.errors import ConsultationError
from promed_agents.trace import Verdict

DEFAULT_THRESHOLD = 0.5
DEFAULT_JUDGE = "rouge:0.5"
"""The judge every run uses unless told: ROUGE-L F1 of at least 0.5 against the correct
diagnosis (DoctorAgent-RL's measure; needs no model)."""
MODERATOR_SYSTEM = ("You are responsible for determining if the correct diagnosis and the "
                    "doctor's diagnosis are the same disease. Please respond only with Yes "
                    "or No. Nothing else.")
"""AgentClinic's moderator instruction."""


class Judge(Protocol):
    """Anything that judges a free-text diagnosis against a case's."""

    name: str

    async def ajudge(self, case: Case, diagnosis: str) -> Verdict: ...


_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalise(text: str) -> str:
    """Lower case, accents, punctuation and articles removed, spaces collapsed."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.translate(str.maketrans(string.punctuation, " " * len(string.punctuation)))
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD's token F1 of the normalised texts."""
    predicted, wanted = normalise(prediction).split(), normalise(reference).split()
    common = sum((Counter(predicted) & Counter(wanted)).values())
    if not predicted or not wanted or common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(wanted)
    return 2 * precision * recall / (precision + recall)


def rouge_l_f1(prediction: str, reference: str) -> float:
    """ROUGE-L F1 with stemming (``rouge-score``)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return float(scorer.score(reference, prediction)["rougeL"].fmeasure)


def _reference(case: Case) -> str:
    if not case.open_ended:
        raise ConsultationError(f"case {case.id} has options: its answer is a letter, "
                                "compared as such; a judge is for open-ended cases")
    return case.answer_text


@dataclass(frozen=True)
class ExactMatchJudge:
    """Right when the normalised diagnosis equals the case's."""

    name: str = "exact"

    async def ajudge(self, case: Case, diagnosis: str) -> Verdict:
        right = bool(diagnosis.strip()) and normalise(diagnosis) == normalise(_reference(case))
        return Verdict(correct=right, score=float(right), judge=self.name)


@dataclass(frozen=True)
class OverlapJudge:
    """Right when the token F1 or ROUGE-L F1 against the case's diagnosis reaches
    ``threshold``; the score is the F1."""

    metric: str = "rouge"
    threshold: float = DEFAULT_THRESHOLD

    def __post_init__(self) -> None:
        if self.metric not in ("rouge", "token-f1"):
            raise ConsultationError(f"overlap judge {self.metric!r}: use rouge or token-f1")
        if not 0.0 < self.threshold <= 1.0:
            raise ConsultationError(f"judge threshold {self.threshold} is not in (0, 1]")

    @property
    def name(self) -> str:
        return f"{self.metric}:{self.threshold:g}"

    async def ajudge(self, case: Case, diagnosis: str) -> Verdict:
        measure = rouge_l_f1 if self.metric == "rouge" else token_f1
        score = min(max(measure(diagnosis, _reference(case)), 0.0), 1.0)
        return Verdict(correct=score >= self.threshold, score=score, judge=self.name)


@dataclass(frozen=True)
class LLMJudge:
    """AgentClinic's moderator on any chat model: right when it answers yes."""

    model: BaseChatModel
    spec: str

    @property
    def name(self) -> str:
        return f"llm:{self.spec}"

    async def ajudge(self, case: Case, diagnosis: str) -> Verdict:
        question = (f"Here is the correct diagnosis: {_reference(case)}\n"
                    f"Here was the doctor dx: {diagnosis}\nAre these the same?")
        reply = await self.model.ainvoke(
            [SystemMessage(MODERATOR_SYSTEM), HumanMessage(question)],
            **sampling_kwargs(self.model, max_tokens=8, temperature=0.0))
        said = str(reply.content).strip()
        right = said.lower().lstrip(" *\"'").startswith("yes")
        return Verdict(correct=right, score=float(right), judge=self.name, detail=said[:200])


def resolve_judge(spec: str) -> Judge:
    """``exact``, ``rouge[:T]``, ``token-f1[:T]`` or ``llm:MODEL_SPEC``."""
    if spec == "exact":
        return ExactMatchJudge()
    if spec.startswith("llm:") and spec[len("llm:"):]:
        model_spec = spec[len("llm:"):]
        return LLMJudge(model=resolve_chat_model(model_spec), spec=model_spec)
    metric, _, threshold = spec.partition(":")
    if metric in ("rouge", "token-f1"):
        try:
            value = float(threshold) if threshold else DEFAULT_THRESHOLD
        except ValueError:
            raise ConsultationError(f"--judge {spec!r}: the threshold must be a number, "
                                    "e.g. rouge:0.5") from None
        return OverlapJudge(metric, value)
    raise ConsultationError(f"--judge {spec!r}: use exact, rouge[:T], token-f1[:T] or "
                            "llm:MODEL_SPEC")
