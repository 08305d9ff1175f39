"""The ``vllm:`` backend, the served scorer and served proposers against a real vLLM server.

The server is vLLM's CPU build serving the embedded SmolLM2 in float32 (the ``vllm_url``
fixture; ``make test-vllm``). Tolerances are stated per test: both sides compute in
float32, with different kernels.
"""

from __future__ import annotations

import math

import pytest

from promed_agents.storage import TraceStore
from promed_agents.trace import Role

from helpers import FAKE_DOCTOR, run

pytestmark = pytest.mark.vllm

LOGPROB_TOLERANCE = 1e-3
"""Largest |served - local| log-probability of a sampled token (float32 on both sides;
measured here: 2.6e-5 over a two-question consultation)."""
VALUE_TOLERANCE = 1e-3
"""Largest |served - local| v(S), a mean answer-token log-probability (measured here:
1.41e-5 over 256 coalitions of 4 cases, ``benchmarks/served_speed.py``)."""


def served(url: str) -> str:
    return f"vllm:smollm2@{url}"


def doctor_turns(url: str, experiment: str):
    with TraceStore(url) as store:
        episodes = list(store.iter_episodes(store.experiment_id(experiment)))
    return episodes, [t for e in episodes for t in e.turns if t.role is Role.DOCTOR]


def test_consult_and_eval_with_a_served_doctor(vllm_url, sqlite_url):
    consulted = run("consult", "--cases", "2", "--doctor", served(vllm_url),
                    "--max-questions", "2", "--demonstration", "--experiment", "c",
                    "--db", sqlite_url)
    assert consulted.exit_code == 0, consulted.output + consulted.stderr
    episodes, turns = doctor_turns(sqlite_url, "c")
    assert len(episodes) == 2 and turns
    for turn in turns:  # every doctor turn carries the server's exact tokens
        assert turn.prompt_token_ids and turn.token_ids
        assert len(turn.logprobs) == len(turn.token_ids)
        assert all(lp <= 0 and math.isfinite(lp) for lp in turn.logprobs)
    evaluated = run("eval", "--cases", "2", "--doctor", served(vllm_url), "--modes",
                    "proactive", "--max-questions", "1", "--demonstration", "--experiment",
                    "e", "--db", sqlite_url)
    assert evaluated.exit_code == 0, evaluated.output + evaluated.stderr
    with TraceStore(sqlite_url) as store:
        assert store.experiment("e-proactive").status == "complete"


def test_a_served_llm_patient_answers_the_doctor(vllm_url, sqlite_url):
    result = run("consult", "--cases", "2", "--doctor", FAKE_DOCTOR, "--patient",
                 f"llm:{served(vllm_url)}", "--experiment", "p", "--db", sqlite_url)
    assert result.exit_code == 0, result.output + result.stderr
    with TraceStore(sqlite_url) as store:
        episodes = list(store.iter_episodes(store.experiment_id("p")))
    replies = [t for e in episodes for t in e.turns if t.role is Role.PATIENT]
    assert len(replies) == 2 and all(r.text.strip() for r in replies)


def test_served_tokens_are_the_local_tokenization_and_logprobs_the_local_forward(
        vllm_url, sqlite_url, smollm2_folder):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from promed_agents.graphs.token_sequence import policy_samples, stitch

    result = run("consult", "--cases", "1", "--doctor", served(vllm_url),
                 "--max-questions", "2", "--demonstration", "--temperature", "1",
                 "--experiment", "t", "--db", sqlite_url)
    assert result.exit_code == 0, result.output + result.stderr
    [episode], _ = doctor_turns(sqlite_url, "t")
    tokenizer = AutoTokenizer.from_pretrained(smollm2_folder)
    samples = policy_samples(episode)
    stitched = stitch(samples)
    # at most each turn's stop token is dropped, as for a local doctor (see stitch)
    assert stitched is not None and stitched.dropped <= len(samples) - 1
    ids = stitched.prompt_ids + stitched.completion_ids
    text = tokenizer.decode(ids)
    assert tokenizer(text, add_special_tokens=False).input_ids == ids
    model = AutoModelForCausalLM.from_pretrained(smollm2_folder, dtype=torch.float32).eval()
    worst = 0.0
    for sample in samples:
        sequence = torch.tensor([sample.prompt_ids + sample.completion_ids])
        with torch.no_grad():
            logits = model(sequence).logits[0, len(sample.prompt_ids) - 1:-1]
        local = torch.log_softmax(logits.float(), -1).gather(
            1, torch.tensor(sample.completion_ids)[:, None])[:, 0]
        worst = max(worst, max(abs(a - b) for a, b in zip(local.tolist(), sample.logprobs,
                                                          strict=True)))
    assert worst < LOGPROB_TOLERANCE, worst


def test_the_served_scorer_gives_the_local_scorers_values(vllm_url):
    from promed_agents.loader import bundled_sample
    from promed_agents.sig.scorer_spec import resolve_scorer

    case = bundled_sample()[0]
    coalitions = [frozenset(), frozenset({0}), frozenset({0, 2}),
                  frozenset(range(len(case.facts)))]
    local = resolve_scorer("local:smollm2").value_function(case)(coalitions)
    remote = resolve_scorer(served(vllm_url)).value_function(case)(coalitions)
    assert max(abs(a - b) for a, b in zip(local, remote, strict=True)) < VALUE_TOLERANCE, \
        (local, remote)


def test_an_mcts_search_with_a_served_proposer(vllm_url, sqlite_url):
    result = run("mcts", "--experiment", "s", "--cases", "1", "--iterations", "2",
                 "--max-questions", "2", "--doctor", FAKE_DOCTOR, "--proposer",
                 served(vllm_url), "--proposer-ratio", "1", "--demonstration",
                 "--db", sqlite_url)
    assert result.exit_code == 0, result.output + result.stderr
    with TraceStore(sqlite_url) as store:
        root = store.load_search_tree(store.experiment_id("s"), "imedqa-0")
    texts = [n.turn_text for n in root.walk()[1:]]
    assert texts and any(t != "question: Do you have a fever?" and t != "answer: A"
                         for t in texts)  # turns the served proposer wrote


def test_served_consultations_sampled_at_temperature_one_train_off_policy(
        vllm_url, sqlite_url, tmp_path):
    for name, temperature in (("t1", "1"), ("greedy", "0")):
        result = run("consult", "--cases", "2", "--doctor", served(vllm_url), "--temperature",
                     temperature, "--max-questions", "1", "--demonstration", "--experiment",
                     name, "--db", sqlite_url)
        assert result.exit_code == 0, result.output + result.stderr
    episodes, _ = doctor_turns(sqlite_url, "t1")
    assert {(e.sampling.logprobs, e.sampling.server_logprobs_mode) for e in episodes} == {
        ("raw", "raw_logprobs")}  # what the server said at /server_info
    greedy = run("train", "grpo", "--model", "local:smollm2", "--from-traces", "greedy",
                 "--output", tmp_path / "refused", "--num-generations", "2", "--max-steps",
                 "1", "--db", sqlite_url)
    assert greedy.exit_code == 1 and "decoded greedily" in greedy.stderr
    trained = run("train", "grpo", "--model", "local:smollm2", "--from-traces", "t1",
                  "--output", tmp_path / "grpo", "--num-generations", "2", "--max-steps", "1",
                  "--db", sqlite_url)
    assert trained.exit_code == 0, trained.output + trained.stderr
    assert (tmp_path / "grpo" / "config.json").exists()
