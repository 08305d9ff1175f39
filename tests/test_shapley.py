from __future__ import annotations

import math
import random

import pytest

from promed_agents.sig.shapley import (
    CoalitionCache,
    PermutationConfig,
    ShapleyError,
    exact_shapley,
    permutation_shapley,
)


def batched(v):
    """A batch value function from a per-coalition one, recording each batch."""
    calls = []

    def value(coalitions):
        calls.append(list(coalitions))
        return [v(c) for c in coalitions]

    value.calls = calls
    return value


def test_additive_game_gives_each_player_its_own_worth():
    worth = [0.5, -1.0, 2.0, 0.0, 3.5]
    estimate = exact_shapley(5, batched(lambda s: sum(worth[i] for i in s)))
    assert estimate.values == pytest.approx(worth)
    assert estimate.evaluations == 32


def test_symmetric_players_get_equal_values_and_the_null_player_nothing():
    # Players 0 and 1 are symmetric; player 3 never changes anything.
    def v(s):
        return 4.0 * (0 in s and 1 in s) + 1.0 * (2 in s) + (0 in s) + (1 in s)

    values = exact_shapley(4, batched(v)).values
    assert values[0] == pytest.approx(values[1]) and values[0] == pytest.approx(3.0)
    assert values[2] == pytest.approx(1.0) and values[3] == pytest.approx(0.0)


def test_efficiency_values_sum_to_the_grand_coalition_gain():
    rng = random.Random(1)
    table = {}

    def v(s):  # an arbitrary game
        return table.setdefault(s, rng.uniform(-3, 3))

    estimate = exact_shapley(6, batched(v))
    assert sum(estimate.values) == pytest.approx(v(frozenset(range(6))) - v(frozenset()))
    assert estimate.efficiency_gap == pytest.approx(0.0, abs=1e-12)


def test_exact_refuses_more_players_than_its_bound():
    with pytest.raises(ShapleyError, match="2\\^11 coalitions.*bound of 10"):
        exact_shapley(11, batched(len))
    assert len(exact_shapley(11, batched(len), max_players=11).values) == 11


def random_game(n, seed):
    """Interacting facts: weights plus pairwise synergies, saturating like a logprob."""
    rng = random.Random(seed)
    base = [rng.uniform(-0.5, 2.0) for _ in range(n)]
    pairs = {(i, j): rng.uniform(-1, 1) for i in range(n) for j in range(i + 1, n)}

    def v(s):
        raw = sum(base[i] for i in s) + sum(w for (i, j), w in pairs.items()
                                            if i in s and j in s)
        return -math.log1p(math.exp(-raw))
    return v


@pytest.mark.parametrize("antithetic", [False, True])
def test_permutation_estimate_is_close_to_exact_on_eight_facts(antithetic):
    v = random_game(8, seed=3)
    exact = exact_shapley(8, batched(v)).values
    settings = PermutationConfig(max_permutations=400, min_permutations=400,
                                   antithetic=antithetic, truncation=None, seed=5)
    estimate = permutation_shapley(8, batched(v), settings)
    assert estimate.permutations == 400
    errors = [abs(a - b) for a, b in zip(estimate.values, exact, strict=True)]
    assert max(errors) < 0.05
    # the reported standard errors describe the actual error
    assert all(e < 4 * se + 1e-6 for e, se in zip(errors, estimate.std_errors, strict=True))
    assert estimate.efficiency_gap == pytest.approx(0.0, abs=1e-9)  # holds per permutation


def test_the_reference_stopping_rule_stops_early_on_an_additive_game():
    estimate = permutation_shapley(6, batched(lambda s: float(len(s))),
                                   PermutationConfig(round_size=1, truncation=None))
    assert estimate.permutations == 3  # estimates stop changing at once: the minimum
    assert estimate.values == pytest.approx([1.0] * 6)
    assert estimate.std_errors == pytest.approx([0.0] * 6)


def test_the_budget_caps_permutations_when_estimates_keep_moving():
    v = random_game(7, seed=11)
    estimate = permutation_shapley(7, batched(v), PermutationConfig(
        max_permutations=20, tolerance=1e-9, round_size=6, truncation=None))
    assert estimate.permutations == 20


def test_truncation_skips_coalitions_once_the_value_is_reached():
    # Only fact 0 matters: after it, every coalition is within 1e-2 of v(all).
    value = batched(lambda s: 1.0 if 0 in s else 0.0)
    settings = PermutationConfig(max_permutations=10, min_permutations=10, round_size=10)
    estimate = permutation_shapley(8, value, settings)
    assert estimate.values == pytest.approx([1.0] + [0.0] * 7)
    untruncated = permutation_shapley(8, batched(lambda s: 1.0 if 0 in s else 0.0),
                                      PermutationConfig(max_permutations=10,
                                                          min_permutations=10,
                                                          round_size=10, truncation=None))
    assert estimate.evaluations < untruncated.evaluations


def test_each_coalition_is_evaluated_once_and_rounds_are_batched_by_size():
    value = batched(lambda s: float(sum(s)))
    cache = CoalitionCache(value)
    settings = PermutationConfig(max_permutations=20, min_permutations=20, round_size=10,
                                   truncation=None)
    permutation_shapley(5, cache, settings)
    seen = [c for call in value.calls for c in call]
    assert len(seen) == len(set(seen)) == cache.evaluations
    # first the empty and full coalitions, then per round one batch per coalition size
    assert len(value.calls) <= 1 + 2 * 4 and max(len(call) for call in value.calls) > 1


def test_antithetic_rounds_pair_each_permutation_with_its_reverse():
    value = batched(lambda s: float(len(s)))
    permutation_shapley(4, value, PermutationConfig(
        max_permutations=2, min_permutations=2, antithetic=True, truncation=None))
    singletons = [next(iter(c)) for call in value.calls for c in call if len(c) == 1]
    triples = [c for call in value.calls for c in call if len(c) == 3]
    # a permutation and its reverse: the first player of one is the last of the other
    assert len(singletons) == 2 and all(s not in t for s, t in zip(singletons, triples[::-1],
                                                                   strict=False))


def test_a_value_function_returning_the_wrong_count_is_an_error():
    with pytest.raises(ShapleyError, match="returned 1 values for 4 coalitions"):
        exact_shapley(2, lambda coalitions: [0.0])


def test_bad_settings_are_rejected():
    with pytest.raises(ShapleyError, match="min_permutations"):
        PermutationConfig(max_permutations=2, min_permutations=3)


def test_antithetic_standard_errors_are_calibrated():
    """Over many runs, (estimate - exact) / std_error spreads like a standard normal: a
    pair's mean is the sample (a permutation and its reverse are not independent)."""
    v = random_game(6, seed=7)
    exact = exact_shapley(6, batched(v)).values
    z = []
    for seed in range(150):
        estimate = permutation_shapley(6, batched(v), PermutationConfig(
            max_permutations=60, min_permutations=60, antithetic=True, truncation=None,
            seed=seed))
        assert estimate.permutations == 60
        z += [(a - b) / se for a, b, se in zip(estimate.values, exact, estimate.std_errors,
                                               strict=True)]
    spread = (sum(x * x for x in z) / len(z)) ** 0.5
    assert 0.85 < spread < 1.2, spread


def test_antithetic_permutations_are_never_left_unpaired():
    value = batched(lambda s: float(len(s)))
    estimate = permutation_shapley(4, value, PermutationConfig(
        max_permutations=3, min_permutations=3, antithetic=True, truncation=None))
    assert estimate.permutations == 4  # two whole pairs, not a pair and a half


@pytest.mark.parametrize("bad", [float("-inf"), float("nan"), float("inf")])
def test_a_value_that_is_not_finite_is_refused_where_values_are_estimated(bad):
    def value(coalitions):  # a scorer whose log-probability of the answer is -inf alone
        return [bad if len(c) == 1 else float(len(c)) for c in coalitions]

    with pytest.raises(ShapleyError, match="returned .* for the coalition of facts"):
        exact_shapley(3, value)
    with pytest.raises(ShapleyError, match="not finite"):
        from promed_agents.sig.shapley import ShapleyEstimate

        ShapleyEstimate(values=[0.1, bad], method="exact")
