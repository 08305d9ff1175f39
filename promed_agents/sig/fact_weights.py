"""Fact weights from Shapley values, and the Shapley Information Gain of a question.

case -> consultation graph -> trace in SQL -> Shapley / **SIG** -> MCTS-SFT / GRPO

A case's Shapley values (:mod:`promed_agents.sig.shapley`) become weights that sum to 1:

- ``softmax`` (the reference): w = softmax(phi / T), with T = 1.0 for MCTS and 2.0 for RL.
  Values with (almost) no spread give uniform weights.
- ``positive``: w proportional to max(phi, 0); facts that lower the answer's probability
  weigh nothing. Uniform when no value is positive.

The SIG of a question is the weight of the facts it newly acquired: facts known at the
start, or acquired by an earlier question, add nothing. The state after a turn is the
weight of everything acquired so far, and SIG is its increase.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Literal

WeightMethod = Literal["softmax", "positive"]
FLAT = 1e-9
"""Values closer together than this count as having no spread."""


def shapley_weights(values: Sequence[float], temperature: float = 1.0,
                    method: WeightMethod = "softmax") -> list[float]:
    """Normalised per-fact weights (summing to 1) from Shapley ``values``."""
    n = len(values)
    if n == 0:
        return []
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"Shapley values must be finite to weigh facts, got {list(values)}")
    if method == "softmax":
        if max(values) - min(values) < FLAT:
            return [1.0 / n] * n
        top = max(values)
        exps = [math.exp((v - top) / temperature) for v in values]
        total = sum(exps)
        return [e / total for e in exps]
    if method == "positive":
        positive = [max(v, 0.0) for v in values]
        total = sum(positive)
        return [p / total for p in positive] if total > FLAT else [1.0 / n] * n
    raise ValueError(f"unknown weight method {method!r}; use 'softmax' or 'positive'")


def information_state(weights: Sequence[float], acquired: Iterable[int]) -> float:
    """The weight of the facts acquired so far (each counted once)."""
    return float(sum(weights[i] for i in set(acquired)))


def shapley_information_gain(weights: Sequence[float], acquired: Iterable[int],
                             disclosed: Iterable[int]) -> tuple[list[int], float]:
    """The facts a reply newly acquired and their SIG, given those acquired before."""
    new = sorted(set(disclosed) - set(acquired))
    return new, float(sum(weights[i] for i in new))
