from __future__ import annotations

import pytest
from fake_http import JsonHandler, serve

from promed_agents.backends import resolve_chat_model
from promed_agents.backends.token_metadata import token_metadata
from promed_agents.graphs import ConsultationContext, run_consultations
from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.trace import Role


def test_local_metadata_passes_through():
    meta = {"prompt_token_ids": [1, 2], "completion_token_ids": [3, 4], "logprobs": [-0.5, -1]}
    tokens = token_metadata(meta)
    assert (tokens.prompt_ids, tokens.completion_ids, tokens.logprobs) == \
        ([1, 2], [3, 4], [-0.5, -1.0])
    assert token_metadata(None).logprobs is None and token_metadata({}).completion_ids is None


def test_openai_logprobs_become_floats_and_vllm_token_ids_become_ids():
    plain = {"logprobs": {"content": [{"token": "answer", "logprob": -0.25},
                                      {"token": ":", "logprob": -1.5}]}}
    tokens = token_metadata(plain)  # no token ids: the logprobs cannot be used
    assert tokens.logprobs is None and tokens.completion_ids is None
    vllm = {"logprobs": {"content": [{"token": "token_id:9", "logprob": -0.1},
                                     {"token": "token_id:27", "logprob": -2.0}]}}
    assert token_metadata(vllm).completion_ids == [9, 27]
    assert token_metadata(vllm).logprobs == [-0.1, -2.0]
    assert token_metadata({"logprobs": {"content": None}}).logprobs is None


class VllmLikeServer(JsonHandler):
    """Speaks vLLM's /v1/chat/completions: with return_tokens_as_token_ids, tokens come
    as "token_id:<id>" (vLLM itself needs a GPU, so CI uses this)."""

    bodies: list[dict] = []

    def respond(self, body):
        VllmLikeServer.bodies.append(body)
        as_ids = body.get("return_tokens_as_token_ids", False)
        pieces = [("answer", 101), (":", 102), (" C", 103)]
        content = [{"token": f"token_id:{i}" if as_ids else text, "logprob": -0.5 * n,
                    "bytes": list(text.encode()), "top_logprobs": []}
                   for n, (text, i) in enumerate(pieces)]
        prompt_ids = {"prompt_token_ids": [1, 2, 3]} if body.get("return_token_ids") else {}
        return {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                **prompt_ids,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "logprobs": {"content": content},
                             "message": {"role": "assistant", "content": "answer: C"}}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}


@pytest.fixture
def vllm_like_url():
    VllmLikeServer.bodies = []
    with serve(VllmLikeServer) as url:
        yield url


@pytest.mark.parametrize("provider", ["vllm", "openai"])
def test_doctor_turns_from_an_openai_compatible_server_carry_its_tokens(provider,
                                                                        vllm_like_url):
    doctor = resolve_chat_model(f"{provider}:served-model@{vllm_like_url}")
    case = load_cases(bundled_sample_path())[0]
    [episode] = run_consultations([case], ConsultationContext(doctor=doctor))
    turn = next(t for t in episode.turns if t.role is Role.DOCTOR)
    assert episode.final_answer == ["C"] and episode.status.value == "completed"
    body = VllmLikeServer.bodies[0]
    assert body["logprobs"] is True
    if provider == "vllm":
        assert body["return_tokens_as_token_ids"] is True and body["return_token_ids"] is True
        assert turn.token_ids == [101, 102, 103] and turn.logprobs == [0.0, -0.5, -1.0]
        assert turn.prompt_token_ids == [1, 2, 3]  # kept from vLLM's reply
    else:
        assert "return_tokens_as_token_ids" not in body
        assert turn.token_ids is None and turn.logprobs is None
        assert turn.prompt_token_ids is None
