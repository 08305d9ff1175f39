from __future__ import annotations

import pytest

from promed_agents.case import Case
from promed_agents.errors import PartialInfoError
from promed_agents.partial_view import (
    PartialInfoPolicy,
    partial_view,
    token_overlap_matcher,
)


def case_with(facts, context=("A 21-year-old sexually active male complains of fever.",)):
    return Case(id="t-1", source="t", question="Q?", options={"A": "x"}, answer=["A"],
                facts=list(facts), context=list(context))


@pytest.mark.parametrize("n, known", [(1, []), (2, [0]), (5, [0, 1]), (9, [0, 1, 2, 3])])
def test_half_facts_is_the_first_floor_half(n, known):
    view = partial_view(case_with([f"fact {i}" for i in range(n)]))
    assert view.policy is PartialInfoPolicy.HALF_FACTS
    assert view.known_fact_ids == known
    assert view.given_text is None
    assert view.hidden_fact_ids(case_with([f"fact {i}" for i in range(n)])) == \
        [i for i in range(n) if i not in known]


def test_first_sentence_keeps_the_sentence_and_maps_the_facts_it_states():
    case = case_with(["Patient is a 21-year-old male.", "Patient is sexually active.",
                      "Patient complains of fever.", "Culture of joint fluid shows bacteria."])
    view = partial_view(case, "first-sentence")
    assert view.given_text == case.context[0]
    assert view.known_fact_ids == [0, 1, 2]
    assert view.opening_text(case) == case.context[0]


def test_numbers_must_match_exactly():
    match = token_overlap_matcher()
    assert match("Temperature is 38.5 C.", "Her temperature is 38.5 C and pulse 90.")
    assert not match("Temperature is 38.9 C.", "Her temperature is 38.5 C and pulse 90.")
    assert match("患者引产后查空腹血糖6.11mmol/L", "引产后查空腹血糖6.11mmol/L。")
    assert not match("患者查空腹血糖6.8mmol/L", "引产后查空腹血糖6.11mmol/L。")


def test_custom_matcher_is_used():
    case = case_with(["alpha", "beta"])
    view = partial_view(case, PartialInfoPolicy.FIRST_SENTENCE,
                        matcher=lambda fact, text: fact == "beta")
    assert view.known_fact_ids == [1]


def test_errors_name_the_case_and_the_fix():
    with pytest.raises(PartialInfoError, match="unknown partial-information policy"):
        partial_view(case_with(["a"]), "all-facts")
    no_context = Case(id="t-9", source="t", question="Q?", options={"A": "x"}, answer=["A"],
                      facts=["a"], context=[])
    with pytest.raises(PartialInfoError, match="t-9.*use 'half-facts'"):
        partial_view(no_context, "first-sentence")
    with pytest.raises(ValueError):
        token_overlap_matcher(0)


def test_policy_none_gives_only_the_question():
    from promed_agents.loader import agentclinic_sample_path, load_cases

    case = load_cases(agentclinic_sample_path())[0]
    view = partial_view(case, "none")
    assert view.known_fact_ids == [] and view.opening_text(case) == ""
    assert partial_view(case, "initial").known_fact_ids  # AgentClinic's given facts
