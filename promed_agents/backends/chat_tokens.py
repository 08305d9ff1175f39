"""A model's tokens of a chat: how a doctor's prompt and turns become token ids.

case -> consultation graph (**doctor turns**) -> trace in SQL -> **training tokens**

The local backend renders each doctor prompt with the model's chat template and records
the tokens it sampled; a trained turn written by someone else (a proposed question, the
correct answer, a logged consultation of another model or a served API that returned no
token ids) is tokenised as if the model had said it and ended its turn.
:class:`ChatTokens` does both, for the local backend and for the trainers, so the two can
never tokenise a conversation differently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import BaseMessage

from promed_agents.trace import ChatMessage

CHAT_ROLES = {"system": "system", "human": "user", "ai": "assistant", "tool": "user"}
"""LangChain message types as chat-template roles."""


def chat_dicts(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """``messages`` as the ``{"role", "content"}`` dicts a chat template takes."""
    return [{"role": CHAT_ROLES.get(m.type, "user"), "content": str(m.content)}
            for m in messages]


def chat_messages(messages: Sequence[BaseMessage]) -> list[ChatMessage]:
    """``messages`` as a trace records them (roles of the chat template; the worked
    example's messages marked ``example``)."""
    return [ChatMessage(role=d["role"], content=d["content"],
                        example=bool(getattr(m, "example", False)))
            for m, d in zip(messages, chat_dicts(messages), strict=True)]


class ChatTokens:
    """A tokenizer's view of a consultation: prompts through its chat template, turns as
    the model's own replies ending with its end-of-turn token."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    @classmethod
    def for_model(cls, spec: str) -> ChatTokens:
        """The tokens of the local model spec ``spec`` (``local:smollm2``,
        ``local:DIR``); loads the tokenizer only."""
        from transformers import AutoTokenizer

        from promed_agents.backends.local_weights import local_model_ref, model_folder

        return cls(AutoTokenizer.from_pretrained(model_folder(local_model_ref(spec))))

    def prompt_ids(self, chat: Sequence[Mapping[str, str]]) -> list[int]:
        """The ids of the prompt ``chat`` (role/content dicts), up to where the
        assistant's reply starts."""
        encoded = self.tokenizer.apply_chat_template(
            [{"role": m["role"], "content": m["content"]} for m in chat],
            add_generation_prompt=True, tokenize=True, return_dict=True)
        return list(encoded["input_ids"])

    def turn_ids(self, text: str) -> list[int]:
        """The ids of ``text`` said as a whole turn: its tokens, then the end-of-turn
        token, so that training on it teaches the model to stop after the turn."""
        ids = list(self.tokenizer.encode(text, add_special_tokens=False))
        if self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
        return ids
