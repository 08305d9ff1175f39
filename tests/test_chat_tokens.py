"""A model's tokens of a chat: prompts through the chat template, turns ending the turn."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from promed_agents.backends.chat_tokens import ChatTokens, chat_dicts, chat_messages
from promed_agents.errors import BackendError


@pytest.fixture(scope="module")
def tokens(smollm2_folder):
    from transformers import AutoTokenizer

    return ChatTokens(AutoTokenizer.from_pretrained(smollm2_folder))


MESSAGES = [SystemMessage("Be brief."), HumanMessage("Case?", example=True),
            AIMessage("answer: B", example=True), HumanMessage("The case."),
            AIMessage("question: Any fever?")]


def test_messages_become_template_roles_and_the_example_is_marked():
    assert [d["role"] for d in chat_dicts(MESSAGES)] == ["system", "user", "assistant",
                                                        "user", "assistant"]
    assert [m.example for m in chat_messages(MESSAGES)] == [False, True, True, False, False]
    assert chat_messages(MESSAGES)[3].content == "The case."


def test_a_prompt_ends_where_the_assistant_starts_and_a_turn_ends_the_turn(tokens):
    prompt = tokens.prompt_ids(chat_dicts(MESSAGES[:4]))
    assert tokens.tokenizer.decode(prompt).endswith("The case.<|im_end|>\n<|im_start|>assistant\n")
    turn = tokens.turn_ids("question: Any fever?")
    assert tokens.tokenizer.decode(turn) == "question: Any fever?<|im_end|>"
    # the turn as the next prompt renders it: the prompt, the turn, then the next message
    whole = tokens.prompt_ids(chat_dicts(MESSAGES) + [{"role": "user", "content": "No."}])
    assert whole[:len(prompt) + len(turn)] == prompt + turn


def test_only_a_local_model_has_tokens_here():
    with pytest.raises(BackendError, match="needs a local model spec"):
        ChatTokens.for_model("openai:gpt-4o@http://127.0.0.1:1/v1")
