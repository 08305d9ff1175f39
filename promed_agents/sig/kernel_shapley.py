"""Shapley values by stratified, paired KernelSHAP: fewer coalitions for the same error.

case -> consultation graph -> trace in SQL -> **Shapley** / SIG -> MCTS-SFT / GRPO

Shapley values are the solution of a weighted least-squares problem over all coalitions
(Lundberg & Lee 2017; Charnes et al. 1988): minimise the sum over S of
w(S) (v(S) - v(empty) - sum_{i in S} phi_i)^2, with w(S) = (n-1) / (C(n,|S|) |S| (n-|S|)),
subject to sum(phi) = v(all) - v(empty). :func:`kernel_shapley` estimates that problem's
matrices from a sample of coalitions and solves it with the constraint exactly, so
efficiency holds for every estimate. The sample is designed for few evaluations:

- *paired*: every sampled coalition S comes with its complement (Covert & Lee 2021),
  which cancels the estimate's largest error terms;
- *stratified by size*: the pair strata {|S| = k or n-k} are estimated separately, each
  from a sample drawn without replacement, scaled to its size, so a stratum sampled in
  full is exact. The stratum {1, n-1} (2n coalitions, the largest kernel weight) is
  always enumerated first; that estimate is already exact for games whose interactions
  involve at most two facts;
- *allocated* over the other strata in proportion to their kernel weight (``"kernel"``)
  or equally per coalition size (``"leverage"``, the leverage-score design of Musco &
  Witter 2025); each stratum gets a pair before any gets a second, and a second before
  any gets a third.

With a budget of 2^n coalitions every stratum is enumerated and the result is the exact
Shapley value. The default budget, 64 coalitions, grows with the number of facts to what
gives every stratum two pairs (:func:`default_budget`: 118 at 30 facts), so no stratum
goes unweighted and each one's spread can be measured.

Standard errors come from a rescaled bootstrap within each partly sampled stratum (Rao
& Wu 1988: m - 1 of its m pairs drawn with replacement, deviations scaled by the square
root of 1 - m/N, so the finite population is accounted for: pairs are drawn without
replacement); enumerated strata add no sampling error. They are NaN (unknown) while any
stratum is unsampled (its weight is missing: a bias no error shows) or holds a single
pair (no spread to measure), and 0 only once every stratum is enumerated (exact). Rounds
of ``round_size`` coalitions go to the value function as one batch, through the same
:class:`CoalitionCache` as the other estimators.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

import numpy as np

from promed_agents.errors import ShapleyError
from promed_agents.sig.shapley import (
    Coalition,
    CoalitionCache,
    ShapleyEstimate,
    ValueFunction,
)

Allocation = Literal["kernel", "leverage"]
ENUMERABLE_PAIRS = 20_000
"""Strata with at most this many pairs are drawn from a shuffled list of all of them."""


@dataclass(frozen=True)
class KernelConfig:
    """Budget, stopping rule and sampling design of :func:`kernel_shapley`."""

    max_evaluations: int | None = None
    """At most this many distinct coalitions (v(empty) and v(all) included; the first
    round, 2n + 2 coalitions, always runs). 2^n or more gives exact values. None:
    :func:`default_budget` (64, or two pairs a stratum where that is more)."""
    tolerance: float | None = None
    """Stop once the mean per-fact standard error is below this (None: use the budget)."""
    round_size: int = 16
    """Coalitions per round after the first (pairs stay whole): one batch for the model."""
    allocation: Allocation = "kernel"
    bootstrap: int = 100
    """Bootstrap resamples for the standard errors."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_evaluations is not None and self.max_evaluations < 2:
            raise ShapleyError(f"max_evaluations must be at least 2, got {self.max_evaluations}")
        if self.round_size < 2:
            raise ShapleyError(f"round_size must be at least 2 (a pair), got {self.round_size}")
        if self.allocation not in ("kernel", "leverage"):
            raise ShapleyError(f"unknown allocation {self.allocation!r}; use kernel or leverage")
        if self.bootstrap < 2:
            raise ShapleyError(f"bootstrap must be at least 2, got {self.bootstrap}")


DEFAULT_BUDGET = 64
"""The default budget's floor, in coalitions."""


def default_budget(n: int) -> int:
    """The default budget for ``n`` facts: 64 coalitions, or, where that is more, the
    first round (2n + 2) and two pairs in each other stratum (4 (n // 2 - 1)), so that
    every stratum is weighed and its spread measured (118 at 30 facts, 86 at 22)."""
    return max(DEFAULT_BUDGET, 2 * n + 2 + 4 * max(n // 2 - 1, 0))


class _Stratum:
    """The coalition pairs (S, complement) with min(|S|, n-|S|) = k, sampled without
    replacement."""

    def __init__(self, n: int, k: int, rng: random.Random):
        self.n, self.k, self.rng = n, k, rng
        self.population = math.comb(n, k) // (2 if 2 * k == n else 1)
        self.pairs: list[tuple[Coalition, Coalition]] = []
        self._seen: set[Coalition] = set()
        self._order: list[Coalition] | None = None

    @property
    def exhausted(self) -> bool:
        return len(self.pairs) >= self.population

    def _key(self, s: Coalition) -> Coalition:
        # For k = n/2 a pair is unordered: keyed by the member holding player 0.
        return s if 2 * self.k != self.n or 0 in s else frozenset(range(self.n)) - s

    def draw(self) -> tuple[Coalition, Coalition]:
        if self.population <= ENUMERABLE_PAIRS:
            if self._order is None:
                keys = {self._key(frozenset(c)) for c in combinations(range(self.n), self.k)}
                self._order = sorted(keys, key=sorted)
                self.rng.shuffle(self._order)
            s = self._order[len(self.pairs)]
        else:
            while (s := self._key(frozenset(self.rng.sample(range(self.n), self.k)))) \
                    in self._seen:
                pass
        self._seen.add(s)
        pair = (s, frozenset(range(self.n)) - s)
        self.pairs.append(pair)
        return pair


def _kernel_weight(n: int, size: int) -> float:
    return (n - 1) / (math.comb(n, size) * size * (n - size))


def _pair_terms(n: int, pairs: list[tuple[Coalition, Coalition]],
                values: dict[Coalition, float], v_empty: float) -> tuple[np.ndarray, np.ndarray]:
    """Per pair, w (z z^T + z' z'^T) and w (z y + z' y'): arrays (m, n, n) and (m, n)."""
    a = np.zeros((len(pairs), n, n))
    b = np.zeros((len(pairs), n))
    for row, pair in enumerate(pairs):
        for s in pair:
            z = np.zeros(n)
            z[list(s)] = 1.0
            w = _kernel_weight(n, len(s))
            a[row] += w * np.outer(z, z)
            b[row] += w * z * (values[s] - v_empty)
    return a, b


def _solve(a: np.ndarray, b: np.ndarray, total: float) -> np.ndarray:
    """argmin phi^T A phi - 2 b^T phi subject to sum(phi) = total."""
    ones = np.ones(len(b))
    a_inv_b, a_inv_1 = np.linalg.solve(a, np.stack([b, ones], axis=1)).T
    return a_inv_b + a_inv_1 * (total - a_inv_b.sum()) / a_inv_1.sum()


def _allocate(strata: list[_Stratum], pairs: int, allocation: Allocation) -> list[_Stratum]:
    """Which strata the next ``pairs`` draws come from: unsampled strata first (by
    weight), then where the sample lags its share most."""
    n = strata[0].n
    share = {s.k: (2 - (2 * s.k == n)) * (_kernel_weight(n, s.k) * math.comb(n, s.k)
                                          if allocation == "kernel" else 1.0)
             for s in strata}
    counts = {s.k: len(s.pairs) for s in strata}
    chosen: list[_Stratum] = []
    for _ in range(pairs):
        open_ = [s for s in strata if counts[s.k] < s.population]
        if not open_:
            break
        total_share = sum(share[s.k] for s in open_)
        drawn = sum(counts[s.k] for s in open_) + 1
        pick = max(open_, key=lambda s: (counts[s.k] == 0, counts[s.k] == 1,
                                         share[s.k] / total_share * drawn - counts[s.k]))
        counts[pick.k] += 1
        chosen.append(pick)
    return chosen


def kernel_shapley(n: int, value: ValueFunction | CoalitionCache,
                   settings: KernelConfig | None = None,
                   on_round: Callable[[ShapleyEstimate], None] | None = None,
                   ) -> ShapleyEstimate:
    """Shapley values by stratified, paired KernelSHAP; see the module.

    ``on_round`` is called with the estimate after each round (the last call's estimate
    is the one returned)."""
    settings = settings or KernelConfig()
    budget = settings.max_evaluations if settings.max_evaluations is not None else \
        default_budget(n)
    cache = value if isinstance(value, CoalitionCache) else CoalitionCache(value)
    v_empty, v_full = cache([frozenset(), frozenset(range(n))])
    if n <= 1:
        estimate = ShapleyEstimate([v_full - v_empty] * n, "kernel", [0.0] * n, 0,
                                   cache.evaluations, v_empty, v_full)
        if on_round:
            on_round(estimate)
        return estimate
    rng = random.Random(settings.seed)
    first = _Stratum(n, 1, rng)
    strata = [_Stratum(n, k, rng) for k in range(2, n // 2 + 1)]
    known: dict[Coalition, float] = {frozenset(): v_empty, frozenset(range(n)): v_full}
    fixed_a, fixed_b = np.zeros((n, n)), np.zeros(n)
    sampled: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    boot_rng = np.random.default_rng(settings.seed)

    def evaluate(pairs: list[tuple[Coalition, Coalition]]) -> None:
        coalitions = [s for pair in pairs for s in pair]
        known.update(zip(coalitions, cache(coalitions), strict=True))

    def scale(stratum: _Stratum) -> float:
        return stratum.population / len(stratum.pairs)

    def estimate_now() -> ShapleyEstimate:
        a, b = fixed_a.copy(), fixed_b.copy()
        for stratum in strata:
            if stratum.pairs:
                terms_a, terms_b = sampled[stratum.k]
                a += scale(stratum) * terms_a.sum(0)
                b += scale(stratum) * terms_b.sum(0)
        values = _solve(a, b, v_full - v_empty)
        if all(s.exhausted for s in strata):
            errors = [0.0] * n
        elif any(not s.pairs or (len(s.pairs) == 1 and not s.exhausted) for s in strata):
            errors = [math.nan] * n  # a stratum unweighed, or one pair: error unknown
        else:
            replicates = []
            for _ in range(settings.bootstrap):
                a_r, b_r = fixed_a.copy(), fixed_b.copy()
                for stratum in strata:
                    terms_a, terms_b = sampled[stratum.k]
                    if stratum.exhausted:
                        a_r += terms_a.sum(0)
                        b_r += terms_b.sum(0)
                        continue
                    m = len(stratum.pairs)
                    rows = boot_rng.integers(0, m, m - 1)  # Rao-Wu: m - 1 of m
                    shrink = math.sqrt(1 - m / stratum.population)
                    mean_a, mean_b = terms_a.mean(0), terms_b.mean(0)
                    a_r += stratum.population * (
                        mean_a + shrink * (terms_a[rows].mean(0) - mean_a))
                    b_r += stratum.population * (
                        mean_b + shrink * (terms_b[rows].mean(0) - mean_b))
                replicates.append(_solve(a_r, b_r, v_full - v_empty))
            errors = np.std(np.array(replicates), axis=0, ddof=1).tolist()
        return ShapleyEstimate(values=values.tolist(), method="kernel", std_errors=errors,
                               evaluations=cache.evaluations, v_empty=v_empty, v_full=v_full)

    while not first.exhausted:
        first.draw()
    evaluate(first.pairs)
    fixed_a, fixed_b = (t.sum(0) for t in _pair_terms(n, first.pairs, known, v_empty))
    estimate = estimate_now()
    if on_round:
        on_round(estimate)
    while strata:
        mean_error = sum(estimate.std_errors or ()) / n  # NaN while unknown: go on
        if settings.tolerance is not None and mean_error < settings.tolerance:
            break
        room = (budget - cache.evaluations) // 2
        chosen = _allocate(strata, min(settings.round_size // 2, room), settings.allocation)
        if not chosen:
            break
        new = {stratum.k: [stratum.draw() for _ in range(chosen.count(stratum))]
               for stratum in dict.fromkeys(chosen)}
        evaluate([pair for pairs in new.values() for pair in pairs])
        for k, pairs in new.items():
            terms = _pair_terms(n, pairs, known, v_empty)
            if k in sampled:
                terms = tuple(np.concatenate([old, t]) for old, t in zip(sampled[k], terms,
                                                                          strict=True))
            sampled[k] = terms  # type: ignore[assignment]
        estimate = estimate_now()
        if on_round:
            on_round(estimate)
    return estimate
