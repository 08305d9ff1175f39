from __future__ import annotations

import pytest

from promed_agents.agents.doctor import (
    case_prompt,
    opening_messages,
    parse_doctor_turn,
    recover_answer,
)
from promed_agents.case import Case
from promed_agents.partial_view import partial_view
from promed_agents.trace import TurnKind

CASE = Case(id="t-1", source="t", question="Which drug?", options={
    "A": "Gentamicin", "B": "Ciprofloxacin", "C": "Ceftriaxone", "D": "Trimethoprim"},
    answer=["C"], facts=["Patient is a 21-year-old male.", "Patient has fever.",
                         "Culture shows gram-negative diplococci.", "Knee is swollen."],
    context=["A 21-year-old male has fever."])
CMB = Case(id="c-1", source="cmb", question="哪些?", options={"A": "甲", "B": "乙", "C": "丙"},
           answer=["A", "B"], facts=["事实"])


@pytest.mark.parametrize("text, kind, payload, score", [
    ("question: Do you have a fever?", TurnKind.QUESTION, "Do you have a fever?", 1.0),
    ("Question:  How long?\nextra", TurnKind.QUESTION, "How long?", 1.0),
    ("Let me ask. question: Any rash?", TurnKind.QUESTION, "Any rash?", 0.5),
    ("answer: C", TurnKind.ANSWER, ("C",), 1.0),
    ("answer: (C) Ceftriaxone", TurnKind.ANSWER, ("C",), 1.0),
    ("answer: ceftriaxone", TurnKind.ANSWER, ("C",), 1.0),
    ("I think so. answer: D", TurnKind.ANSWER, ("D",), 0.5),
    ("answer: E", TurnKind.INVALID, None, 0.0),
    ("question: a? answer: B", TurnKind.INVALID, None, 0.0),
    ("question:", TurnKind.INVALID, None, 0.0),
    ("C. Ceftriaxone", TurnKind.INVALID, None, 0.0),
    ("answer: A patient with gonorrhoea", TurnKind.INVALID, None, 0.0),
    ("answer: I think it is septic arthritis", TurnKind.INVALID, None, 0.0),
    ("answer: B because of the culture", TurnKind.INVALID, None, 0.0),
    ("answer: D.", TurnKind.ANSWER, ("D",), 1.0),
    ("answer: **C**", TurnKind.ANSWER, ("C",), 1.0),
    ("answer: A: Gentamicin", TurnKind.ANSWER, ("A",), 1.0),
    ("", TurnKind.INVALID, None, 0.0),
])
def test_parse_doctor_turn(text, kind, payload, score):
    turn = parse_doctor_turn(text, CASE)
    assert turn.kind is kind and turn.format_score == score
    if kind is TurnKind.QUESTION:
        assert turn.question == payload
    if kind is TurnKind.ANSWER:
        assert turn.letters == payload


def test_multi_letter_answers():
    assert parse_doctor_turn("answer: A, B", CMB).letters == ("A", "B")
    assert parse_doctor_turn("answer: AB", CMB).letters == ("A", "B")
    assert parse_doctor_turn("answer: AD", CMB).kind is TurnKind.INVALID


@pytest.mark.parametrize("text, letters", [
    ("D. Trimethoprim", ("D",)), ("(B)", ("B",)), ("The correct answer is: C.", ("C",)),
    ("A patient with fever", None), ("E. nothing", None), ("I am not sure", None),
])
def test_recover_answer(text, letters):
    assert recover_answer(text, CASE) == letters


def test_prompt_holds_known_facts_question_and_options_only():
    view = partial_view(CASE, "half-facts")
    prompt = case_prompt(CASE, view)
    assert "21-year-old male" in prompt and "Patient has fever." in prompt
    assert "gram-negative" not in prompt and "swollen" not in prompt
    assert "Which drug?" in prompt and "C. Ceftriaxone" in prompt
    proactive = opening_messages(CASE, view, proactive=True)
    reactive = opening_messages(CASE, view, proactive=False)
    assert "question: <your question>" in proactive[0].content
    assert "question:" not in reactive[0].content


def test_demonstration_comes_before_the_case_and_parses_as_valid_turns():
    view = partial_view(CASE, "half-facts")
    plain = opening_messages(CASE, view, proactive=True)
    shown = opening_messages(CASE, view, proactive=True, demonstration=True)
    assert len(shown) == len(plain) + 4
    assert shown[0].content == plain[0].content and shown[-1].content == plain[-1].content
    example = Case(id="x", source="test", question="q", options={"A": "Influenza",
                                                                   "B": "Migraine"},
                   answer=["B"], facts=[])
    kinds = [parse_doctor_turn(m.content, example).kind for m in shown[1:-1]
             if m.type == "ai"]
    assert kinds == [TurnKind.QUESTION, TurnKind.ANSWER]
    reactive = opening_messages(CASE, view, proactive=False, demonstration=True)
    assert [m.type for m in reactive] == ["system", "human", "ai", "human"]
    assert "question:" not in "".join(str(m.content) for m in reactive[:-1])


def test_an_open_ended_case_gets_the_open_prompt_turns_and_gold_turn():
    from promed_agents.agents.doctor import (
        final_request,
        format_reminder,
        gold_turn,
        opening_messages,
        parse_doctor_turn,
        recover_answer,
    )
    from promed_agents.agents.open_doctor import OPEN_FINAL_REQUEST, OPEN_SYSTEM
    from promed_agents.loader import load_cases
    from promed_agents.partial_view import partial_view

    from conftest import ROOT

    open_case = load_cases(ROOT / "tests" / "data" / "agentclinic_sample.jsonl")[0]
    view = partial_view(open_case, "initial")
    prompt = case_prompt(open_case, view)
    assert "Objective: " in prompt and "Options" not in prompt
    messages = opening_messages(open_case, view, proactive=True, demonstration=True)
    assert messages[0].content == OPEN_SYSTEM and messages[-1].content == prompt
    assert [parse_doctor_turn(m.content, open_case).kind for m in messages
            if m.type == "ai"] == [TurnKind.QUESTION, TurnKind.TEST, TurnKind.ANSWER]
    test = parse_doctor_turn("test: Chest X-ray", open_case)
    assert (test.kind, test.question, test.format_score) == (TurnKind.TEST, "Chest X-ray", 1.0)
    diagnosis = parse_doctor_turn("diagnosis: Myasthenia gravis", open_case)
    assert (diagnosis.kind, diagnosis.letters) == (TurnKind.ANSWER, ("Myasthenia gravis",))
    assert parse_doctor_turn("answer: C", open_case).kind is TurnKind.INVALID
    assert recover_answer("C. Myasthenia", open_case) is None
    assert gold_turn(open_case) == "diagnosis: Myasthenia gravis"
    assert final_request(open_case) == OPEN_FINAL_REQUEST
    assert "test:" in format_reminder(open_case)
