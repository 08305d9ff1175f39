from __future__ import annotations

import asyncio

import pytest

from promed_agents.agents.doctor import doctor_sampling
from promed_agents.backends.local_chat_model import LocalChatModel
from promed_agents.backends.scripted_chat_model import ScriptedChatModel, byte_tokens
from promed_agents.graphs.consultation import ConsultationContext
from promed_agents.graphs.consultation_runner import arun_consultations
from promed_agents.graphs.token_sequence import PolicySample, policy_samples, stitch
from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.trace import TurnKind

CASES = load_cases(bundled_sample_path())[:3]


def consultations(policy, cases, times, max_questions=10, **sampling):
    context = ConsultationContext(doctor=policy, max_questions=max_questions,
                                  doctor_kwargs=doctor_sampling(policy, **sampling))
    return asyncio.run(arun_consultations([c for c in cases for _ in range(times)], context))


def test_a_consultation_stitches_into_one_sequence_with_a_policy_mask():
    policy = ScriptedChatModel(responses=[
        "question: What did the culture of the joint fluid show?", "answer: C"])
    (episode,) = consultations(policy, CASES[:1], 1)
    samples = policy_samples(episode)
    assert episode.correct
    assert [s.kind for s in samples] == [TurnKind.QUESTION, TurnKind.ANSWER]
    assert samples[0].sig == pytest.approx(1 / 9)
    question = byte_tokens("question: What did the culture of the joint fluid show?")
    answer = byte_tokens("answer: C")
    sequence = stitch(samples)
    masked = [t for t, m in zip(sequence.completion_ids, sequence.policy_mask, strict=True)
              if m]
    assert masked == question + answer
    assert [i for i in sequence.turn_index if i >= 0] == [0] * len(question) + [1] * len(answer)
    environment = [t for t, m in zip(sequence.completion_ids, sequence.policy_mask,
                                     strict=True) if not m]
    assert bytes(environment).decode() == "Patient: Culture of joint fluid shows a bacteria."
    assert len(sequence.logprobs) == len(sequence.completion_ids) and sequence.dropped == 0
    assert sequence.prompt_ids == samples[0].prompt_ids


def test_sampled_consultations_of_a_local_policy(tiny_model_folder):
    policy = LocalChatModel(model_ref=str(tiny_model_folder))
    episodes = consultations(policy, CASES[:1], 4, max_questions=1, temperature=1.0,
                             max_new_tokens=8)
    texts = {repr(policy_samples(e)[0].completion_ids) for e in episodes}
    assert len(texts) > 1  # sampling makes the group differ
    for episode in episodes:
        samples = policy_samples(episode)
        for sample in samples:
            assert sample.prompt_ids and len(sample.completion_ids) == len(sample.logprobs)
        sequence = stitch(samples)
        if sequence is not None:  # a random model's text need not re-tokenize the same
            assert sum(sequence.policy_mask) + sequence.dropped == \
                sum(len(s.completion_ids) for s in samples)


@pytest.mark.slow
def test_smollm2_consultations_stitch_into_one_sequence(smollm2_folder):
    """SmolLM2's turns re-render token for token in the next prompt (a turn stopped at
    its newline drops only that token), so each consultation is one sequence."""
    policy = LocalChatModel(model_ref=str(smollm2_folder), seed=0)
    for episode in consultations(policy, CASES[:1], 3, max_questions=2, temperature=0.7,
                                 max_new_tokens=24):
        samples = policy_samples(episode)
        sequence = stitch(samples)
        assert sequence is not None, [s.completion_ids for s in samples]
        assert sum(sequence.policy_mask) + sequence.dropped == \
            sum(len(s.completion_ids) for s in samples)
        assert sequence.prompt_ids == samples[0].prompt_ids
        # every later prompt is the stitched sequence so far
        for later in samples[1:]:
            assert later.prompt_ids[:len(samples[0].prompt_ids)] == sequence.prompt_ids


def sample(prompt, completion, kind=TurnKind.QUESTION):
    return PolicySample(prompt_ids=prompt, completion_ids=completion,
                        logprobs=[-0.5] * len(completion), kind=kind, sig=None)


def test_stitch_drops_a_stop_token_the_next_prompt_re_renders():
    # turn 0 stopped at a newline token (9); the template re-rendered it as end-of-turn (2)
    turns = [sample([1, 1], [5, 6, 9]), sample([1, 1, 5, 6, 2, 7, 7], [8, 2])]
    sequence = stitch(turns)
    assert sequence.completion_ids == [5, 6, 2, 7, 7, 8, 2]
    assert sequence.turn_index == [0, 0, -1, -1, -1, 1, 1]
    assert sequence.logprobs == [-0.5, -0.5, 0.0, 0.0, 0.0, -0.5, -0.5]
    assert sequence.dropped == 1


def test_stitch_refuses_prompts_that_do_not_extend_each_other():
    assert stitch([sample([1, 1], [5]), sample([1, 3, 5], [6])]) is None
    # a template that rewrites the turn's text drops more than max_dropped tokens
    assert stitch([sample([1], [5, 6, 7, 9]), sample([1, 4, 4, 4, 4], [6])]) is None
    assert stitch([]) is None
