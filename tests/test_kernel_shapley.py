from __future__ import annotations

import math
import random
import statistics
from itertools import combinations

import pytest

from promed_agents.sig.kernel_shapley import KernelConfig, kernel_shapley
from promed_agents.sig.shapley import (
    CoalitionCache,
    PermutationConfig,
    ShapleyError,
    exact_shapley,
    permutation_shapley,
)


def game(n: int, seed: int, order: int = 3):
    """A random game with interactions among up to ``order`` players, recording batches."""
    rng = random.Random(seed)
    terms = [(frozenset(c), rng.gauss(0, 1.0 / o ** 2))
             for o in range(1, order + 1) for c in combinations(range(n), o)]
    calls: list[list[frozenset[int]]] = []

    def value(coalitions):
        calls.append(list(coalitions))
        return [sum(w for t, w in terms if t <= c) for c in coalitions]

    value.calls = calls
    return value


def error(values, exact) -> float:
    return sum(abs(a - b) for a, b in zip(values, exact, strict=True)) / len(exact)


@pytest.mark.parametrize("n", range(1, 8))
def test_a_budget_of_all_coalitions_gives_the_exact_values(n):
    exact = exact_shapley(n, game(n, n)).values
    estimate = kernel_shapley(n, game(n, n), KernelConfig(max_evaluations=2 ** n))
    assert estimate.values == pytest.approx(exact, abs=1e-9)
    assert estimate.evaluations == 2 ** n and estimate.std_errors == [0.0] * n


def test_the_first_round_is_exact_for_pairwise_games_and_only_for_them():
    pairwise, triple = game(9, 1, order=2), game(9, 1, order=3)
    first = KernelConfig(max_evaluations=2)
    estimate = kernel_shapley(9, pairwise, first)
    assert estimate.evaluations == 20  # v(empty), v(all), the 9 singletons and 9 complements
    assert estimate.values == pytest.approx(exact_shapley(9, pairwise).values, abs=1e-9)
    assert error(kernel_shapley(9, triple, first).values, exact_shapley(9, triple).values) > 1e-3
    # No stratum was sampled: the sampling error is unknown, not zero.
    assert all(math.isnan(e) for e in estimate.std_errors)


def test_efficiency_holds_after_every_round_and_the_budget_is_kept():
    estimates = []
    cache = CoalitionCache(game(10, 3))
    kernel_shapley(10, cache, KernelConfig(max_evaluations=80, round_size=10),
                   on_round=estimates.append)
    assert len(estimates) == 1 + math.ceil((80 - 22) / 10)
    for estimate in estimates:
        assert estimate.efficiency_gap == pytest.approx(0.0, abs=1e-9)
    assert [e.evaluations for e in estimates] == [22, 32, 42, 52, 62, 72, 80]
    assert cache.evaluations == 80


def test_each_round_is_one_batch_of_whole_pairs_never_repeating_a_coalition():
    value = game(10, 4)
    kernel_shapley(10, value, KernelConfig(max_evaluations=100, round_size=16))
    rounds = value.calls[1:]  # after v(empty) and v(all)
    assert [len(batch) for batch in rounds] == [20, 16, 16, 16, 16, 14]
    seen = [c for batch in value.calls for c in batch]
    assert len(seen) == len(set(seen))
    everyone = frozenset(range(10))
    for batch in rounds:
        assert {everyone - c for c in batch} == set(batch)


def test_fewer_coalitions_than_permutation_sampling_for_the_same_error():
    kernel_errors, permutation_errors, permutation_evaluations = [], [], []
    for seed in range(8):
        exact = exact_shapley(10, game(10, 100 + seed)).values
        estimate = kernel_shapley(10, game(10, 100 + seed),
                                  KernelConfig(max_evaluations=64, seed=seed))
        kernel_errors.append(error(estimate.values, exact))
        cache = CoalitionCache(game(10, 100 + seed))
        permuted = permutation_shapley(10, cache, PermutationConfig(
            max_permutations=20, min_permutations=20, truncation=None, seed=seed))
        permutation_errors.append(error(permuted.values, exact))
        permutation_evaluations.append(cache.evaluations)
    # Permutations use more than twice the coalitions and still err more.
    assert statistics.mean(permutation_evaluations) > 2 * 64
    assert statistics.mean(kernel_errors) < statistics.mean(permutation_errors)


@pytest.mark.parametrize("n, budget", [(7, 64), (9, 150)])
@pytest.mark.parametrize("allocation", ["kernel", "leverage"])
def test_standard_errors_are_calibrated(allocation, n, budget):
    """Reported against actual spread over 40 seeds; at 7 facts most of each stratum is
    sampled, where a bootstrap that ignores sampling without replacement reports 1.5x."""
    exact = exact_shapley(n, game(n, 7)).values
    runs = [kernel_shapley(n, game(n, 7), KernelConfig(max_evaluations=budget, seed=seed,
                                                       allocation=allocation))
            for seed in range(40)]
    ratios = [statistics.mean(r.std_errors[i] for r in runs)
              / statistics.stdev(r.values[i] for r in runs) for i in range(n)]
    assert 0.75 < statistics.median(ratios) < 1.15, ratios  # without the correction: 1.1-1.3
    assert all(0.6 < ratio < 1.3 for ratio in ratios), ratios  # and up to 1.45
    # Unbiased enough: the mean over runs is closer to exact than a single run.
    mean_values = [statistics.mean(r.values[i] for r in runs) for i in range(n)]
    assert error(mean_values, exact) < statistics.mean(error(r.values, exact) for r in runs) / 2


def test_an_error_is_never_zero_unless_exact_and_unknown_while_a_stratum_has_one_pair():
    for n in (22, 30):  # 64 coalitions: one pair, or none, in each sampled stratum
        thin = kernel_shapley(n, game(n, 3, order=2), KernelConfig(max_evaluations=64))
        assert all(math.isnan(e) for e in thin.std_errors)
    exact = kernel_shapley(6, game(6, 3), KernelConfig(max_evaluations=64))
    assert exact.std_errors == [0.0] * 6  # 2^6 = 64: every stratum enumerated


def test_the_default_budget_gives_every_stratum_two_pairs():
    from promed_agents.sig.kernel_shapley import default_budget

    assert [default_budget(n) for n in (7, 16, 22, 30)] == [64, 64, 86, 118]
    estimate = kernel_shapley(30, game(30, 4, order=2))
    assert estimate.evaluations == 118
    assert not any(math.isnan(e) for e in estimate.std_errors)
    assert min(estimate.std_errors) > 0


def test_the_tolerance_waits_for_a_known_error():
    """With rounds of one pair, a stratum holding one pair once reported 0 and stopped
    the run; an unknown error does not meet the tolerance."""
    estimate = kernel_shapley(20, game(20, 2, order=2),
                              KernelConfig(max_evaluations=400, tolerance=1.0, round_size=2))
    assert estimate.evaluations >= 2 * 20 + 2 + 4 * (20 // 2 - 1)
    assert not any(math.isnan(e) for e in estimate.std_errors)


def test_the_tolerance_stops_once_the_standard_errors_are_small():
    loose = kernel_shapley(10, game(10, 5), KernelConfig(max_evaluations=500, tolerance=0.05))
    tight = kernel_shapley(10, game(10, 5), KernelConfig(max_evaluations=500, tolerance=1e-4))
    assert loose.evaluations < tight.evaluations <= 500
    assert sum(loose.std_errors) / 10 < 0.05


def test_many_facts_are_sampled_without_enumerating_the_strata():
    estimate = kernel_shapley(30, game(30, 6, order=1), KernelConfig(max_evaluations=120))
    assert estimate.evaluations == 120
    # An additive game: every stratum's regression is exact, so is the estimate.
    assert estimate.values == pytest.approx(exact_additive(30, 6), abs=1e-9)


def exact_additive(n, seed):
    rng = random.Random(seed)
    return [rng.gauss(0, 1.0) for _ in range(n)]


def test_bad_settings_are_rejected():
    for bad in (dict(max_evaluations=1), dict(round_size=1), dict(bootstrap=1),
                dict(allocation="uniform")):
        with pytest.raises(ShapleyError):
            KernelConfig(**bad)
