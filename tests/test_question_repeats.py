"""Repeated questions: the same content words and numbers, whatever the wording around."""

from __future__ import annotations

from promed_agents.question_repeats import (
    question_key,
    repeated_count,
    repeated_flags,
    repeats_earlier,
)
from promed_agents.trace import EpisodeRecord, Role, TurnKind, TurnRecord


def test_the_same_question_in_other_words_of_asking_repeats():
    assert repeats_earlier("What did the physical examination show?",
                           ["Do you smoke?", "what did the PHYSICAL examination show"])
    assert not repeats_earlier("What did the abdominal examination show?",
                               ["What did the physical examination show?"])
    assert not repeats_earlier("What?", ["What?"])  # no content: nothing is repeated
    assert question_key("Is it 10 days?") != question_key("Is it 12 days?")


def turn(index, role, text, kind):
    return TurnRecord(index=index, role=role, text=text, kind=kind)


def test_flags_per_doctor_turn():
    turns = [turn(0, Role.DOCTOR, "question: Any fever?", TurnKind.QUESTION),
             turn(1, Role.PATIENT, "Any fever? No.", TurnKind.REPLY),
             turn(2, Role.DOCTOR, "hmm, any fever", TurnKind.INVALID),
             turn(3, Role.DOCTOR, "question: any FEVER", TurnKind.QUESTION),
             turn(4, Role.PATIENT, "No.", TurnKind.REPLY),
             turn(5, Role.DOCTOR, "question: Any rash?", TurnKind.QUESTION),
             turn(6, Role.DOCTOR, "answer: A", TurnKind.ANSWER)]
    # the patient's words and an invalid turn are no earlier question
    assert repeated_flags(turns) == [False, False, True, False, False]
    episode = EpisodeRecord(case_id="c", graph="g", doctor_spec="d", turns=turns)
    assert repeated_count(episode) == 1
