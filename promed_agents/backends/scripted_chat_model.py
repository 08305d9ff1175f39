"""Scripted chat models for tests and examples (the ``fake:`` backend).

case -> consultation graph (**doctor / patient models**) -> trace in SQL -> ...

:class:`ScriptedChatModel` answers from a list of responses or from a function of the
messages, deterministically: with a list, the reply to a conversation that already holds
k assistant messages is ``responses[k]`` (the last one repeats), so concurrent
conversations sharing one model each follow the script. Like the local backend, every
reply carries prompt and completion token ids and logprobs in ``response_metadata`` (here:
UTF-8 bytes and zeros, or with ``tokens`` a real tokenizer's ids as the local backend
would record them had the model said the scripted text and ended its turn), so the whole
data path, training included, can be tested without a model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

Responder = Callable[[Sequence[BaseMessage]], str]


def byte_tokens(text: str) -> list[int]:
    """The scripted models' 'tokenizer': one id per UTF-8 byte."""
    return list(text.encode("utf-8"))


class ScriptedChatModel(BaseChatModel):
    """Replies with ``responses[k]`` at the conversation's k-th assistant turn (the last
    repeats; example messages, ``example=True``, do not count), or with
    ``responder(messages)``."""

    responses: list[str] = []
    responder: Responder | None = None
    spec: str | None = None
    tokens: Any = None
    """A :class:`~promed_agents.backends.chat_tokens.ChatTokens`: record its ids (the
    prompt through its chat template, the reply ending its turn) instead of bytes."""

    def model_post_init(self, __context: Any) -> None:
        if not self.responses and self.responder is None:
            raise ValueError("ScriptedChatModel needs responses or a responder")
        if self.spec is None and self.responses:
            self.spec = "fake:" + "||".join(self.responses)

    @property
    def _llm_type(self) -> str:
        return "promed-scripted"

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        if self.responder is not None:
            text = self.responder(messages)
        else:
            turn = sum(1 for m in messages if m.type == "ai" and not getattr(m, "example", False))
            text = self.responses[min(turn, len(self.responses) - 1)]
        if self.tokens is not None:
            from promed_agents.backends.chat_tokens import chat_dicts

            prompt_ids = self.tokens.prompt_ids(chat_dicts(messages))
            completion = self.tokens.turn_ids(text)
        else:
            prompt_ids = byte_tokens("".join(str(m.content) for m in messages))
            completion = byte_tokens(text)
        metadata = {"prompt_token_ids": prompt_ids, "completion_token_ids": completion,
                    "logprobs": [0.0] * len(completion), "model": self.spec or "fake",
                    "finish_reason": "stop"}
        message = AIMessage(content=text, response_metadata=metadata,
                            usage_metadata={"input_tokens": len(metadata["prompt_token_ids"]),
                                            "output_tokens": len(completion),
                                            "total_tokens": len(metadata["prompt_token_ids"])
                                            + len(completion)})
        return ChatResult(generations=[ChatGeneration(message=message)])
