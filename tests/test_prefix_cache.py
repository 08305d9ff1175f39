from __future__ import annotations

import asyncio
import shutil

import pytest
import torch
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from promed_agents.backends.local_chat_model import LocalChatModel
from promed_agents.backends.model_pool import load_local_model
from promed_agents.backends.prefix_cache import PrefixCache, left_pad, row_states


def states(length: int, fill: float = 1.0):
    """Two layers of fake key/value states for ``length`` tokens (1 head, dim 4)."""
    return [(torch.full((1, 1, length, 4), fill), torch.full((1, 1, length, 4), -fill))
            for _ in range(2)]


def test_lookup_takes_the_longest_common_prefix_within_the_limit():
    cache = PrefixCache(max_bytes=1 << 20)
    cache.store([1, 2, 3, 4, 5], states(5, 1.0))
    cache.store([1, 2, 9], states(3, 2.0))
    assert cache.lookup([7, 8], limit=1) == (0, None)
    length, kv = cache.lookup([1, 2, 3, 4, 6, 7], limit=5)
    assert length == 4 and kv[0][0].shape == (1, 1, 4, 4) and float(kv[0][0][0, 0, 0, 0]) == 1
    length, kv = cache.lookup([1, 2, 3, 4, 5, 6], limit=3)  # the last token stays uncached
    assert length == 3
    length, kv = cache.lookup([1, 2, 9, 9], limit=3)
    assert length == 3 and float(kv[1][1][0, 0, 0, 0]) == -2


def test_a_longer_sequence_replaces_its_prefix_and_old_entries_are_evicted_lru():
    per_token = states(1)[0][0].nbytes * 4  # keys and values of two layers
    cache = PrefixCache(max_bytes=10 * per_token)
    cache.store([1, 2, 3], states(3))
    cache.store([1, 2, 3, 4, 5], states(5))  # extends the first: it replaces it
    assert len(cache) == 1 and cache.nbytes == 5 * per_token
    cache.store([7, 8, 9], states(3))
    cache.lookup([1, 2, 3, 4, 5, 6], limit=5)  # the first is now the more recently used
    cache.store([4, 4, 4], states(3))  # 11 tokens > 10: the least recently used goes
    assert cache.lookup([7, 8, 9, 1], limit=3) == (0, None)
    assert cache.lookup([1, 2, 3, 4, 5, 6], limit=5)[0] == 5
    cache.store(list(range(11)), states(11))  # larger than the whole cache: not kept
    assert cache.lookup(list(range(12)), limit=11) == (0, None)
    assert cache.lookup([1, 2, 3, 4, 5, 6], limit=5)[0] == 5 and len(cache) == 2


def test_left_pad_and_row_states_round_trip():
    rows = [states(3, 1.0), None, states(5, 2.0)]
    merged = left_pad(rows, 6)
    assert merged[0][0].shape == (3, 1, 6, 4)
    assert merged[0][0][0, 0, :3].abs().sum() == 0 and merged[0][0][0, 0, 3:].eq(1).all()
    assert merged[1][1][1].abs().sum() == 0  # the row without states is all padding

    class Layer:
        def __init__(self, keys, values):
            self.keys, self.values = keys, values

    batch = type("Batch", (), {"layers": [Layer(k, v) for k, v in merged]})
    back = row_states(batch, 2, torch.arange(1, 6))
    assert back[0][0].shape == (1, 1, 5, 4) and back[0][0].eq(2).all()


def conversation(model, turns: int, opening: str) -> list[dict]:
    """A multi-turn chat whose prompt grows by the model's reply and a new question."""
    messages = [SystemMessage("You are a patient."), HumanMessage(opening)]
    metas = []
    for turn in range(turns):
        reply = model.invoke(messages)
        metas.append(reply.response_metadata)
        messages += [AIMessage(reply.content), HumanMessage(f"And question {turn}?")]
    return metas


OPENINGS = ["Do you have a fever?", "Where does it hurt?", "Any rash on your arms?"]


def test_multi_turn_replies_are_the_same_with_and_without_reuse(tiny_model_folder):
    cached = LocalChatModel(model_ref=str(tiny_model_folder), max_new_tokens=8)
    plain = LocalChatModel(model_ref=str(tiny_model_folder), max_new_tokens=8,
                           prefix_cache_mb=0)
    assert plain.batcher.cache is None
    with_reuse = conversation(cached, 4, OPENINGS[0])
    assert cached.batcher.cache.hits_tokens > cached.batcher.cache.computed_tokens / 2
    without = conversation(plain, 4, OPENINGS[0])
    for a, b in zip(with_reuse, without, strict=True):
        assert a["prompt_token_ids"] == b["prompt_token_ids"]
        assert a["completion_token_ids"] == b["completion_token_ids"]
        assert a["logprobs"] == pytest.approx(b["logprobs"], abs=1e-4)


def test_concurrent_conversations_reuse_their_own_states(tiny_model_folder):
    cached = LocalChatModel(model_ref=str(tiny_model_folder), max_new_tokens=8)
    plain = LocalChatModel(model_ref=str(tiny_model_folder), max_new_tokens=8,
                           prefix_cache_mb=0)

    async def together(model):
        return await asyncio.gather(*[asyncio.to_thread(conversation, model, 3, opening)
                                      for opening in OPENINGS])

    before = len(cached.batcher.batch_sizes)
    joint = asyncio.run(together(cached))
    assert max(cached.batcher.batch_sizes[before:]) > 1
    alone = [conversation(plain, 3, opening) for opening in OPENINGS]
    for metas_joint, metas_alone in zip(joint, alone, strict=True):
        for a, b in zip(metas_joint, metas_alone, strict=True):
            assert a["completion_token_ids"] == b["completion_token_ids"]
            assert a["logprobs"] == pytest.approx(b["logprobs"], abs=1e-4)


def test_states_are_dropped_when_the_weights_change(tiny_model_folder, tmp_path):
    folder = tmp_path / "own-copy"  # a model instance of its own: this test edits weights
    shutil.copytree(tiny_model_folder, folder)
    chat = LocalChatModel(model_ref=str(folder), max_new_tokens=6)
    messages = [SystemMessage("You are a patient."), HumanMessage("Do you smoke?")]
    reply = chat.invoke(messages)
    assert len(chat.batcher.cache) == 1
    net, _ = load_local_model(str(folder))
    assert net is chat.batcher.model
    with torch.no_grad():  # an optimizer step, in effect
        for parameter in net.parameters():
            parameter.mul_(1.5)
    later = chat.invoke(messages + [AIMessage(reply.content), HumanMessage("Since when?")])
    meta = later.response_metadata
    prompt, completion = meta["prompt_token_ids"], meta["completion_token_ids"]
    with torch.no_grad():
        logits = net(torch.tensor([prompt + completion])).logits[0, len(prompt) - 1:-1]
    expected = torch.log_softmax(logits, -1).gather(
        -1, torch.tensor(completion).unsqueeze(-1)).squeeze(-1)
    assert expected.tolist() == pytest.approx(meta["logprobs"], abs=1e-4)
    assert chat.batcher.cache.hits_tokens == 0  # the old states were not used
