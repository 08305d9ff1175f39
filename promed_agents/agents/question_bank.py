"""The question bank: history-taking questions a clinician asks, by topic.

case -> partial view -> **doctor (proposer, reference doctors)** <-> patient -> evaluator

The bundled bank (``promed_agents/data/question_bank.json``) covers the chief complaint,
onset and duration, character, associated symptoms, past history, medications,
allergies, family and social history, a review of systems by organ, vital signs, the
physical examination, laboratory and imaging results, in English and Chinese (the CMB
cases' language). It serves MCTS as a proposer of candidate questions
(:mod:`promed_agents.trainers.mcts_search`) and the model-free reference doctors
(:mod:`promed_agents.agents.reference_doctors`). :func:`rank_by_yield` orders a bank by the new
facts each question acquires on training cases, the order a fixed script asks in.

For open-ended cases, whose examination findings and test results come from the
measurement agent, not the patient, the bank's questions on those topics
(:data:`MEASUREMENT_TOPICS`) are left out (:func:`history_questions`) and the bank's
tests (:func:`bank_tests`: examinations and tests in a fixed clinical order) are ordered
instead.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from importlib import resources
from pathlib import Path

from promed_agents.agents.patient import FactSelectPatient
from promed_agents.case import Case
from promed_agents.errors import ConsultationError
from promed_agents.partial_view import DEFAULT_POLICY, PartialInfoPolicy, partial_view

LANGUAGES = ("en", "zh")
MEASUREMENT_TOPICS = frozenset({"vital signs", "examination", "laboratory", "imaging"})
"""Bank topics that an open-ended case's measurement agent answers, not its patient."""


@cache
def _bundled_file() -> dict:
    text = (resources.files("promed_agents.data") / "question_bank.json").read_text("utf-8")
    return json.loads(text)


def _bundled() -> tuple[dict[str, str], ...]:
    return tuple(_bundled_file()["questions"])


@cache
def measurement_questions() -> frozenset[str]:
    """The bundled bank's questions (both languages) on :data:`MEASUREMENT_TOPICS`."""
    return frozenset(entry[language] for entry in _bundled() for language in LANGUAGES
                     if entry.get("topic") in MEASUREMENT_TOPICS and entry.get(language))


def history_questions(questions: Sequence[str]) -> list[str]:
    """``questions`` without the bundled bank's examination, laboratory, imaging and
    vital-sign questions: what an open-ended case's patient is asked."""
    measured = measurement_questions()
    return [q for q in questions if q not in measured]


def bank_tests(language: str = "en") -> list[str]:
    """The bundled bank's examinations and tests in ``language``, in its order."""
    if language not in LANGUAGES:
        raise ConsultationError(f"question bank language {language!r}: use one of "
                                f"{', '.join(LANGUAGES)}")
    return [entry[language] for entry in _bundled_file()["tests"]]


def bank_questions(language: str = "en", path: str | Path | None = None) -> list[str]:
    """The questions of the bundled bank in ``language`` (its best order for English), or
    of a bank file: a JSON list of questions, or an object whose ``questions`` are such a
    list or entries with one key per language (as the bundled file)."""
    if language not in LANGUAGES:
        raise ConsultationError(f"question bank language {language!r}: use one of "
                                f"{', '.join(LANGUAGES)}")
    if path is None:
        entries: Sequence[object] = _bundled()
    else:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConsultationError(f"question bank {path}: {exc}; give a JSON list of "
                                    "questions") from None
        entries = data.get("questions", []) if isinstance(data, dict) else data
    questions = [entry if isinstance(entry, str) else entry.get(language)
                 for entry in entries if isinstance(entry, (str, dict))]
    questions = [q.strip() for q in questions if isinstance(q, str) and q.strip()]
    if not questions:
        raise ConsultationError(f"question bank {path or 'bundled'} has no {language} "
                                "questions; give a JSON list of question strings")
    return questions


def case_language(case: Case) -> str:
    return "zh" if case.language == "zh" else "en"


def yield_by_question(questions: Sequence[str], cases: Sequence[Case],
                      patient: FactSelectPatient | None = None,
                      policy: PartialInfoPolicy | str = DEFAULT_POLICY) -> dict[str, int]:
    """New facts each question acquires, asked first, summed over ``cases``."""
    patient = patient or FactSelectPatient()
    totals = dict.fromkeys(questions, 0)
    for case in cases:
        known = set(partial_view(case, policy).known_fact_ids)
        for question in questions:
            totals[question] += len(set(patient.select(case, question)) - known)
    return totals


def rank_by_yield(questions: Sequence[str], cases: Sequence[Case],
                  patient: FactSelectPatient | None = None,
                  policy: PartialInfoPolicy | str = DEFAULT_POLICY) -> list[str]:
    """``questions`` in the order a script should ask them on cases like ``cases``:
    greedily, each next question the one acquiring most facts not yet acquired by the
    ones before it (summed over the cases; ties keep the bank's order)."""
    patient = patient or FactSelectPatient()
    answers = [(set(partial_view(case, policy).known_fact_ids),
                {q: set(patient.select(case, q)) for q in questions}) for case in cases]
    acquired: list[set[int]] = [set() for _ in cases]
    order: list[str] = []
    left = list(questions)
    while left:
        def gain(question: str) -> int:
            return sum(len(replies[question] - known - got)
                       for (known, replies), got in zip(answers, acquired, strict=True))
        best = max(left, key=gain)  # max keeps the first of equal gains
        order.append(best)
        left.remove(best)
        for (known, replies), got in zip(answers, acquired, strict=True):
            got |= replies[best] - known
    return order
