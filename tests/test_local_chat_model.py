from __future__ import annotations

import asyncio

import pytest
import torch
from langchain_core.messages import HumanMessage, SystemMessage

from promed_agents.backends.local_chat_model import LocalChatModel
from promed_agents.backends.model_pool import load_local_model

PROMPTS = ["Do you have a fever?", "How long have you had the pain in your right knee?",
           "Any rash?", "Tell me about your urine, please, in as much detail as you can.",
           "Cough?", "When did it start?"]


def chat(text):
    return [SystemMessage("You are a patient."), HumanMessage(text)]


@pytest.fixture
def model(tiny_model_folder):
    return LocalChatModel(model_ref=str(tiny_model_folder), max_new_tokens=12)


def test_metadata_is_exact_training_data(model, tiny_model_folder):
    reply = model.invoke(chat(PROMPTS[1]))
    meta = reply.response_metadata
    prompt, completion = meta["prompt_token_ids"], meta["completion_token_ids"]
    assert 0 < len(completion) <= 12 and len(meta["logprobs"]) == len(completion)
    assert meta["finish_reason"] in ("stop", "length") and meta["model"].startswith("local:")
    net, tokenizer = load_local_model(str(tiny_model_folder))
    expected = tokenizer.apply_chat_template(
        [{"role": "system", "content": "You are a patient."},
         {"role": "user", "content": PROMPTS[1]}], add_generation_prompt=True, tokenize=True,
        return_dict=True)["input_ids"]
    assert prompt == list(expected)
    with torch.no_grad():  # recompute the completion's logprobs with one forward pass
        logits = net(torch.tensor([prompt + completion])).logits[0, len(prompt) - 1:-1]
    recomputed = torch.log_softmax(logits.float(), -1).gather(
        -1, torch.tensor(completion).unsqueeze(-1)).squeeze(-1)
    assert recomputed.tolist() == pytest.approx(meta["logprobs"], abs=1e-4)
    assert reply.usage_metadata["output_tokens"] == len(completion)


def test_concurrent_calls_are_batched_and_match_single_calls(model):
    singles = [model.invoke(chat(p)).response_metadata for p in PROMPTS]

    async def together():
        return await asyncio.gather(*[model.ainvoke(chat(p)) for p in PROMPTS])

    before = len(model.batcher.batch_sizes)
    batched = [r.response_metadata for r in asyncio.run(together())]
    assert max(model.batcher.batch_sizes[before:]) > 1
    for single, joint in zip(singles, batched, strict=True):
        assert joint["completion_token_ids"] == single["completion_token_ids"]
        assert joint["logprobs"] == pytest.approx(single["logprobs"], abs=1e-4)


def test_sampling_parameters_are_honoured(model):
    greedy = {model.invoke(chat(PROMPTS[0])).content for _ in range(2)}
    assert len(greedy) == 1
    seeded = [model.invoke(chat(PROMPTS[0]), temperature=1.0, seed=7).content
              for _ in range(2)]
    assert seeded[0] == seeded[1]
    sampled = {model.invoke(chat(PROMPTS[0]), temperature=1.5, seed=s).content
               for s in range(4)}
    assert len(sampled) > 1
    short = model.invoke(chat(PROMPTS[0]), max_new_tokens=3).response_metadata
    assert len(short["completion_token_ids"]) <= 3


def test_a_generation_error_reaches_the_caller(model):
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.invoke(chat(PROMPTS[0]), max_new_tokens=0)
    assert model.invoke(chat(PROMPTS[0])).content is not None  # the batcher survives


def test_embedded_smollm2_runs_a_consultation(smollm2_folder):
    from promed_agents.backends import resolve_chat_model
    from promed_agents.graphs import ConsultationContext, run_consultations
    from promed_agents.loader import bundled_sample_path, load_cases
    from promed_agents.trace import EpisodeStatus

    cases = load_cases(bundled_sample_path())[:2]
    doctor = resolve_chat_model("local:smollm2")
    context = ConsultationContext(doctor=doctor, max_questions=1,
                                  doctor_kwargs={"stop": ["\n"], "max_new_tokens": 24})
    episodes = run_consultations(cases, context, concurrency=2)
    assert [e.case_id for e in episodes] == [c.id for c in cases]
    for episode in episodes:
        assert episode.status in (EpisodeStatus.COMPLETED, EpisodeStatus.TIMEOUT)
        doctor_turns = [t for t in episode.turns if t.role.value == "doctor"]
        assert 1 <= len(doctor_turns) <= 2
        assert all(t.token_ids and len(t.token_ids) == len(t.logprobs) for t in doctor_turns)


def test_another_models_turn_in_this_models_tokens_ends_the_turn(model):
    prompt, completion = model.tokens_for([HumanMessage("Any fever?")], "question: Any rash?")
    tokenizer = model.batcher.tokenizer
    assert completion[-1] == tokenizer.eos_token_id  # trained, so the policy learns to stop
    assert tokenizer.decode(completion[:-1]) == "question: Any rash?"
    assert prompt == model._prompt_ids([HumanMessage("Any fever?")], model.batcher.tokenizer)
