from __future__ import annotations

import pytest

from promed_agents.agents.evaluator import Evaluator, uniform_weights
from promed_agents.case import Case

CASE = Case(id="t", source="t", question="Q?", options={"A": "a", "B": "b", "C": "c"},
            answer=["A", "B"], facts=["f0", "f1", "f2", "f3"], context=["c"])


def test_uniform_weights_sum_to_one():
    assert uniform_weights(CASE) == [0.25] * 4
    empty = CASE.model_copy(update={"facts": [], "context": []})
    assert uniform_weights(empty) == []


def test_gain_counts_only_newly_acquired_facts():
    score = Evaluator().score_reply(CASE, acquired=[0, 1], disclosed=[1, 2, 3])
    assert score.new_fact_ids == [2, 3] and score.gain == pytest.approx(0.5)
    weighted = Evaluator(weights=lambda case: [0.7, 0.1, 0.1, 0.1])
    assert weighted.score_reply(CASE, [], [0]).gain == pytest.approx(0.7)


def test_final_score_needs_every_letter():
    evaluator = Evaluator()
    assert evaluator.score_final(CASE, ["B", "A"], [1.0, 0.5], 1, [0, 1]).correct
    partial = evaluator.score_final(CASE, ["A"], [1.0], 0, [0])
    assert not partial.correct and partial.fact_recall == 0.25
    none = evaluator.score_final(CASE, None, [], 3, [0, 1, 2, 3])
    assert not none.correct and none.format_score == 0.0 and none.fact_recall == 1.0
    assert evaluator.score_final(CASE, ["A", "B"], [1.0, 0.5], 1, []).format_score == 0.75
