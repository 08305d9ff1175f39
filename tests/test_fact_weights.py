from __future__ import annotations

import math

import pytest

from promed_agents.sig.fact_weights import (
    information_state,
    shapley_information_gain,
    shapley_weights,
)


def test_softmax_weights_follow_the_reference_with_temperature():
    values = [1.0, 0.0, -1.0]
    weights = shapley_weights(values, temperature=2.0)
    expected = [math.exp(v / 2) for v in values]
    assert weights == pytest.approx([e / sum(expected) for e in expected])
    assert sum(weights) == pytest.approx(1.0)
    sharper = shapley_weights(values, temperature=1.0)
    assert sharper[0] > weights[0] and sharper[2] < weights[2]


def test_flat_values_give_uniform_weights_and_large_values_do_not_overflow():
    assert shapley_weights([0.3, 0.3, 0.3, 0.3]) == pytest.approx([0.25] * 4)
    assert shapley_weights([1000.0, 0.0]) == pytest.approx([1.0, 0.0])
    assert shapley_weights([]) == []


def test_positive_weights_ignore_harmful_facts():
    assert shapley_weights([2.0, -1.0, 1.0], method="positive") == \
        pytest.approx([2 / 3, 0.0, 1 / 3])
    assert shapley_weights([-2.0, -1.0], method="positive") == pytest.approx([0.5, 0.5])


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="temperature must be positive"):
        shapley_weights([1.0, 2.0], temperature=0)
    with pytest.raises(ValueError, match="unknown weight method 'rank'"):
        shapley_weights([1.0, 2.0], method="rank")


def test_sig_counts_only_newly_acquired_facts():
    weights = [0.1, 0.2, 0.3, 0.4]
    new, gain = shapley_information_gain(weights, acquired=[0, 1], disclosed=[1, 2, 2])
    assert new == [2] and gain == pytest.approx(0.3)
    assert shapley_information_gain(weights, [0, 1, 2], [0, 1]) == ([], 0.0)
    # SIG is the increase of the information state
    before, after = information_state(weights, [0, 1]), information_state(weights, [0, 1, 2])
    assert after - before == pytest.approx(gain)


@pytest.mark.parametrize("method", ["softmax", "positive"])
def test_values_that_are_not_finite_make_no_weights(method):
    with pytest.raises(ValueError, match="must be finite"):
        shapley_weights([0.5, float("nan"), 0.1], method=method)
