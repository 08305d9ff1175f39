"""Shapley values by their definition, for tests: independent of the estimators' code."""

from __future__ import annotations

from collections.abc import Callable
from itertools import permutations


def shapley_by_all_orders(n: int, v: Callable[[frozenset[int]], float]) -> list[float]:
    """Each player's marginal contribution averaged over all n! orders."""
    orders = list(permutations(range(n)))
    values = [0.0] * n
    for order in orders:
        for k, player in enumerate(order):
            values[player] += v(frozenset(order[:k + 1])) - v(frozenset(order[:k]))
    return [x / len(orders) for x in values]
