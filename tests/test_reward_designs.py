"""Reward designs on a hand-built consultation, against exact expected arrays."""

from __future__ import annotations

import statistics

import pytest

from promed_agents.errors import TrainingError
from promed_agents.trace import EpisodeRecord, EpisodeStatus, Role, TurnKind, TurnRecord
from promed_agents.trainers.reward_designs import (
    REWARD_DESIGNS,
    DoctorAgentReward,
    LengthPenalty,
    OutcomeReward,
    RewardChoice,
    RewardDesign,
    RolloutLevelReward,
    SIGReward,
    normalised_group,
)


def doctor(index, kind, text, tokens=2, sig=None, fmt=1.0):
    return TurnRecord(index=index, role=Role.DOCTOR, text=text, kind=kind,
                      token_ids=list(range(tokens)), sig=sig, format_score=fmt)


def patient(index, disclosed=()):
    return TurnRecord(index=index, role=Role.PATIENT, text="p", kind=TurnKind.REPLY,
                      disclosed_fact_ids=list(disclosed), token_ids=[7])


def consultation(correct=True, status=EpisodeStatus.COMPLETED, recall=0.6):
    """Known facts 0, 1. Doctor turns: an answered question, a malformed turn, two
    questions in one turn, the first question again, a question nobody can answer, the
    answer (6 doctor turns)."""
    return EpisodeRecord(
        case_id="c", graph="g", doctor_spec="d", correct=correct, status=status,
        known_fact_ids=[0, 1], metadata={"weighted_recall": recall}, turns=[
            doctor(0, TurnKind.QUESTION, "question: Any fever?", sig=0.25), patient(1, [2]),
            doctor(2, TurnKind.INVALID, "hmm", fmt=0.0),
            doctor(3, TurnKind.QUESTION, "question: Fever? Cough?", fmt=0.5), patient(4),
            doctor(5, TurnKind.QUESTION, "question: any FEVER?"), patient(6, [2]),
            doctor(7, TurnKind.QUESTION, "question: What is your blood type?"), patient(8),
            doctor(9, TurnKind.ANSWER, "answer: C", tokens=4)])


def test_doctoragent_rewards_each_rule_and_sums_them():
    # +1 answered, -2 malformed, -2 two questions, -2 repeated, -1 unanswered, +5 correct
    assert DoctorAgentReward().episode_reward(consultation()) == -1.0
    assert DoctorAgentReward().turn_rewards(consultation()) == [-1.0] * 6
    # wrong and out of budget: -6, then -5 more for the spent budget
    timeout = consultation(correct=False, status=EpisodeStatus.TIMEOUT)
    assert DoctorAgentReward().episode_reward(timeout) == -11.0


def test_a_question_when_the_turns_ran_out_costs_the_budget_penalty_only():
    ran_out = consultation(status=EpisodeStatus.TIMEOUT, correct=False).model_copy(
        update={"turns": [doctor(0, TurnKind.QUESTION, "question: Any fever?"), patient(1, [2]),
                          doctor(2, TurnKind.INVALID, "question: Any cough?", fmt=0.0)]})
    ran_out.turns[2].late_question = True  # the graph says so: the request was for an answer
    assert DoctorAgentReward().episode_reward(ran_out) == 1 - 5
    garbled = ran_out.model_copy(update={"turns": [*ran_out.turns[:2], doctor(
        2, TurnKind.INVALID, "hmm", fmt=0.0)]})
    assert DoctorAgentReward().episode_reward(garbled) == 1 - 2 - 5


def test_a_fact_disclosed_again_is_not_an_answered_question():
    repeat = consultation().model_copy(update={"turns": [
        doctor(0, TurnKind.QUESTION, "question: Any fever?"), patient(1, [2]),
        doctor(2, TurnKind.QUESTION, "question: Is there a cough?"), patient(3, [2, 0]),
        doctor(4, TurnKind.ANSWER, "answer: C")]})
    assert DoctorAgentReward().episode_reward(repeat) == 1 - 1 + 5


def test_outcome_and_rollout_level_rewards():
    assert OutcomeReward().turn_rewards(consultation()) == [1.0] * 6
    assert OutcomeReward().turn_rewards(consultation(correct=False)) == [0.0] * 6
    # 4 x 1 + mean format (1 + 0 + 0.5 + 1 + 1 + 1) / 6 + 0.6
    assert RolloutLevelReward().episode_reward(consultation()) == pytest.approx(
        4 + 4.5 / 6 + 0.6)
    unrecorded = consultation().model_copy(update={"weighted_recall": None})
    with pytest.raises(TrainingError, match="weighted fact recall"):
        RolloutLevelReward().episode_reward(unrecorded)


def test_promed_design_is_the_sig_token_rewards():
    # q 2*0.25+0.25+1, invalid 0, q 0+0+0.5, the first question again 0 (a repeat
    # earns nothing, not even its format), q 1, answer 3+1
    assert SIGReward().turn_rewards(consultation()) == [1.75, 0.0, 0.5, 0.0, 1.0, 4.0]


def test_length_penalty_on_the_answer_turn_or_the_episode():
    token_level = LengthPenalty(SIGReward(), weight=2.0, max_new_tokens=8)
    # the answer has 4 tokens: 2 x 4/8 = 1 off the answer turn only
    assert token_level.turn_rewards(consultation()) == [1.75, 0.0, 0.5, 0.0, 1.0, 3.0]
    episode_level = LengthPenalty(OutcomeReward(), weight=2.0, max_new_tokens=8)
    assert episode_level.turn_rewards(consultation()) == [0.0] * 6
    assert token_level.name == "promed+length"
    no_answer = consultation().model_copy(update={"turns": consultation().turns[:2]})
    assert token_level.turn_rewards(no_answer) == [1.75]


def test_episode_level_advantages_are_group_normalised_on_every_trained_token():
    rewards = [[5.0, 5.0, 0.0], [1.0, 0.0], [3.0], [9.0]]
    masks = [[1, 1, 0], [1, 0], [1], [0]]  # the last one is not trainable
    expected = normalised_group([5.0, 1.0, 3.0])
    assert expected == pytest.approx([2 / (2 + 1e-4), -2 / (2 + 1e-4), 0.0])
    advantages = OutcomeReward().advantages(rewards, masks)
    assert advantages[0] == pytest.approx([expected[0]] * 2 + [0.0])
    assert advantages[1] == pytest.approx([expected[1], 0.0])
    assert advantages[2:] == [[0.0], [0.0]]  # the mean sits on 3.0; nothing trained
    assert statistics.stdev([5.0, 1.0, 3.0]) == 2.0
    assert OutcomeReward().advantages([[1.0], [1.0]], [[1], [1]]) == [[0.0], [0.0]]


def test_every_named_design_is_a_reward_design_and_choices_are_checked():
    for name in REWARD_DESIGNS:
        design = RewardChoice(reward=name).design()
        assert isinstance(design, RewardDesign) and design.name == name
    assert isinstance(RewardChoice(length_penalty=0.5).design(), LengthPenalty)
    with pytest.raises(TrainingError, match="no reward design 'ppo'"):
        RewardChoice(reward="ppo").design()
    with pytest.raises(TrainingError, match="length penalty"):
        RewardChoice(length_penalty=-1).design()


def test_a_late_question_is_known_from_the_graph_and_rewording_changes_no_reward(monkeypatch):
    """The graph marks a question asked after the final request, whatever its text (here
    the marker is not first); and rewording the doctor's prompt and final request changes
    no reward design's reward."""
    import asyncio

    import promed_agents.graphs.consultation as graph_module
    from promed_agents.agents import doctor as doctor_module
    from promed_agents.backends.scripted_chat_model import ScriptedChatModel
    from promed_agents.graphs.consultation import ConsultationContext
    from promed_agents.graphs.consultation_runner import arun_consultations
    from promed_agents.loader import bundled_sample_path, load_cases

    cases = load_cases(bundled_sample_path())[:2]
    designs = [design() for design in (DoctorAgentReward, OutcomeReward, RolloutLevelReward)]

    def run():
        doctor = ScriptedChatModel(responses=["question: What did the physical examination "
                                              "show?", "Before I answer, question: Any cough?"])
        episodes = asyncio.run(arun_consultations(cases, ConsultationContext(
            doctor=doctor, max_questions=1)))
        return episodes, [[d.episode_reward(e) for d in designs] for e in episodes]

    episodes, before = run()
    for episode in episodes:
        late = episode.turns[-1]
        assert episode.status is EpisodeStatus.TIMEOUT and late.kind is TurnKind.INVALID
        assert late.late_question and not episode.turns[0].late_question
        spent = episode.model_copy(update={"turns": episode.turns[:-1]})
        # the late question costs the budget penalty only, not the malformed-turn one
        assert DoctorAgentReward().episode_reward(episode) == \
            DoctorAgentReward().episode_reward(spent)
    monkeypatch.setattr(doctor_module, "case_prompt", lambda case, view: (
        f"Known so far -- {view.opening_text(case)}\nExam item: {case.question}\n" +
        " | ".join(f"({k}) {v}" for k, v in case.options.items())))
    monkeypatch.setattr(graph_module, "final_request",
                        lambda case: "Time is up: reply with answer: X.")
    assert run()[1] == before


def open_consultation(rouge=0.5, correct=True):
    """An open-ended case: a question (answered), a test order whose result revealed a
    fact, the same order again (nothing new), then a diagnosis (4 doctor turns)."""
    from promed_agents.trace import Verdict

    result = TurnRecord(index=3, role=Role.MEASUREMENT, text="m", kind=TurnKind.REPLY,
                        disclosed_fact_ids=[3])
    again = TurnRecord(index=5, role=Role.MEASUREMENT, text="m", kind=TurnKind.REPLY,
                       disclosed_fact_ids=[3])
    return EpisodeRecord(
        case_id="o", graph="g", doctor_spec="d", correct=correct, known_fact_ids=[0],
        tests_ordered=2, diagnosis_rouge=rouge, metadata={"weighted_recall": 0.5},
        verdict=Verdict(correct=correct, score=rouge, judge="rouge:0.5"), turns=[
            doctor(0, TurnKind.QUESTION, "question: Any fever?", sig=0.1), patient(1, [2]),
            doctor(2, TurnKind.TEST, "test: Chest X-ray", sig=0.2), result,
            doctor(4, TurnKind.TEST, "test: Chest X-ray", sig=0.0), again,
            doctor(6, TurnKind.ANSWER, "diagnosis: Pneumonia")])


def test_doctoragent_scores_test_orders_as_questions_and_the_diagnosis_by_rouge():
    design = DoctorAgentReward()
    # question answered +1, test revealed a fact +1, the repeated order -2, diagnosis
    # 5 x ROUGE-L F1 (0.5) = 2.5, whatever the judge said
    assert design.episode_reward(open_consultation()) == pytest.approx(1 + 1 - 2 + 2.5)
    assert design.episode_reward(open_consultation(rouge=1.0, correct=False)) == \
        pytest.approx(1 + 1 - 2 + 5)


def test_a_test_order_is_rewarded_by_its_sig_and_a_cost_per_test_is_charged():
    from promed_agents.trainers.reward_designs import TestCost
    from promed_agents.trainers.token_rewards import RewardWeights

    episode = open_consultation()
    free = SIGReward().turn_rewards(episode)
    assert free[1] == pytest.approx(1.0 + 2 * 0.2 + 0.2)  # format + alpha SIG + beta SIG
    assert free[2] == 0.0  # the repeated order
    charged = RewardChoice("promed", weights=RewardWeights(test_cost=0.25)).design()
    assert isinstance(charged, TestCost) and charged.name == "promed+test-cost"
    assert charged.turn_rewards(episode) == pytest.approx(
        [free[0], free[1] - 0.25, free[2] - 0.25, free[3]])
    outcome = RewardChoice("outcome", weights=RewardWeights(test_cost=0.25)).design()
    assert outcome.turn_rewards(episode) == pytest.approx([1.0 - 0.5] * 4)
    with pytest.raises(TrainingError, match="test cost -1"):
        RewardChoice("promed", weights=RewardWeights(test_cost=-1.0)).design()
