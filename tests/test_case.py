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
    (dict(options={}), "names option letter.s. A but the case has no options"),
    (dict(answer=[]), "must name at least one option letter"),
    (dict(options={}, answer=[]), "needs options .with an answer. or, open-ended, a diagnosis"),
    (dict(diagnosis="Gout"), "a case with options has no diagnosis"),
    (dict(fact_sources=[{"kind": "patient"}]), "fact_sources has 1 entries for 2 facts"),
    (dict(initial_fact_ids=[0, 2]), r"initial_fact_ids \[2\] are not facts"),
    (dict(fact_sources=[{"kind": "lab"}, {"kind": "patient"}]), "patient' or 'measurement"),
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


def test_an_open_ended_case_answers_with_its_diagnosis():
    case = make(options={}, answer=[], diagnosis="Myasthenia gravis",
                recommendation="Pyridostigmine", initial_fact_ids=[0],
                fact_sources=[{"kind": "patient", "path": "Patient_Actor.History"},
                              {"kind": "measurement", "path": "Test_Results.EMG.Findings"}])
    assert case.open_ended and not make().open_ended
    assert case.answer_text == "Myasthenia gravis"
    assert case.measurement_fact_ids() == [1]


def test_an_unchanged_case_keeps_the_digest_of_its_fields_before_open_ended_ones():
    """Stores hold digests of cases without the open-ended fields: a re-import of the
    same case must match them, not conflict."""
    import hashlib
    import json

    case = make()
    old_payload = case.model_dump(mode="json", exclude={
        "id", "diagnosis", "recommendation", "fact_sources", "initial_fact_ids"})
    assert case.content_hash() == hashlib.sha256(json.dumps(
        old_payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    assert make(options={}, answer=[], diagnosis="x").content_hash() != \
        make(options={}, answer=[], diagnosis="y").content_hash()
