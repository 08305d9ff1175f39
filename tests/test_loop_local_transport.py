"""A served model works across event loops (sequential ``asyncio.run`` calls)."""

from __future__ import annotations

import asyncio

import pytest
from fake_http import JsonHandler, serve

from promed_agents.backends import resolve_chat_model


class KeepAliveChat(JsonHandler):
    """An OpenAI chat-completions server that keeps connections open (HTTP/1.1), as vLLM
    and every real server do: a pooled connection outlives the request."""

    protocol_version = "HTTP/1.1"

    def respond(self, body):
        return {"id": "c", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "answer: C"}}]}


@pytest.mark.parametrize("provider", ["openai", "vllm"])
def test_a_served_model_answers_in_one_event_loop_after_another(provider):
    with serve(KeepAliveChat) as url:
        model = resolve_chat_model(f"{provider}:m@{url}")
        for _ in range(3):  # each asyncio.run closes its loop (and that loop's connections)
            assert asyncio.run(model.ainvoke("hello")).content == "answer: C"
