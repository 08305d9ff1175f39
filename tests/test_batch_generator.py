from __future__ import annotations

from concurrent.futures import wait

import pytest

from promed_agents.backends.batch_generator import (
    BatchGenerator,
    GenerationParams,
    generate_batch,
)
from promed_agents.backends.model_pool import load_local_model
from promed_agents.backends.prefix_cache import PrefixCache

GREEDY = GenerationParams(max_new_tokens=12, temperature=0.0, top_p=1.0, stop=(), seed=None)


@pytest.fixture
def tiny(tiny_model_folder):
    return load_local_model(str(tiny_model_folder))


def prompts(tokenizer) -> list[list[int]]:
    texts = ["Do you have a fever?", "Where does the pain start and where does it go?",
             "Any rash?", "How much do you drink, and since when have you been drinking?"]
    return [tokenizer.apply_chat_template([{"role": "user", "content": t}],
                                          add_generation_prompt=True, tokenize=True,
                                          return_dict=True)["input_ids"] for t in texts]


def run_together(generator: BatchGenerator, inputs, params) -> list[dict]:
    futures = [generator.submit(list(ids), params) for ids in inputs]
    wait(futures, timeout=120)
    return [f.result() for f in futures]


def test_chunked_batches_give_the_same_tokens_as_one_request_at_a_time(tiny):
    model, tokenizer = tiny
    alone = BatchGenerator(model, tokenizer, cache_mb=0)
    singles = [run_together(alone, [ids], GREEDY)[0] for ids in prompts(tokenizer)]
    chunked = BatchGenerator(model, tokenizer, wait_s=0.2, chunk_tokens=3)
    joint = run_together(chunked, prompts(tokenizer), GREEDY)
    # 12 tokens in chunks of 3: the rows went back to the queue and were batched again.
    assert len(chunked.batch_sizes) >= 4 and max(chunked.batch_sizes) > 1
    for one, many in zip(singles, joint, strict=True):
        assert many["prompt_token_ids"] == one["prompt_token_ids"]
        assert many["completion_token_ids"] == one["completion_token_ids"]
        assert many["logprobs"] == pytest.approx(one["logprobs"], abs=1e-4)
        assert many["finish_reason"] == one["finish_reason"]
        assert len(many["completion_token_ids"]) <= 12
    assert chunked.cache.hits_tokens > 0  # continuations resumed from cached states


def test_reused_states_equal_a_full_forward_pass(tiny):
    import torch
    from transformers import DynamicCache

    model, tokenizer = tiny
    cache = PrefixCache(max_bytes=1 << 26)
    first, second = list(range(100, 140)), list(range(100, 130)) + list(range(500, 530))
    params = GenerationParams(5, 0.0, 1.0, (), None)
    generate_batch(model, tokenizer, [first], params, cache)
    assert cache.hits_tokens == 0 and cache.computed_tokens == 40
    reply = generate_batch(model, tokenizer, [second], params, cache)[0]
    assert cache.hits_tokens == 30  # the common prefix was not run again
    assert reply["ids"] == generate_batch(model, tokenizer, [second], params)[0]["ids"]
    sequence = second + reply["ids"]
    length, kv = cache.lookup(sequence, len(sequence))
    assert length == len(second) + len(reply["ids"]) - 1
    full = DynamicCache(config=model.config)
    with torch.inference_mode():
        model(input_ids=torch.tensor([sequence[:length]]), past_key_values=full)
    for (k, v), layer in zip(kv, full.layers, strict=True):
        torch.testing.assert_close(k, layer.keys, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(v, layer.values, atol=1e-5, rtol=1e-4)


def test_a_stop_string_ends_its_row_early_and_cuts_the_text(tiny):
    model, tokenizer = tiny
    generator = BatchGenerator(model, tokenizer, wait_s=0.2, chunk_tokens=2)
    sampled = GenerationParams(12, 1.0, 1.0, (), seed=3)  # varied text from a random model
    free = run_together(generator, prompts(tokenizer), sampled)
    ids = free[0]["completion_token_ids"]
    stop = tokenizer.decode(ids[3:5])  # a piece of row 0's reply, mid-way
    assert stop.strip() and len(ids) == 12, "pick another seed: no text to stop on"
    stopped = run_together(generator, prompts(tokenizer),
                           GenerationParams(12, 1.0, 1.0, (stop,), seed=3))
    first = stopped[0]
    assert first["finish_reason"] == "stop" and stop not in first["text"]
    assert first["text"] == tokenizer.decode(ids, skip_special_tokens=True).split(stop)[0].strip()
    assert 5 <= len(first["completion_token_ids"]) < 12
    # The same tokens, up to the one that completed the stop string, and nothing after:
    # the padding that follows (SmolLM2 pads with its end-of-turn token) was never sampled
    kept = first["completion_token_ids"]
    assert kept == ids[:len(kept)] and tokenizer.eos_token_id not in kept
    assert stop in tokenizer.decode(kept) and stop not in tokenizer.decode(kept[:-1])
    assert len(first["logprobs"]) == len(kept)
    assert all(len(r["completion_token_ids"]) <= 12 for r in stopped)


def test_seeded_sampling_is_reproducible_across_chunks(tiny):
    model, tokenizer = tiny
    generator = BatchGenerator(model, tokenizer, wait_s=0.2, chunk_tokens=4)
    params = GenerationParams(12, 1.0, 1.0, (), seed=7)
    first = run_together(generator, prompts(tokenizer), params)
    second = run_together(generator, prompts(tokenizer), params)
    assert [r["completion_token_ids"] for r in first] == \
        [r["completion_token_ids"] for r in second]
    unseeded = GenerationParams(12, 1.0, 1.0, (), seed=None)
    draws = {tuple(run_together(generator, prompts(tokenizer)[:1], unseeded)[0]
                   ["completion_token_ids"]) for _ in range(3)}
    assert len(draws) > 1  # temperature 1 on a random model: draws differ


def test_a_failing_generate_fails_every_request_of_its_batch(tiny, monkeypatch):
    model, tokenizer = tiny
    generator = BatchGenerator(model, tokenizer, wait_s=0.2)

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory, say")

    monkeypatch.setattr(model, "generate", broken)
    futures = [generator.submit(ids, GREEDY) for ids in prompts(tokenizer)]
    wait(futures, timeout=60)
    for future in futures:
        with pytest.raises(RuntimeError, match="out of memory"):
            future.result()


def test_a_long_new_prompt_among_cached_ones_gives_the_same_tokens(tiny):
    model, tokenizer = tiny
    cache = PrefixCache(max_bytes=1 << 26)
    params = GenerationParams(6, 0.0, 1.0, (), None)
    short = [list(range(200 + 10 * i, 240 + 10 * i)) for i in range(3)]
    first = generate_batch(model, tokenizer, short, params, cache)
    continued = [ids + r["ids"] + [300, 301, 302] for ids, r in zip(short, first, strict=True)]
    fresh = list(range(1000, 1200))  # 200 uncached tokens against 4 for the others
    batch = [fresh] + continued
    before = cache.computed_tokens
    joint = generate_batch(model, tokenizer, batch, params, cache)
    alone = [generate_batch(model, tokenizer, [ids], params)[0] for ids in batch]
    for a, b in zip(joint, alone, strict=True):
        assert a["ids"] == b["ids"]
        assert a["logprobs"] == pytest.approx(b["logprobs"], abs=1e-4)
    assert cache.computed_tokens - before < 200 + 3 * 12  # the cached parts were reused


def test_a_cancelled_request_is_dropped_and_the_generator_keeps_serving(tiny):
    model, tokenizer = tiny
    generator = BatchGenerator(model, tokenizer, wait_s=0.3)
    inputs = prompts(tokenizer)
    cancelled = generator.submit(inputs[0], GREEDY)
    assert cancelled.cancel()  # the caller gave up before the batch started
    kept = generator.submit(inputs[1], GREEDY)
    assert kept.result(timeout=60)["completion_token_ids"]
    assert generator.batch_sizes[-1] == 1 and cancelled.cancelled()
    after = generator.submit(inputs[2], GREEDY)  # the serving thread is still alive
    assert after.result(timeout=60)["finish_reason"] in ("stop", "length")


def test_an_unexpected_error_outside_generate_fails_the_batch_not_the_thread(tiny):
    model, tokenizer = tiny
    generator = BatchGenerator(model, tokenizer, wait_s=0.05)
    real_version = generator._version
    generator._version = lambda: (_ for _ in ()).throw(RuntimeError("version check broke"))
    failing = generator.submit(prompts(tokenizer)[0], GREEDY)
    with pytest.raises(RuntimeError, match="version check broke"):
        failing.result(timeout=60)
    generator._version = real_version
    assert generator.submit(prompts(tokenizer)[1], GREEDY).result(timeout=60)["text"] is not None


def test_a_closed_generator_answers_what_was_queued_then_lets_its_model_go(tiny):
    import gc
    import weakref

    model, tokenizer = tiny
    generator = BatchGenerator(model, tokenizer, wait_s=0.05, cache_mb=0)
    pending = generator.submit(prompts(tokenizer)[0], GREEDY)
    generator.close()
    assert pending.result(timeout=60)["completion_token_ids"]  # queued before the close
    assert not generator._thread.is_alive() and generator.model is None
    with pytest.raises(RuntimeError, match="closed"):
        generator.submit(prompts(tokenizer)[1], GREEDY)
    generator.close()  # twice is fine
    # an open generator's thread keeps it (and so its model) alive; a closed one does not
    kept, dropped = BatchGenerator(model, tokenizer), BatchGenerator(model, tokenizer)
    dropped.close()
    refs = weakref.ref(kept), weakref.ref(dropped)
    del kept, dropped
    gc.collect()
    assert refs[0]() is not None and refs[1]() is None
