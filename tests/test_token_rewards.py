"""Token rewards on hand-built dialogues, against exact expected arrays; advantages."""

from __future__ import annotations

import pytest

from promed_agents.trace import EpisodeRecord, Role, TurnKind, TurnRecord
from promed_agents.trainers.token_rewards import (
    RewardWeights,
    episode_turn_rewards,
    group_advantages,
    sequence_token_rewards,
    turn_reward,
    with_token_rewards,
)

TOPICS = ("fever", "headache", "rash", "cough", "pain", "vomiting", "nausea", "itch")


def doctor(index, kind, tokens, sig=None, fmt=1.0, text=None):
    return TurnRecord(index=index, role=Role.DOCTOR, text=text or f"question: {TOPICS[index]}?",
                      kind=kind,
                      token_ids=list(range(tokens)), sig=sig, format_score=fmt)


def patient(index):
    return TurnRecord(index=index, role=Role.PATIENT, text="p", kind=TurnKind.REPLY,
                      token_ids=[7, 7, 7])


def dialogue(correct):
    return EpisodeRecord(case_id="c", graph="g", doctor_spec="d", correct=correct, turns=[
        doctor(0, TurnKind.QUESTION, 3, sig=0.25), patient(1),
        doctor(2, TurnKind.INVALID, 2, fmt=0.0),
        doctor(3, TurnKind.QUESTION, 2, sig=0.5, fmt=0.5), patient(4),
        doctor(5, TurnKind.ANSWER, 2)])


def test_reference_weights_on_a_correct_dialogue():
    # q1: 2*0.25 + 1*0.25*1 + 1*1 = 1.75; invalid: 0; q2: 2*0.5 + 0.5 + 0.5 = 2.0;
    # answer: 3*1 + 1 = 4.
    assert episode_turn_rewards(dialogue(True)) == [1.75, 0.0, 2.0, 4.0]


def test_a_wrong_answer_keeps_only_alpha_sig_and_format():
    # q1: 0.5 + 1 = 1.5; q2: 1.0 + 0.5 = 1.5; answer: 0 + 1 = 1.
    assert episode_turn_rewards(dialogue(False)) == [1.5, 0.0, 1.5, 1.0]


def test_a_repeated_question_earns_nothing_not_even_its_format():
    # the reference would pay the repeat its format reward (1); its SIG is 0 already
    episode = EpisodeRecord(case_id="c", graph="g", doctor_spec="d", correct=False, turns=[
        doctor(0, TurnKind.QUESTION, 3, sig=0.25, text="question: Do you have a fever?"),
        patient(1),
        doctor(2, TurnKind.QUESTION, 3, sig=0.0, text="question: do you have a FEVER"),
        patient(3),
        doctor(4, TurnKind.QUESTION, 3, sig=0.0, text="question: Do you have a rash?"),
        patient(5), doctor(6, TurnKind.ANSWER, 2)])
    assert episode_turn_rewards(episode) == [1.5, 0.0, 1.0, 1.0]


def test_custom_weights():
    weights = RewardWeights(sig_weight=1.0, sig_correct_weight=0.0, answer_weight=10.0,
                            format_weight=0.0)
    assert turn_reward(TurnKind.QUESTION, 0.4, 1.0, True, weights) == pytest.approx(0.4)
    assert turn_reward(TurnKind.ANSWER, None, 1.0, True, weights) == 10.0
    assert turn_reward(TurnKind.INVALID, None, 0.0, True, weights) == 0.0


def test_rewards_over_a_stitched_sequence_leave_environment_tokens_at_zero():
    turns = [1.75, 0.0, 4.0]
    index = [0, 0, 0, -1, -1, 1, -1, 2, 2]
    assert sequence_token_rewards(turns, index) == [1.75, 1.75, 1.75, 0, 0, 0, 0, 4.0, 4.0]
    with pytest.raises(ValueError, match="rewards for 3 turns"):
        sequence_token_rewards(turns, [0, 3])


def test_advantages_subtract_the_group_mean_of_trained_tokens_without_scaling():
    rewards = [[1.0, 1.0, 0.0, 4.0], [0.0, 2.0]]
    masks = [[1, 1, 0, 1], [1, 1]]
    # trained tokens: 1, 1, 4, 0, 2 -> mean 1.6
    advantages = group_advantages(rewards, masks)
    assert advantages[0] == pytest.approx([-0.6, -0.6, 0.0, 2.4])
    assert advantages[1] == pytest.approx([-1.6, 0.4])
    assert group_advantages([[3.0]], [[0]]) == [[0.0]]  # nothing trained
    with pytest.raises(ValueError):
        group_advantages(rewards, masks[:1])


def test_an_episode_annotated_with_its_rewards():
    annotated = with_token_rewards(dialogue(True))
    doctor_turns = [t for t in annotated.turns if t.role is Role.DOCTOR]
    assert [t.reward for t in doctor_turns] == [1.75, 0.0, 2.0, 4.0]
    assert doctor_turns[0].token_rewards == [1.75] * 3
    assert [t.reward for t in annotated.turns if t.role is Role.PATIENT] == [None, None]
    assert annotated.total_reward == 7.75
