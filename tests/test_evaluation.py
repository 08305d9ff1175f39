"""Evaluation figures on hand-built episodes: per-case means, intervals, paired gains."""

from __future__ import annotations

import math

import pytest

from promed_agents.evaluation import (
    episode_figures,
    mean_estimate,
    paired_difference,
    per_case,
    relative_gain,
    run_status,
    summarize,
)
from promed_agents.trace import EpisodeRecord, EpisodeStatus, Role, TurnKind, TurnRecord

TOPICS = ("fever", "cough", "rash", "pain", "nausea")


def episode(case, correct, questions=0, sig=0.0, recall=0.5, invalid=0, disclosed=(),
            known=()):
    """``disclosed[k]``: the fact ids the k-th reply disclosed (none when absent)."""
    turns = []
    for k in range(questions):
        turns += [TurnRecord(index=len(turns), role=Role.DOCTOR, text=f"question: {TOPICS[k]}?",
                             kind=TurnKind.QUESTION, sig=sig / questions),
                  TurnRecord(index=len(turns) + 1, role=Role.PATIENT, text="p",
                             kind=TurnKind.REPLY, disclosed_fact_ids=list(
                                 disclosed[k] if k < len(disclosed) else []))]
    for _ in range(invalid):
        turns.append(TurnRecord(index=len(turns), role=Role.DOCTOR, text="?",
                                kind=TurnKind.INVALID))
    turns.append(TurnRecord(index=len(turns), role=Role.DOCTOR, text="answer: A",
                            kind=TurnKind.ANSWER))
    return EpisodeRecord(case_id=case, graph="g", doctor_spec="d", correct=correct,
                         final_answer=["A"], status=EpisodeStatus.COMPLETED, turns=turns,
                         known_fact_ids=list(known), metadata={"fact_recall": recall})


def test_figures_of_one_episode():
    figures = episode_figures(episode("c", True, questions=2, sig=0.3, invalid=1))
    assert figures == pytest.approx({"correct": 1.0, "questions": 2.0, "answered": 0.0,
                                     "repeated": 0.0, "new_facts": 0.0, "fact_recall": 0.5,
                                     "sig": 0.3, "valid_turns": 0.75, "timeout": 0.0,
                                     "tests": 0.0, "diagnosis_rouge": 0.0, "open_ended": 0.0})


def test_an_open_ended_episode_counts_tests_their_facts_and_its_rouge():
    from promed_agents.evaluation import judging, shown_metrics
    from promed_agents.trace import Verdict

    turns = [TurnRecord(index=0, role=Role.DOCTOR, text="question: Any fever?",
                        kind=TurnKind.QUESTION, sig=0.1),
             TurnRecord(index=1, role=Role.PATIENT, text="p", kind=TurnKind.REPLY,
                        disclosed_fact_ids=[2]),
             TurnRecord(index=2, role=Role.DOCTOR, text="test: Vital signs",
                        kind=TurnKind.TEST, sig=0.2),
             TurnRecord(index=3, role=Role.MEASUREMENT, text="m", kind=TurnKind.REPLY,
                        disclosed_fact_ids=[3, 4]),
             TurnRecord(index=4, role=Role.DOCTOR, text="diagnosis: Gout",
                        kind=TurnKind.ANSWER)]
    open_episode = EpisodeRecord(
        case_id="o", graph="g", doctor_spec="d", correct=True, final_answer=["Gout"],
        status=EpisodeStatus.COMPLETED, turns=turns, known_fact_ids=[0, 1], tests_ordered=1,
        diagnosis_rouge=0.8, verdict=Verdict(correct=True, score=0.8, judge="rouge:0.5"))
    figures = episode_figures(open_episode)
    assert figures["tests"] == 1.0 and figures["diagnosis_rouge"] == 0.8
    assert figures["questions"] == 1.0 and figures["answered"] == 1.0
    assert figures["new_facts"] == 3.0 and figures["sig"] == pytest.approx(0.3)
    assert figures["open_ended"] == 1.0 and figures["valid_turns"] == 1.0  # a test is valid
    closed = {"c": episode_figures(episode("c", True, questions=1))}
    assert "tests" not in shown_metrics(closed)
    assert shown_metrics(closed, {"o": figures})[-2:] == ("tests", "diagnosis_rouge")
    assert judging([open_episode]) == "rouge:0.5" and judging([episode("c", True)]) is None


def test_a_repeated_question_is_counted_and_acquires_nothing():
    # the second question asks the first one's content again; a patient that answers
    # it with a new fact does not make it count as acquiring
    one = episode("c", False, questions=3, disclosed=[[1], [2], [3]])
    turns = [t.model_copy(update={"text": "question: Any FEVER"}) if t.index == 2 else t
             for t in one.turns]
    figures = episode_figures(one.model_copy(update={"turns": turns}))
    assert figures["repeated"] == 1.0 and figures["new_facts"] == 2.0
    assert figures["answered"] == 2.0
    share = summarize(per_case([one.model_copy(update={"turns": turns}),
                                episode("d", True, questions=2)]))["repeated_share"]
    assert share.mean == pytest.approx(1 / 5)


def test_a_timeout_is_counted():
    ran_out = episode("c", False, questions=1).model_copy(
        update={"status": EpisodeStatus.TIMEOUT})
    assert episode_figures(ran_out)["timeout"] == 1.0
    failed = EpisodeRecord(case_id="c", graph="g", doctor_spec="d",
                           status=EpisodeStatus.FAILED, failure_reason="boom")
    assert set(episode_figures(failed).values()) == {0.0}


def test_a_question_is_answered_when_its_reply_discloses_a_fact_not_known_before():
    # known 0; replies: {0} (known), {1, 2} (new), {2} (now known), {3} (new)
    one = episode("c", False, questions=4, known=[0], disclosed=[[0], [1, 2], [2], [3]])
    figures = episode_figures(one)
    assert figures["answered"] == 2.0 and figures["new_facts"] == 3.0


def test_answerable_share_pools_questions_over_cases():
    """2 of 4 questions answered in case a, 0 of 1 in b, none asked in c: the share is
    2/5 (pooled), not the mean of per-case shares; a base with no answered question
    gives a paired difference of the same."""
    runs = {"a": episode("a", True, questions=4, disclosed=[[1], [], [2], []]),
            "b": episode("b", True, questions=1), "c": episode("c", True)}
    figures = per_case(runs.values())
    share = summarize(figures)["answerable"]
    assert share.mean == pytest.approx(0.4) and share.low <= 0.4 <= share.high
    silent = per_case([episode(c, True, questions=e.num_questions) for c, e in runs.items()])
    assert paired_difference(silent, figures)["answerable"].mean == pytest.approx(0.4)
    assert summarize(silent)["answerable"].mean == 0.0


def test_seeds_of_a_case_are_averaged_before_cases_are_counted():
    figures = per_case([episode("a", True), episode("a", False), episode("b", True)])
    assert figures["a"]["correct"] == 0.5 and figures["b"]["correct"] == 1.0
    accuracy = summarize(figures)["correct"]
    assert accuracy.mean == 0.75 and 0.5 <= accuracy.low <= accuracy.high <= 1.0


def test_intervals_cover_the_true_mean_95_times_in_100_and_narrow_with_more_cases():
    import random

    truth, covered, trials = 0.3, 0, 200
    rng = random.Random(7)
    for trial in range(trials):
        figures = {f"c{i}": {"correct": float(rng.random() < truth)} for i in range(40)}
        estimate = mean_estimate(figures, "correct", seed=trial)
        covered += estimate.low <= truth <= estimate.high
    assert 0.88 <= covered / trials <= 0.99  # a 50% or a 99.9% interval fails this
    few = per_case([episode(f"c{i}", i % 2 == 0) for i in range(10)])
    many = per_case([episode(f"c{i}", i % 2 == 0) for i in range(400)])
    a, b = summarize(few)["correct"], summarize(many)["correct"]
    assert b.high - b.low < (a.high - a.low) / 3


def test_differences_are_resampled_in_pairs():
    recalls = [i / 20 for i in range(20)]  # cases differ a lot; the runs by 0.1 on each
    base = per_case([episode(f"c{i}", True, recall=r) for i, r in enumerate(recalls)])
    other = per_case([episode(f"c{i}", True, recall=r + 0.1) for i, r in enumerate(recalls)])
    difference = paired_difference(base, other)["fact_recall"]
    # paired: every resample differs by 0.1; unpaired resampling would spread it +-0.25
    assert difference.low == pytest.approx(0.1) and difference.high == pytest.approx(0.1)


def test_a_relative_gain_over_resamples_without_base_successes_is_unbounded():
    reactive = per_case([episode(f"c{i}", i == 0) for i in range(20)])   # 1 success
    proactive = per_case([episode(f"c{i}", i < 3) for i in range(20)])   # 3 successes
    gain = relative_gain(reactive, proactive)
    assert gain.mean == pytest.approx(2.0)
    assert gain.undefined == pytest.approx((19 / 20) ** 20, abs=0.03)  # about 36%
    assert gain.high == float("inf") and "unbounded" in gain.text("+.1%")
    assert "of resamples undefined" in gain.text("+.1%")
    wide = per_case([episode(f"c{i}", i < 10) for i in range(20)])  # 10 successes
    assert relative_gain(wide, proactive).undefined == 0.0  # no resample lacks them all


def test_a_share_of_questions_is_undefined_for_a_doctor_that_asked_none():
    silent = per_case([episode(f"c{i}", True) for i in range(10)])
    asking = per_case([episode(f"c{i}", True, questions=2, disclosed=[[1]])
                       for i in range(10)])
    summary = summarize(silent)
    assert math.isnan(summary["answerable"].mean) and summary["answerable"].text() == "\u2014"
    assert math.isnan(summary["repeated_share"].mean)
    assert summarize(asking)["answerable"].mean == pytest.approx(0.5)
    assert math.isnan(paired_difference(silent, asking)["answerable"].mean)
    assert summary["questions"].mean == 0.0  # a plain mean is still defined


def test_paired_difference_and_relative_gain():
    reactive = per_case([episode(f"c{i}", i < 4) for i in range(20)])    # 0.20
    proactive = per_case([episode(f"c{i}", i < 6, questions=1) for i in range(20)])  # 0.30
    difference = paired_difference(reactive, proactive)
    assert difference["correct"].mean == pytest.approx(0.1)
    assert difference["questions"].mean == pytest.approx(1.0)
    assert difference["questions"].low == difference["questions"].high == pytest.approx(1.0)
    gain = relative_gain(reactive, proactive)
    assert gain.mean == pytest.approx(0.5) and gain.low <= 0.5 <= gain.high
    never = per_case([episode(f"c{i}", False) for i in range(20)])
    assert relative_gain(never, proactive) is None
    with pytest.raises(ValueError, match="no cases"):
        summarize({})


def test_failed_consultations_are_left_out_and_counted():
    failed = EpisodeRecord(case_id="c1", graph="g", doctor_spec="d",
                           status=EpisodeStatus.FAILED, failure_reason="ConnectionError: x")
    episodes = [episode("c0", True), failed, episode("c2", False)]
    assert set(per_case(episodes)) == {"c0", "c2"}  # a backend error is no wrong answer
    assert run_status(episodes) == ("incomplete", "1 of 3 consultations failed; the "
                                                  "first: ConnectionError: x")
    assert run_status([failed]) == ("failed", "1 of 1 consultations failed; the first: "
                                              "ConnectionError: x")
    assert run_status(episodes[:1]) == ("complete", None)
    assert run_status([])[0] == "failed"
