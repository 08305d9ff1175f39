from __future__ import annotations

import pytest
import torch

from promed_agents.answer_scorer import LocalAnswerScorer, answer_text, facts_text
from promed_agents.backends.local_weights import load_local_model
from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.shapley import PermutationSettings, exact_shapley, permutation_shapley


@pytest.fixture(scope="module")
def case():
    return next(c for c in load_cases(bundled_sample_path()) if 4 <= len(c.facts) <= 6)


def naive_value(model, tokenizer, scorer, case, coalition) -> float:
    """One unbatched forward over the whole prompt, as the reference computes v(S)."""
    prefix, middle, answer = scorer._segments(tokenizer, case)
    row = tokenizer(" " + facts_text(case, coalition), add_special_tokens=False)["input_ids"]
    ids = prefix + row + middle + answer
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    logprobs = torch.log_softmax(logits[len(ids) - len(answer) - 1:-1], -1)
    return float(logprobs.gather(-1, torch.tensor(answer).unsqueeze(-1)).mean())


def test_batched_values_equal_one_unbatched_forward_each(tiny_model_folder, case):
    scorer = LocalAnswerScorer(model_ref=str(tiny_model_folder), batch_size=3)
    model, tokenizer = load_local_model(str(tiny_model_folder))
    coalitions = [frozenset(), frozenset({0}), frozenset({1, 2}),
                  frozenset(range(len(case.facts))), frozenset({0, 3})]
    values = scorer.value_function(case)(coalitions)
    expected = [naive_value(model, tokenizer, scorer, case, c) for c in coalitions]
    assert values == pytest.approx(expected, abs=1e-4)
    assert len(set(round(v, 6) for v in values)) == len(values)  # the facts matter
    one_by_one = LocalAnswerScorer(model_ref=str(tiny_model_folder), batch_size=1)
    assert one_by_one.value_function(case)(coalitions) == pytest.approx(values, abs=1e-5)


def test_reused_fact_states_give_the_same_values(tiny_model_folder, case):
    model, tokenizer = load_local_model(str(tiny_model_folder))
    reusing = LocalAnswerScorer(model_ref=str(tiny_model_folder), batch_size=4)
    plain = LocalAnswerScorer(model_ref=str(tiny_model_folder), batch_size=4, reuse_mb=0)
    n = len(case.facts)
    rounds = [[frozenset({0}), frozenset({1}), frozenset({0, 1})],
              [frozenset({0, 1, 2}), frozenset({0, 2}), frozenset({1, 3}),
               frozenset(range(n)), frozenset()]]
    value, baseline = reusing.value_function(case), plain.value_function(case)
    for coalitions in rounds:  # the second round starts from the first round's states
        got = value(coalitions)
        assert got == pytest.approx(baseline(coalitions), abs=1e-4)
        expected = [naive_value(model, tokenizer, reusing, case, c) for c in coalitions]
        assert got == pytest.approx(expected, abs=1e-4)
    assert len(baseline.cache) == 1  # without reuse, only the shared prefix is kept
    assert len(value.cache) > 1


def test_the_scored_answer_is_the_option_text_or_letter_and_text(case):
    letter = case.answer[0]
    assert answer_text(case, "text") == case.options[letter]
    assert answer_text(case, "letter-text") == f"{letter}. {case.options[letter]}"
    assert facts_text(case, frozenset({1, 0})) == f"{case.facts[0]} {case.facts[1]}"
    assert facts_text(case, frozenset()) == "(nothing)"


def test_the_prompt_holds_question_options_and_only_the_coalitions_facts(tiny_model_folder,
                                                                         case):
    scorer = LocalAnswerScorer(model_ref=str(tiny_model_folder), target="letter-text")
    _, tokenizer = load_local_model(str(tiny_model_folder))
    prefix, middle, answer = scorer._segments(tokenizer, case)
    text = tokenizer.decode(prefix + middle)
    assert case.question in text and all(o in text for o in case.options.values())
    assert not any(f in text for f in case.facts)
    assert tokenizer.decode(answer) == answer_text(case, "letter-text")


def test_smollm2_values_of_shared_cases_satisfy_efficiency(case):
    scorer = LocalAnswerScorer()
    estimate = exact_shapley(len(case.facts), scorer.value_function(case))
    assert all(v == v and abs(v) < 50 for v in estimate.values)  # finite, log-prob scale
    assert estimate.efficiency_gap == pytest.approx(0.0, abs=1e-6)
    assert estimate.v_full != pytest.approx(estimate.v_empty, abs=1e-4)
    # a second case, by permutations: efficiency holds per permutation (no truncation)
    other = next(c for c in load_cases(bundled_sample_path()) if 7 <= len(c.facts) <= 9)
    sampled = permutation_shapley(len(other.facts), scorer.value_function(other),
                                  PermutationSettings(max_permutations=4, min_permutations=4,
                                                      truncation=None))
    assert sampled.permutations == 4 and all(e >= 0 for e in sampled.std_errors)
    assert sampled.efficiency_gap == pytest.approx(0.0, abs=1e-6)
