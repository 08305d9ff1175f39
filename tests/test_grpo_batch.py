"""A GRPO batch from hand-built consultations: exact rewards, advantages and masks."""

from __future__ import annotations

import pytest

from promed_agents.trace import EpisodeRecord, EpisodeStatus, Role, TurnKind, TurnRecord
from promed_agents.trainers.grpo_batch import rollout_metrics, score_groups


def doctor(index, prompt, completion, kind, sig=None, fmt=1.0):
    return TurnRecord(index=index, role=Role.DOCTOR, text="t", kind=kind, sig=sig,
                      format_score=fmt, prompt_token_ids=prompt, token_ids=completion,
                      logprobs=[-0.25] * len(completion))


def patient(index, fact_ids=()):
    return TurnRecord(index=index, role=Role.PATIENT, text="p", kind=TurnKind.REPLY,
                      disclosed_fact_ids=list(fact_ids))


def asks_then_answers(correct, sig=0.5):
    """Prompt [1, 2]; question [10, 11, 9] (9: a stop token the template re-renders as 3);
    patient [3, 7]; answer [12, 3]."""
    return EpisodeRecord(id=1, case_id="c", graph="grpo", doctor_spec="d", correct=correct,
                         final_answer=["A"], status=EpisodeStatus.COMPLETED, turns=[
        doctor(0, [1, 2], [10, 11, 9], TurnKind.QUESTION, sig=sig), patient(1, [0]),
        doctor(2, [1, 2, 10, 11, 3, 7], [12, 3], TurnKind.ANSWER)])


def answers_at_once(correct):
    return EpisodeRecord(id=2, case_id="c", graph="grpo", doctor_spec="d", correct=correct,
                         final_answer=["B"], status=EpisodeStatus.COMPLETED,
                         turns=[doctor(0, [1, 2], [12, 3], TurnKind.ANSWER)])


def test_a_group_gets_token_rewards_and_the_reference_advantages():
    first, second = score_groups([asks_then_answers(True), answers_at_once(False)], 2)
    # question: 2*0.5 + 1*0.5*1 + 1 = 2.5 on its two kept tokens; answer: 3 + 1 = 4
    assert first.prompt_ids == [1, 2] and first.completion_ids == [10, 11, 3, 7, 12, 3]
    assert first.loss_mask == [1, 1, 0, 0, 1, 1]
    assert first.rewards == [2.5, 2.5, 0.0, 0.0, 4.0, 4.0]
    assert first.sampling_logprobs == [-0.25, -0.25, 0.0, 0.0, -0.25, -0.25]
    assert second.rewards == [1.0, 1.0]  # wrong answer: format only
    # mean over the group's trained tokens: (2.5*2 + 4*2 + 1*2) / 6 = 2.5
    assert first.advantages == pytest.approx([0.0, 0.0, 0.0, 0.0, 1.5, 1.5])
    assert second.advantages == pytest.approx([-1.5, -1.5])


def test_an_episode_level_design_gives_every_trained_token_the_normalised_reward():
    from promed_agents.trainers.reward_designs import DoctorAgentReward

    first, second = score_groups([asks_then_answers(True), answers_at_once(False)], 2,
                                 DoctorAgentReward())
    # asked (no '?' in "t": not one question, -2) then right (+5): 3; wrong at once: 0
    assert first.rewards == [3.0, 3.0, 0.0, 0.0, 3.0, 3.0] and second.rewards == [0.0, 0.0]
    scale = 1.5 / (3 / 2 ** 0.5 + 1e-4)  # (3 - 1.5) / sample std of (3, 0)
    assert first.advantages == pytest.approx([scale, scale, 0, 0, scale, scale])
    assert second.advantages == pytest.approx([-scale, -scale])


def test_groups_are_independent_and_must_be_whole():
    scored = score_groups([answers_at_once(True), answers_at_once(False),
                           answers_at_once(False), answers_at_once(False)], 2)
    assert [s.advantages for s in scored] == [[1.5, 1.5], [-1.5, -1.5], [0.0, 0.0],
                                              [0.0, 0.0]]
    with pytest.raises(ValueError, match="groups of 2"):
        score_groups([answers_at_once(True)] * 3, 2)


def test_failed_or_token_less_episodes_keep_their_row_but_train_nothing():
    failed = EpisodeRecord(id=3, case_id="c", graph="grpo", doctor_spec="d",
                           status=EpisodeStatus.FAILED, failure_reason="boom")
    bare = answers_at_once(True)
    bare.turns[0] = bare.turns[0].model_copy(update={"token_ids": None})
    good, dead, empty = score_groups([answers_at_once(True), failed, bare], 3, pad_id=0)
    assert (dead.prompt_ids, dead.completion_ids, dead.loss_mask) == ([0], [0], [0])
    assert not dead.trained and not empty.trained and good.trained
    assert good.advantages == [0.0, 0.0]  # alone in the group's mean


def test_metrics_summarise_the_episodes():
    episodes = [asks_then_answers(True), answers_at_once(False)]
    metrics = rollout_metrics(episodes, score_groups(episodes, 2))
    assert metrics["episodes/accuracy"] == 0.5
    assert metrics["episodes/sig"] == 0.25
    assert metrics["episodes/questions"] == 0.5
    assert metrics["episodes/format"] == 1.0
    assert metrics["episodes/untrained"] == 0.0
    assert metrics["token_reward/mean"] == pytest.approx(2.5)


def test_a_group_must_hold_one_case():
    from promed_agents.errors import TrainingError

    other = answers_at_once(False).model_copy(update={"case_id": "d"})
    with pytest.raises(TrainingError, match="group 0 holds consultations of 2 cases"):
        score_groups([answers_at_once(True), other], 2)
    assert len(score_groups([other, other], 2)) == 2
