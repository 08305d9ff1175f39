from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from promed_agents.backends.scripted_chat_model import ScriptedChatModel, byte_tokens


def test_reply_follows_the_conversation_turn():
    model = ScriptedChatModel(responses=["question: a?", "answer: B"])
    assert model.invoke([HumanMessage("x")]).content == "question: a?"
    history = [HumanMessage("x"), AIMessage("question: a?"), HumanMessage("y")]
    assert model.invoke(history).content == "answer: B"
    history += [AIMessage("answer: B"), HumanMessage("z")]
    assert model.invoke(history).content == "answer: B"  # the last repeats


def test_metadata_carries_tokens_and_logprobs():
    reply = ScriptedChatModel(responses=["answer: é"]).invoke([HumanMessage("hi")])
    meta = reply.response_metadata
    assert meta["completion_token_ids"] == byte_tokens("answer: é")
    assert len(meta["logprobs"]) == len(meta["completion_token_ids"]) == 10
    assert meta["prompt_token_ids"] == byte_tokens("hi")
    assert reply.usage_metadata["output_tokens"] == 10


def test_responder_and_validation():
    model = ScriptedChatModel(responder=lambda messages: f"n={len(messages)}")
    assert model.invoke([HumanMessage("a"), HumanMessage("b")]).content == "n=2"
    with pytest.raises(ValueError, match="responses or a responder"):
        ScriptedChatModel()


def test_example_messages_do_not_count_as_turns():
    model = ScriptedChatModel(responses=["first", "second"])
    shown = [HumanMessage("example case", example=True), AIMessage("answer: B", example=True),
             HumanMessage("the case")]
    assert model.invoke(shown).content == "first"
    assert model.invoke(shown + [AIMessage("first"), HumanMessage("more")]).content == "second"
