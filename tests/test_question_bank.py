"""The question bank: bundled languages, bank files, and the order of a fixed script."""

from __future__ import annotations

import json

import pytest

from promed_agents.agents.question_bank import bank_questions, rank_by_yield, yield_by_question
from promed_agents.case import Case
from promed_agents.errors import ConsultationError

TOPICS = ("chief complaint", "onset and duration", "character", "associated symptoms",
          "past history", "medications", "allergies", "family", "social",
          "review of systems", "vital signs", "examination", "laboratory", "imaging")


def test_the_bundled_bank_covers_history_taking_in_both_languages():
    from promed_agents.agents.question_bank import _bundled

    assert {entry["topic"] for entry in _bundled()} == set(TOPICS)
    english, chinese = bank_questions("en"), bank_questions("zh")
    assert len(english) == len(chinese) >= 30 and len(set(english)) == len(english)
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in q) for q in chinese)
    with pytest.raises(ConsultationError, match="language"):
        bank_questions("fr")


def test_a_bank_file_is_a_list_or_entries_by_language(tmp_path):
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(["Do you smoke?", " ", "Any allergies?"]))
    assert bank_questions("en", plain) == ["Do you smoke?", "Any allergies?"]
    entries = tmp_path / "entries.json"
    entries.write_text(json.dumps({"questions": [{"en": "Fever?", "zh": "发热吗？"}]}))
    assert bank_questions("zh", entries) == ["发热吗？"]
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ConsultationError, match="broken.json"):
        bank_questions("en", broken)
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with pytest.raises(ConsultationError, match="no en questions"):
        bank_questions("en", empty)


def case(number: int, unknown: list[str]) -> Case:
    known = [f"Patient is case number {number}."] * len(unknown)  # half-facts: known first
    return Case(id=f"c{number}", source="t", question="Which?", options={"A": "x", "B": "y"},
                answer=["A"], facts=known + unknown)


def test_a_fixed_script_asks_first_what_acquires_most_not_yet_acquired():
    """The skin and rash questions acquire most on their own (the skin question first:
    ties keep the bank's order), but the same facts: greedy by new facts puts the cough
    question second and the rash question, which adds nothing, last."""
    cases = [case(1, ["Patient has a painful rash.", "Patient has a dry cough."]),
             case(2, ["Patient has an itchy rash.", "Patient has a dry cough."]),
             case(3, ["Patient has a scaly rash.", "Patient takes warfarin."])]
    rash, skin = "Do you have a rash?", "Any rash on your skin?"
    cough, drugs = "Do you have a cough?", "Do you take warfarin?"
    questions = [drugs, skin, cough, rash]
    assert yield_by_question(questions, cases) == {drugs: 1, skin: 3, cough: 2, rash: 3}
    assert rank_by_yield(questions, cases) == [skin, cough, drugs, rash]
