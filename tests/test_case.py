from __future__ import annotations

import pytest
from pydantic import ValidationError

from promed_agents.case import Case


def make(**overrides):
    fields = dict(id="t-1", source="t", question="Which?", options={"B": "two", "A": "one"},
                  answer=["A"], context=["One sentence."], facts=["a fact", "b fact"])
    fields.update(overrides)
    return Case(**fields)


def test_options_are_sorted_and_answer_text_follows_letters():
    case = make(answer=["B", "A"])
    assert list(case.options) == ["A", "B"]
    assert case.answer == ["A", "B"]
    assert case.answer_text == "one; two"


@pytest.mark.parametrize("overrides, message", [
    (dict(answer=["C"]), "not among the options A, B"),
    (dict(options={}), "at least one option"),
    (dict(options={"a": "x"}, answer=["a"]), "not a single capital letter"),
    (dict(options={"A": "  "}), "option A is empty"),
    (dict(facts=[]), "facts"),
    (dict(facts=["ok", " "]), "item 1 is empty"),
    (dict(answer=["A", "A"]), "repeat"),
    (dict(question=""), "at least 1 character"),
])
def test_invalid_cases_are_rejected(overrides, message):
    with pytest.raises(ValidationError, match=message):
        make(**overrides)


def test_knowledge_question_may_have_no_facts_when_it_has_no_context():
    case = make(context=[], facts=[])
    assert case.facts == []


def test_content_hash_ignores_id_but_not_content():
    assert make().content_hash() == make(id="other").content_hash()
    assert make().content_hash() != make(facts=["a fact", "c fact"]).content_hash()
    assert make().content_hash() != make(split="dev").content_hash()
