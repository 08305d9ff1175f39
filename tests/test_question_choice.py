"""How case-conditioned questions are: distinct first questions, the choice ratio."""

from __future__ import annotations

import pytest

from promed_agents.agents.patient import FactSelectPatient
from promed_agents.agents.question_choice import choice_by_case, choice_ratios, first_questions
from promed_agents.case import Case
from promed_agents.trace import EpisodeRecord, Role, TurnKind, TurnRecord

CASE = Case(id="c", source="t", question="Which diagnosis?",
            options={"A": "Shingles", "B": "Migraine"}, answer=["A"],
            facts=["Patient is a 60-year-old man.", "Patient has a painful rash on the chest.",
                   "Patient drinks alcohol daily.", "Patient reports a mild headache."])
BANK = ["Do you have a rash?", "Do you drink alcohol?", "Do you have a headache?",
        "Do you have a fever?"]
PATIENT = FactSelectPatient()


def consultation(*questions, case_id="c"):
    turns = []
    known = {0}
    for question in questions:
        disclosed = [i for i in PATIENT.select(CASE, question) if i not in known]
        turns += [TurnRecord(index=len(turns), role=Role.DOCTOR, text=f"question: {question}",
                             kind=TurnKind.QUESTION),
                  TurnRecord(index=len(turns) + 1, role=Role.PATIENT, text="r",
                             kind=TurnKind.REPLY, disclosed_fact_ids=disclosed)]
        known |= set(disclosed)
    turns.append(TurnRecord(index=len(turns), role=Role.DOCTOR, text="answer: A",
                            kind=TurnKind.ANSWER))
    return EpisodeRecord(case_id=case_id, graph="g", doctor_spec="d", known_fact_ids=[0],
                         turns=turns)


def test_each_question_against_the_best_unasked_bank_question():
    # rash: 1 of the best 1; fever: 0 of 1 (alcohol or headache were there); alcohol: 1;
    # headache: 1; then nothing is left to choose: the last question is not scored
    ratios = choice_ratios(consultation("Do you have a rash?", "Do you have a fever?",
                                        "Do you drink alcohol?", "Do you have a headache?",
                                        "Do you have a fever?"), CASE, BANK, PATIENT)
    assert ratios == [1.0, 0.0, 1.0, 1.0]
    # a repeat acquires nothing, and its content is not unasked any more
    assert choice_ratios(consultation("Do you have a rash?", "do you have a RASH"), CASE,
                         BANK, PATIENT) == [1.0, 0.0]
    by_case = choice_by_case([consultation("Do you have a fever?", "Do you have a rash?")],
                             {"c": CASE}, BANK)
    assert by_case == {"c": pytest.approx(0.5)}


def test_first_questions_by_content():
    firsts = first_questions([consultation("Do you have a rash?"),
                              consultation("do you have a RASH", case_id="d"),
                              consultation("Do you drink alcohol?", case_id="e"),
                              consultation(case_id="f")])
    assert firsts == {"Do you have a rash?": 2, "Do you drink alcohol?": 1}
