from __future__ import annotations

import re

import pytest
from fake_http import JsonHandler, serve
from shapley_reference import shapley_by_all_orders

from promed_agents.errors import BackendError
from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.sig.answer_scorer import answer_text
from promed_agents.sig.scorer_spec import resolve_scorer
from promed_agents.sig.served_answer_scorer import ServedAnswerScorer, served_prompt
from promed_agents.sig.shapley import exact_shapley

TOKEN = re.compile(r"\s*\S+")


def fake_logprob(text: str, offset: int) -> float:
    """The fake server's rule: a token's logprob falls with the text before it."""
    return -offset / 1000 - 0.01 * len(text)


class EchoServer(JsonHandler):
    """/v1/completions with echo=True and logprobs=0, as vLLM answers it."""

    requests: list[dict] = []
    with_logprobs = True

    def respond(self, body):
        EchoServer.requests.append(body)
        choices = []
        for index, prompt in enumerate(body["prompt"]):
            tokens = [(m.group(), m.start()) for m in TOKEN.finditer(prompt)]
            logprobs = {"tokens": [t for t, _ in tokens] + [" x"],
                        "token_logprobs": [None] + [fake_logprob(prompt, o)
                                                    for _, o in tokens[1:]] + [-1.0],
                        "text_offset": [o for _, o in tokens] + [len(prompt)],
                        "top_logprobs": None}
            choices.append({"index": index, "text": prompt + " x", "finish_reason": "length",
                            "logprobs": logprobs if EchoServer.with_logprobs else None})
        return {"id": "c", "object": "text_completion", "created": 0, "model": body["model"],
                "choices": choices}


@pytest.fixture
def server_url():
    EchoServer.requests, EchoServer.with_logprobs = [], True
    with serve(EchoServer) as url:
        yield url


@pytest.fixture(scope="module")
def case():
    return next(c for c in load_cases(bundled_sample_path()) if 4 <= len(c.facts) <= 6)


def expected_value(case, coalition) -> float:
    prompt = served_prompt(case, coalition)
    full = prompt + " " + answer_text(case, "text")
    picked = [fake_logprob(full, m.start()) for m in TOKEN.finditer(full)
              if m.start() >= len(prompt)]
    return sum(picked) / len(picked)


def test_values_are_the_answer_tokens_mean_logprob_one_request_per_batch(server_url, case):
    scorer = resolve_scorer(f"openai:served@{server_url}")
    assert isinstance(scorer, ServedAnswerScorer) and scorer.spec.startswith("openai:served@")
    assert scorer.form == "completion"
    scorer.batch_size = 3
    coalitions = [frozenset(), frozenset({0}), frozenset({0, 2}), frozenset({1}),
                  frozenset(range(len(case.facts)))]
    values = scorer.value_function(case)(coalitions)
    assert values == pytest.approx([expected_value(case, c) for c in coalitions])
    assert len(set(values)) == len(values)
    assert [len(r["prompt"]) for r in EchoServer.requests] == [3, 2]
    request = EchoServer.requests[0]
    assert request["echo"] is True and request["logprobs"] == 0
    ending = "\nAnswer: " + answer_text(case, "text")
    assert all(p.startswith(f"Question: {case.question}") and p.endswith(ending)
               for p in request["prompt"])


def test_exact_shapley_against_the_server_equals_an_independent_computation(server_url,
                                                                           case):
    scorer = resolve_scorer(f"openai:served@{server_url}")
    estimate = exact_shapley(len(case.facts), scorer.value_function(case))
    expected = shapley_by_all_orders(len(case.facts), lambda c: expected_value(case, c))
    assert estimate.values == pytest.approx(expected, abs=1e-9)
    assert any(abs(v) > 1e-6 for v in expected)  # the facts move the fake's value
    assert len(EchoServer.requests) == -(-2 ** len(case.facts) // 64)  # batches of 64


def test_a_server_without_prompt_logprobs_is_a_clear_error(server_url, case):
    EchoServer.with_logprobs = False
    scorer = resolve_scorer(f"openai:served@{server_url}")
    with pytest.raises(BackendError, match="returned no prompt logprobs"):
        scorer.value_function(case)([frozenset()])


def rendered(messages) -> str:
    """The fake chat template: each message on its own line; the last one continued."""
    return "\n".join(f"<{m['role']}> {m['content']}" for m in messages)


class ChatServer(JsonHandler):
    """vLLM's /v1/chat/completions with continue_final_message, prompt_logprobs=0 and
    return_token_ids: the prompt's ids with each one's logprob and decoded text."""

    requests: list[dict] = []
    with_logprobs = True

    def respond(self, body):
        ChatServer.requests.append(body)
        text = rendered(body["messages"])
        tokens = [(m.group(), m.start()) for m in TOKEN.finditer(text)]
        ids = [1000 + i for i in range(len(tokens))]
        logprobs = [None] + [{str(i): {"logprob": fake_logprob(text, o), "rank": 1,
                                       "decoded_token": t}}
                             for i, (t, o) in zip(ids[1:], tokens[1:], strict=True)]
        return {"id": "c", "object": "chat.completion", "created": 0, "model": body["model"],
                "prompt_token_ids": ids,
                "prompt_logprobs": logprobs if ChatServer.with_logprobs else None,
                "choices": [{"index": 0, "finish_reason": "length",
                             "message": {"role": "assistant", "content": "x"}}]}


@pytest.fixture
def chat_url():
    ChatServer.requests, ChatServer.with_logprobs = [], True
    with serve(ChatServer) as url:
        yield url


def expected_chat_value(case, coalition) -> float:
    """Mean fake logprob of the tokens overlapping the answer, the rendered chat's end."""
    from promed_agents.sig.answer_scorer import facts_text, scorer_chat

    answer = answer_text(case, "text")
    text = rendered(scorer_chat(case, facts_text(case, coalition), answer))
    start = len(text) - len(answer)
    picked = [fake_logprob(text, m.start()) for m in TOKEN.finditer(text)
              if m.end() > start]
    return sum(picked) / len(picked)


def test_the_vllm_chat_form_scores_the_scorers_own_chat(chat_url, case):
    from promed_agents.sig.answer_scorer import SCORER_SYSTEM

    scorer = resolve_scorer(f"vllm:served@{chat_url}")
    assert scorer.form == "chat"
    coalitions = [frozenset(), frozenset({0}), frozenset({0, 2}),
                  frozenset(range(len(case.facts)))]
    values = scorer.value_function(case)(coalitions)
    assert values == pytest.approx([expected_chat_value(case, c) for c in coalitions])
    assert len(set(values)) == len(values)
    assert len(ChatServer.requests) == 4  # one conversation a request
    request = ChatServer.requests[0]
    assert (request["continue_final_message"], request["add_generation_prompt"],
            request["prompt_logprobs"]) == (True, False, 0)
    system, _, last = request["messages"]
    assert system["content"] == SCORER_SYSTEM
    assert last == {"role": "assistant", "content": "answer: " + answer_text(case, "text")}


def test_a_chat_server_without_prompt_logprobs_is_a_clear_error(chat_url, case):
    ChatServer.with_logprobs = False
    with pytest.raises(BackendError, match="no prompt logprobs .* needs vLLM"):
        resolve_scorer(f"vllm:served@{chat_url}").value_function(case)([frozenset()])


def test_an_open_ended_case_is_scored_on_its_diagnosis_without_options():
    from promed_agents.sig.answer_scorer import scorer_chat

    from conftest import ROOT

    open_case = load_cases(ROOT / "tests" / "data" / "agentclinic_sample.jsonl")[0]
    prompt = served_prompt(open_case, frozenset({3}))
    assert prompt.endswith("Primary symptom: Double vision\nDiagnosis:")
    assert "Options" not in prompt and prompt.startswith(f"Question: {open_case.question}")
    chat = scorer_chat(open_case, "x", "Myasthenia gravis")
    assert chat[-1] == {"role": "assistant", "content": "diagnosis: Myasthenia gravis"}
