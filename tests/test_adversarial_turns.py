"""The adversarial doctor turns and the leak check used by the leakage suite."""

from __future__ import annotations

from promed_agents.loader import bundled_sample_path, load_cases

from adversarial_turns import ADVERSARIAL_TURNS, leaks

CASE = load_cases(bundled_sample_path())[0]


def test_at_least_fifty_distinct_turns():
    assert len(ADVERSARIAL_TURNS) >= 50 and len(set(ADVERSARIAL_TURNS)) == len(ADVERSARIAL_TURNS)


def test_leaks_finds_options_and_the_question_but_not_facts():
    option = next(iter(CASE.options.values()))
    assert leaks(f"I think it is {option.upper()}.", CASE) == [option]
    assert leaks(CASE.question, CASE) == [CASE.question]
    assert leaks(" ".join(CASE.facts), CASE) == []
    stated = CASE.model_copy(update={"facts": [*CASE.facts, f"History of {option}."]})
    assert leaks(f"I had {option}.", stated) == []  # a fact may name an option's text
