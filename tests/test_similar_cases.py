"""Similar cases: the bank ranked for a case by its yield on the known cases like it."""

from __future__ import annotations

import asyncio

import pytest

from promed_agents.agents.question_bank import bank_questions
from promed_agents.agents.reference_doctors import BankDoctor, known_split, resolve_doctor
from promed_agents.agents.similar_cases import SimilarCases
from promed_agents.case import Case
from promed_agents.errors import BackendError, ConsultationError
from promed_agents.graphs import ConsultationContext, arun_consultations
from promed_agents.partial_view import partial_view
from promed_agents.trace import Role, TurnKind

URINE = "What did the urine tests show?"
IMAGING = "What did the x-ray, CT or ECG show?"
BANK = {"en": bank_questions()}


def case(i: int, topic: str) -> Case:
    """Half the facts are known (the opening); the hidden half answers one bank question."""
    if topic == "kidney":
        facts = ["A woman has burning on urination and flank pain.",
                 "She reports dysuria for three days.",
                 "Urine tests show nitrites and leukocyte esterase.",
                 "Urine culture grows gram-negative rods."]
    else:
        facts = ["A man has crushing chest pain radiating to the jaw.",
                 "He is sweating and short of breath.",
                 "The ECG shows ST elevation in leads II, III and aVF.",
                 "A chest x-ray shows a normal cardiac silhouette."]
    return Case(id=f"t-{topic}-{i}", source="t", question=f"What is the diagnosis ({i})?",
                options={"A": "one", "B": "two"}, answer=["A"], facts=facts)


def view(c: Case):
    return partial_view(c)


KNOWN = [case(i, "kidney") for i in range(6)] + [case(i, "heart") for i in range(6, 12)]


def test_the_first_question_is_the_one_that_paid_on_cases_like_this_one():
    similar = SimilarCases(KNOWN, BANK, neighbours=4)
    kidney, heart = case(100, "kidney"), case(101, "heart")
    assert similar.ranked(kidney, view(kidney))[0] == URINE
    assert similar.ranked(heart, view(heart))[0] == IMAGING
    # a script would ask both cases the same first question
    assert similar.ranked(kidney, view(kidney))[0] != similar.ranked(heart, view(heart))[0]


def test_a_known_case_is_never_its_own_neighbour():
    similar = SimilarCases(KNOWN, BANK, neighbours=3)
    own = KNOWN[0]
    neighbours = [n.case_id for n in similar.similar(own, view(own))]
    assert len(neighbours) == 3 and own.id not in neighbours
    assert set(neighbours) <= {c.id for c in KNOWN[1:6]}  # the other kidney cases
    # the same text as another case is another case: it is a neighbour, the nearest
    twin = own.model_copy(update={"id": "t-twin"})
    assert [n.case_id for n in similar.similar(twin, view(twin))][0] == own.id
    only_itself = SimilarCases([own], BANK)
    assert only_itself.similar(own, view(own)) == []
    # with no neighbour nothing pays: the bank's own order
    assert only_itself.ranked(own, view(own)) == BANK["en"]


def test_what_was_asked_is_not_ranked_and_the_rest_is_ranked_after_it():
    similar = SimilarCases(KNOWN, BANK, neighbours=4)
    kidney = case(100, "kidney")
    after = similar.ranked(kidney, view(kidney), [URINE])
    assert URINE not in after and len(after) == len(BANK["en"]) - 1
    # the urine question took both hidden facts of the neighbours: nothing else pays, so
    # the rest keeps the bank's order
    assert after == [q for q in BANK["en"] if q != URINE]


def test_bad_settings_are_refused():
    with pytest.raises(ConsultationError, match="neighbours"):
        SimilarCases(KNOWN, BANK, neighbours=0)
    with pytest.raises(ConsultationError, match="known cases"):
        SimilarCases([], BANK)


def test_bank_similar_asks_each_case_what_paid_on_cases_like_it():
    with pytest.raises(BackendError, match="given none"):
        resolve_doctor("bank:similar")
    assert known_split("bank:similar") == "train"
    assert known_split("bank:similar:dev") == "dev"
    assert known_split("bank:fixed") is None
    resolved = resolve_doctor("bank:similar", known=KNOWN)
    kidney = case(100, "kidney")
    assert {n.case_id for n in resolved.similar.similar(kidney, view(kidney))} == \
        {c.id for c in KNOWN}  # 30 neighbours by default: all twelve
    doctor = BankDoctor(spec="bank:similar", order="similar", questions=BANK,
                        similar=SimilarCases(KNOWN, BANK, neighbours=4))
    context = ConsultationContext(doctor=doctor, max_questions=2)
    episodes = asyncio.run(arun_consultations(
        [case(100, "kidney"), case(101, "heart")], context, concurrency=2))
    firsts = [next(t.text for t in e.turns if t.kind is TurnKind.QUESTION) for e in episodes]
    assert firsts == [f"question: {URINE}", f"question: {IMAGING}"]
    for episode in episodes:
        first_reply = next(t for t in episode.turns if t.role is Role.PATIENT)
        assert set(first_reply.disclosed_fact_ids) & {2, 3}  # a hidden fact, at once
        assert episode.turns[-1].kind is TurnKind.ANSWER
