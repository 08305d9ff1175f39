from __future__ import annotations

import math
from itertools import combinations

import pytest
import torch
from shapley_reference import shapley_by_all_orders

from promed_agents.backends.model_pool import load_local_model
from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.sig.answer_scorer import (
    SCORER_SYSTEM,
    answer_text,
    facts_text,
    scored_text,
)
from promed_agents.sig.local_answer_scorer import LocalAnswerScorer
from promed_agents.sig.shapley import PermutationConfig, exact_shapley, permutation_shapley


@pytest.fixture(scope="module")
def case():
    return next(c for c in load_cases(bundled_sample_path()) if 4 <= len(c.facts) <= 6)


def full_text(tokenizer, case, coalition, target="text") -> tuple[str, str]:
    """The scorer's chat, rendered here on its own: (whole text, answer)."""
    options = "\n".join(f"{k}. {v}" for k, v in case.options.items())
    facts = " ".join(case.facts[i] for i in sorted(coalition)) or "(nothing)"
    answer = "; ".join(case.options[x] if target == "text" else f"{x}. {case.options[x]}"
                       for x in case.answer)
    user = (f"Question: {case.question}\nOptions:\n{options}\n\nWhat you know about the "
            f"patient: {facts}")
    text = tokenizer.apply_chat_template(
        [{"role": "system", "content": SCORER_SYSTEM}, {"role": "user", "content": user},
         {"role": "assistant", "content": f"answer: {answer}"}], tokenize=False)
    return text, answer


def naive_value(model, tokenizer, case, coalition, target="text") -> float:
    """One unbatched forward over ``tokenizer(full_text)``; the answer's tokens are those
    whose offsets overlap the answer's characters."""
    text, answer = full_text(tokenizer, case, coalition, target)
    start = text.rindex("answer: " + answer) + len("answer: ")
    encoded = tokenizer(text, return_offsets_mapping=True)
    ids = encoded["input_ids"]
    span = [i for i, (s, e) in enumerate(encoded["offset_mapping"])
            if s < start + len(answer) and e > start]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    logprobs = torch.log_softmax(logits, -1)
    return float(sum(logprobs[i - 1, ids[i]] for i in span) / len(span))


def test_batched_values_equal_one_unbatched_forward_over_the_joint_tokens(tiny_model_folder,
                                                                         case):
    model, tokenizer = load_local_model(str(tiny_model_folder))
    coalitions = [frozenset(), frozenset({0}), frozenset({1, 2}),
                  frozenset(range(len(case.facts))), frozenset({0, 3})]
    for target in ("text", "letter-text"):
        scorer = LocalAnswerScorer(model_ref=str(tiny_model_folder), batch_size=3,
                                   target=target)
        values = scorer.value_function(case)(coalitions)
        expected = [naive_value(model, tokenizer, case, c, target) for c in coalitions]
        assert values == pytest.approx(expected, abs=1e-4)
        assert len(set(round(v, 6) for v in values)) == len(values)  # the facts matter
    one_by_one = LocalAnswerScorer(model_ref=str(tiny_model_folder), batch_size=1,
                                   target="letter-text")
    assert one_by_one.value_function(case)(coalitions) == pytest.approx(values, abs=1e-5)


def test_the_answer_is_scored_as_the_joint_tokenization_reads_it(smollm2_folder, case):
    """SmolLM2 reads 'answer: Migraine' as [..., ':', ' Mig', ...]: the first answer token
    carries the space; scoring 'Mig' after a lone ' ' token is another sequence."""
    _, tokenizer = load_local_model(str(smollm2_folder))
    scorer = LocalAnswerScorer(model_ref=str(smollm2_folder))
    tokens = scorer.tokens(tokenizer, case, frozenset({0, 1}))
    text, answer = full_text(tokenizer, case, frozenset({0, 1}))
    joint = tokenizer(text)["input_ids"]
    assert joint[:len(tokens.ids)] == tokens.ids
    first = tokenizer.decode(tokens.ids[-tokens.n_answer])
    assert first.startswith(" ") and answer.startswith(first.strip())
    assert tokenizer.decode(tokens.ids[-tokens.n_answer - 1]) == ":"
    assert "  " not in text[:text.index(case.facts[0])][-3:]  # one space before the facts


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
        expected = [naive_value(model, tokenizer, case, c) for c in coalitions]
        assert got == pytest.approx(expected, abs=1e-4)
    assert len(baseline.cache) == 1  # without reuse, only the shared prefix is kept
    assert len(value.cache) > 1
    # the fact states kept are read back: more tokens reused, fewer computed
    assert value.cache.hits_tokens > baseline.cache.hits_tokens
    assert value.cache.computed_tokens < baseline.cache.computed_tokens


def test_the_scored_answer_is_the_option_text_or_letter_and_text(case):
    letter = case.answer[0]
    assert answer_text(case, "text") == case.options[letter]
    assert answer_text(case, "letter-text") == f"{letter}. {case.options[letter]}"
    assert facts_text(case, frozenset({1, 0})) == f"{case.facts[0]} {case.facts[1]}"
    assert facts_text(case, frozenset()) == "(nothing)"


def test_the_prompt_holds_question_options_and_only_the_coalitions_facts(tiny_model_folder,
                                                                         case):
    _, tokenizer = load_local_model(str(tiny_model_folder))
    scored = scored_text(tokenizer, case, frozenset({1}), "letter-text")
    assert scored.text == full_text(tokenizer, case, frozenset({1}), "letter-text")[0]
    prompt = scored.text[:scored.answer[0]]
    assert case.question in prompt and all(o in prompt for o in case.options.values())
    assert [f for f in case.facts if f in prompt] == [case.facts[1]]
    assert scored.text[slice(*scored.facts)] == case.facts[1]
    assert scored.text[slice(*scored.answer)] == answer_text(case, "letter-text")


@pytest.mark.slow
def test_smollm2_shapley_values_equal_an_independent_computation(smollm2_folder):
    model, tokenizer = load_local_model(str(smollm2_folder))
    case = next(c for c in load_cases(bundled_sample_path()) if len(c.facts) == 4)
    scorer = LocalAnswerScorer(model_ref=str(smollm2_folder))
    estimate = exact_shapley(len(case.facts), scorer.value_function(case))
    n = len(case.facts)
    naive = {frozenset(c): naive_value(model, tokenizer, case, frozenset(c))
             for size in range(n + 1) for c in combinations(range(n), size)}
    assert estimate.values == pytest.approx(shapley_by_all_orders(n, naive.__getitem__),
                                            abs=1e-4)
    assert estimate.v_full == pytest.approx(naive[frozenset(range(n))], abs=1e-4)
    assert all(math.isfinite(v) and abs(v) < 50 for v in estimate.values)
    # by permutations (no truncation): the endpoints are the independently computed ones
    sampled = permutation_shapley(n, scorer.value_function(case), PermutationConfig(
        max_permutations=4, min_permutations=4, truncation=None))
    assert sampled.v_full - sampled.v_empty == pytest.approx(
        naive[frozenset(range(n))] - naive[frozenset()], abs=1e-4)
    assert sum(sampled.values) == pytest.approx(sum(estimate.values), abs=1e-4)


def test_an_open_ended_case_scores_its_diagnosis_without_options(tiny_model_folder):
    """v(S) of an open-ended case: the log-probability of its diagnosis text, after a
    prompt with the objective and the coalition's facts, no options."""
    from conftest import ROOT

    open_case = load_cases(ROOT / "tests" / "data" / "agentclinic_sample.jsonl")[0]
    model, tokenizer = load_local_model(str(tiny_model_folder))
    scored = scored_text(tokenizer, open_case, frozenset({3}))
    assert scored.text[slice(*scored.answer)] == "Myasthenia gravis"
    prompt = scored.text[:scored.answer[0]]
    assert "Options" not in prompt and prompt.endswith("diagnosis: ")
    assert "diagnosing a patient" in prompt and open_case.question in prompt
    assert [f for f in open_case.facts if f in prompt] == [open_case.facts[3]]
    scorer = LocalAnswerScorer(model_ref=str(tiny_model_folder), batch_size=2)
    coalitions = [frozenset(), frozenset({3}), frozenset({3, 20})]
    values = scorer.value_function(open_case)(coalitions)
    for coalition, value in zip(coalitions, values, strict=True):
        text = scored_text(tokenizer, open_case, coalition).text
        start = text.rindex("diagnosis: Myasthenia gravis") + len("diagnosis: ")
        encoded = tokenizer(text, return_offsets_mapping=True)
        span = [i for i, (s, e) in enumerate(encoded["offset_mapping"])
                if s < start + len("Myasthenia gravis") and e > start]
        with torch.no_grad():
            logits = model(torch.tensor([encoded["input_ids"]])).logits[0].float()
        logprobs = torch.log_softmax(logits, -1)
        assert value == pytest.approx(float(sum(
            logprobs[i - 1, encoded["input_ids"][i]] for i in span) / len(span)), abs=1e-4)
