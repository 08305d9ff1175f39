"""Question choice: how much a doctor's questions are chosen for the case, measured
against the question bank.

case -> consultation graph -> trace in SQL -> ... -> **evaluation** (of asking)

A fixed script asks the same questions for every case; ProMed's point is choosing them
for the case. Two figures tell the two apart on recorded consultations:

- :func:`first_questions`: the distinct first questions a run asked over its cases (a
  script asks one);
- :func:`choice_ratios`: per question, the facts it acquired divided by the most that any
  bank question not yet asked would have acquired at that point (the same patient, the
  facts known then). 1 means the question was as good as the best bank question for this
  case at this point; a script scores 1 only where its next question happens to be the
  case's best. Points where no unasked bank question would acquire anything are left
  out (nothing to choose there). A question outside the bank can score above 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from promed_agents.agents.patient import FactSelectPatient
from promed_agents.case import Case
from promed_agents.question_repeats import question_key
from promed_agents.trace import EpisodeRecord, EpisodeStatus, Role, TurnKind


def _question_text(text: str) -> str:
    head, _, rest = text.partition(":")
    return rest.strip() if head.strip().lower() == "question" else text.strip()


def first_questions(episodes: Iterable[EpisodeRecord]) -> dict[str, int]:
    """How many cases each first question was asked in (by content, see
    :mod:`~promed_agents.question_repeats`; an episode without a question is left out)."""
    counts: dict[frozenset[str], int] = {}
    shown: dict[frozenset[str], str] = {}
    for episode in episodes:
        first = next((t for t in episode.turns if t.role is Role.DOCTOR
                      and t.kind is TurnKind.QUESTION), None)
        if first is None:
            continue
        key = question_key(_question_text(first.text))
        counts[key] = counts.get(key, 0) + 1
        shown.setdefault(key, _question_text(first.text))
    return {shown[key]: n for key, n in sorted(counts.items(), key=lambda kv: -kv[1])}


def choice_ratios(episode: EpisodeRecord, case: Case, bank: Sequence[str],
                  patient: FactSelectPatient) -> list[float]:
    """The choice ratio (see the module) of each question of ``episode`` where there was a
    choice."""
    known = set(episode.known_fact_ids)
    asked: set[frozenset[str]] = set()
    ratios = []
    turns = episode.turns
    for i, turn in enumerate(turns):
        if turn.role is not Role.DOCTOR or turn.kind is not TurnKind.QUESTION:
            continue
        key = question_key(_question_text(turn.text))
        best = max((len(set(patient.select(case, q)) - known) for q in bank
                    if question_key(q) not in asked), default=0)
        reply = turns[i + 1] if i + 1 < len(turns) and turns[i + 1].role is Role.PATIENT \
            else None
        new = set(reply.disclosed_fact_ids) - known if reply is not None and \
            key not in asked else set()
        if best > 0:
            ratios.append(len(new) / best)
        known |= new
        if key:
            asked.add(key)
    return ratios


def choice_by_case(episodes: Iterable[EpisodeRecord], cases: Mapping[str, Case],
                   bank: Sequence[str], patient: FactSelectPatient | None = None
                   ) -> dict[str, float]:
    """Per case: the mean choice ratio of its questions (over its episodes); cases with no
    question asked where there was a choice are left out."""
    patient = patient or FactSelectPatient()
    ratios: dict[str, list[float]] = {}
    for episode in episodes:
        if episode.status is EpisodeStatus.FAILED:
            continue
        ratios.setdefault(episode.case_id, []).extend(
            choice_ratios(episode, cases[episode.case_id], bank, patient))
    return {case_id: sum(values) / len(values) for case_id, values in ratios.items()
            if values}
