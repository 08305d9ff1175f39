from __future__ import annotations

import asyncio

import pytest

from promed_agents.backends.local_chat_model import LocalChatModel
from promed_agents.backends.scripted_chat_model import ScriptedChatModel, byte_tokens
from promed_agents.graphs.rollout import arollout
from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.trace import TurnKind

CASES = load_cases(bundled_sample_path())[:3]


def test_groups_per_case_with_stitched_masks():
    policy = ScriptedChatModel(responses=[
        "question: What did the culture of the joint fluid show?", "answer: C"])
    recorded = []
    groups = asyncio.run(arollout(CASES, policy, group_size=4, on_episode=recorded.append))
    assert [g.case.id for g in groups] == [c.id for c in CASES]
    assert all(len(g.trajectories) == 4 for g in groups) and len(recorded) == 12
    trajectory = groups[0].trajectories[0]
    assert trajectory.correct and trajectory.episode.graph == "rollout"
    assert [s.kind for s in trajectory.samples] == [TurnKind.QUESTION, TurnKind.ANSWER]
    assert trajectory.samples[0].sig == pytest.approx(1 / 9)
    assert trajectory.stitched
    question = byte_tokens("question: What did the culture of the joint fluid show?")
    answer = byte_tokens("answer: C")
    masked = [t for t, m in zip(trajectory.completion_ids, trajectory.policy_mask, strict=True)
              if m]
    assert masked == question + answer
    environment = [t for t, m in zip(trajectory.completion_ids, trajectory.policy_mask,
                                     strict=True) if not m]
    assert bytes(environment).decode() == "Patient: Culture of joint fluid shows a bacteria."
    assert len(trajectory.logprobs) == len(trajectory.completion_ids)
    assert trajectory.prompt_ids == trajectory.samples[0].prompt_ids


def test_group_size_must_be_positive():
    with pytest.raises(ValueError, match="group_size"):
        asyncio.run(arollout(CASES, ScriptedChatModel(responses=["answer: A"]), 0))


def test_sampled_group_with_a_local_policy(tiny_model_folder):
    policy = LocalChatModel(model_ref=str(tiny_model_folder))
    groups = asyncio.run(arollout(CASES[:1], policy, group_size=4, max_questions=1,
                                  temperature=1.0, max_tokens=8))
    (group,) = groups
    texts = {t.samples[0].completion_ids.__repr__() for t in group.trajectories}
    assert len(texts) > 1  # sampling makes the group differ
    for trajectory in group.trajectories:
        for sample in trajectory.samples:
            assert sample.prompt_ids and len(sample.completion_ids) == len(sample.logprobs)
        if trajectory.stitched:
            assert sum(trajectory.policy_mask) == sum(len(s.completion_ids)
                                                      for s in trajectory.samples)
