"""The vllm: backend keeps the prompt token ids vLLM returns (LangChain drops them)."""

from __future__ import annotations

import pytest
from fake_http import JsonHandler, serve

from promed_agents.backends import resolve_chat_model
from promed_agents.backends.token_metadata import token_metadata
from promed_agents.backends.vllm_chat_model import VLLM_TOKEN_IDS, VLLMChatModel


def reply(**extra):
    return {"id": "x", "object": "chat.completion", "created": 0, "model": "m", **extra,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "answer: C"},
                         "logprobs": {"content": [{"token": "token_id:7", "logprob": -0.25,
                                                   "bytes": None, "top_logprobs": []}]}}]}


def test_prompt_token_ids_reach_the_reply_metadata():
    model = resolve_chat_model("vllm:m@http://127.0.0.1:9/v1")
    assert isinstance(model, VLLMChatModel)
    assert {k: model.extra_body[k] for k in VLLM_TOKEN_IDS} == VLLM_TOKEN_IDS
    (generation,) = model._create_chat_result(reply(prompt_token_ids=[4, 5, 6])).generations
    # LangChain merges generation_info into response_metadata, as the chat model returns it
    tokens = token_metadata({**generation.generation_info,
                             **generation.message.response_metadata})
    assert (tokens.prompt_ids, tokens.completion_ids, tokens.logprobs) == ([4, 5, 6], [7],
                                                                          [-0.25])
    without = model._create_chat_result(reply())  # an older server: no prompt ids
    assert token_metadata(without.generations[0].message.response_metadata).prompt_ids is None


class InfoServer(JsonHandler):
    """vLLM's development-mode ``/server_info``, saying a logprobs mode (or nothing)."""

    mode: str | None = "raw_logprobs"
    asked = 0

    def do_GET(self):
        InfoServer.asked += 1
        if not self.path.startswith("/server_info?") or InfoServer.mode is None:
            self.send_json({"detail": "Not Found"}, status=404)
            return
        self.send_json({"vllm_config": {"model_config": {"logprobs_mode": InfoServer.mode}}})


@pytest.mark.parametrize(("mode", "kind"), [("raw_logprobs", "raw"),
                                            ("processed_logprobs", "processed"),
                                            ("raw_logits", "backend"), (None, "backend")])
def test_the_model_records_what_its_server_says_its_logprobs_are(mode, kind):
    InfoServer.mode, InfoServer.asked = mode, 0
    with serve(InfoServer) as url:
        model = resolve_chat_model(f"vllm:m@{url}")
        assert (model.logprobs_kind, model.server_logprobs_mode) == (kind, mode)
        assert model.logprobs_kind == kind and InfoServer.asked == 1  # asked once
