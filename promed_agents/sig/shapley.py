"""Shapley values of a case's facts: exact enumeration and permutation sampling.

case -> consultation graph -> trace in SQL -> **Shapley** / SIG -> MCTS-SFT / GRPO

The game: players are the facts 0..n-1 of a case, and v(S) is a number for every coalition
S (for ProMed, the scorer's log-probability of the correct answer given the facts in S;
see :mod:`promed_agents.sig.answer_scorer`). The estimators here know nothing of models: they
call a :data:`ValueFunction` on *batches* of coalitions, through a :class:`CoalitionCache`
that evaluates each distinct coalition once.

- :func:`exact_shapley` enumerates all 2^n coalitions (n up to ``max_players``).
- :func:`permutation_shapley` is the reference's Monte Carlo estimator: marginal gains
  along random permutations, at least 3 and at most 50 permutations, stopping once the
  running estimates change by less than ``tolerance`` on average, and cutting a
  permutation short once its value is within ``truncation`` of v(all facts) (standard
  truncated Monte Carlo: the facts after the cut gain 0 in that permutation, so every
  permutation counts for every fact; the reference instead leaves the cut facts'
  running means untouched, so they average over fewer permutations). It evaluates
  a round of permutations level by level, so a round's coalitions of one size go to the
  model as one batch (the stopping rule is checked after each permutation, and the run
  ends with the round in which it is met); antithetic rounds pair each permutation with
  its reverse.

:mod:`promed_agents.sig.kernel_shapley` needs fewer coalitions for the same error.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations

from promed_agents.errors import ShapleyError

Coalition = frozenset[int]
ValueFunction = Callable[[Sequence[Coalition]], Sequence[float]]
"""v for a batch of coalitions, in order."""



class CoalitionCache:
    """A value function that evaluates each distinct coalition once."""

    def __init__(self, value: ValueFunction):
        self._value = value
        self._known: dict[Coalition, float] = {}
        self.calls = 0

    @property
    def evaluations(self) -> int:
        """Distinct coalitions evaluated so far."""
        return len(self._known)

    def __call__(self, coalitions: Sequence[Coalition]) -> list[float]:
        missing = list(dict.fromkeys(c for c in coalitions if c not in self._known))
        if missing:
            self.calls += 1
            values = list(self._value(missing))
            if len(values) != len(missing):
                raise ShapleyError(f"the value function returned {len(values)} values for "
                                   f"{len(missing)} coalitions; it must return one each")
            values = [float(v) for v in values]
            bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
            if bad is not None:
                raise ShapleyError(
                    f"the value function returned {values[bad]} for the coalition of facts "
                    f"{sorted(missing[bad])}; Shapley values need a finite value for every "
                    "coalition (a log-probability of -inf: clamp it, or score with "
                    "another model)")
            self._known.update(zip(missing, values, strict=True))
        return [self._known[c] for c in coalitions]


@dataclass(frozen=True)
class ShapleyEstimate:
    """Per-fact Shapley values, with what it took to get them."""

    values: list[float]
    method: str
    std_errors: list[float] | None = None
    permutations: int = 0
    evaluations: int = 0
    v_empty: float = 0.0
    v_full: float = 0.0

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in self.values):
            raise ShapleyError(f"{self.method} estimate with values that are not finite "
                               f"({self.values}); every coalition's value must be finite")

    @property
    def efficiency_gap(self) -> float:
        """sum(values) - (v(all) - v(empty)): 0 for exact values (efficiency)."""
        return sum(self.values) - (self.v_full - self.v_empty)


def exact_shapley(n: int, value: ValueFunction | CoalitionCache,
                  max_players: int = 10) -> ShapleyEstimate:
    """Shapley values by enumerating all 2^n coalitions (evaluated in one batch)."""
    if n > max_players:
        raise ShapleyError(f"exact Shapley values for {n} facts need 2^{n} coalitions, over "
                           f"the bound of {max_players} facts; use the permutation "
                           f"estimator or raise max_players")
    cache = value if isinstance(value, CoalitionCache) else CoalitionCache(value)
    coalitions = [frozenset(c) for size in range(n + 1) for c in combinations(range(n), size)]
    v = dict(zip(coalitions, cache(coalitions), strict=True))
    weight = [math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n)
              for s in range(n)]
    values = [0.0] * n
    for coalition, v_s in v.items():
        for player in range(n):
            if player not in coalition:
                values[player] += weight[len(coalition)] * (v[coalition | {player}] - v_s)
    return ShapleyEstimate(values=values, method="exact", evaluations=cache.evaluations,
                           v_empty=v[frozenset()], v_full=v[frozenset(range(n))])


@dataclass(frozen=True)
class PermutationConfig:
    """The reference's stopping rule, with our batching options."""

    max_permutations: int = 50
    min_permutations: int = 3
    tolerance: float = 1e-2
    truncation: float | None = 1e-2
    antithetic: bool = False
    round_size: int = 5
    """Permutations per round after the first (which has ``min_permutations``): a round's
    coalitions of one size are one batch, and the stopping rule ends the run at the end
    of a round. Larger rounds batch better (GPU); smaller ones waste fewer permutations."""
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.min_permutations <= self.max_permutations:
            raise ShapleyError(f"need 1 <= min_permutations <= max_permutations, got "
                               f"{self.min_permutations} and {self.max_permutations}")
        if self.round_size < 1:
            raise ShapleyError(f"round_size must be at least 1, got {self.round_size}")


def _round_permutations(n: int, count: int, settings: PermutationConfig,
                        rng: random.Random) -> list[list[int]]:
    """``count`` permutations; antithetic: ``count`` pairs, each followed by its reverse."""
    perms: list[list[int]] = []
    for _ in range(count):
        perm = rng.sample(range(n), n)
        perms += [perm, perm[::-1]] if settings.antithetic else [perm]
    return perms


def _marginals(perms: list[list[int]], n: int, cache: CoalitionCache, v_empty: float,
               v_full: float, truncation: float | None) -> list[list[float]]:
    """Per permutation, each player's marginal gain; the round's coalitions of one size
    are evaluated together. A permutation within ``truncation`` of v(all) stops there
    (the remaining players gain 0)."""
    gains = [[0.0] * n for _ in perms]
    previous = [v_empty] * len(perms)
    active = list(range(len(perms)))
    for size in range(1, n + 1):
        if truncation is not None:
            active = [p for p in active if abs(v_full - previous[p]) >= truncation]
        if not active:
            break
        coalitions = [frozenset(perms[p][:size]) for p in active]
        for p, v_s in zip(active, cache(coalitions), strict=True):
            gains[p][perms[p][size - 1]] = v_s - previous[p]
            previous[p] = v_s
    return gains


def permutation_shapley(n: int, value: ValueFunction | CoalitionCache,
                        settings: PermutationConfig | None = None,
                        on_round: Callable[[ShapleyEstimate], None] | None = None,
                        ) -> ShapleyEstimate:
    """Monte Carlo Shapley values with the reference's stopping rule; see the module.

    ``on_round`` is called with the estimate after each round (the last call's estimate
    is the one returned)."""
    settings = settings or PermutationConfig()
    cache = value if isinstance(value, CoalitionCache) else CoalitionCache(value)
    v_empty, v_full = cache([frozenset(), frozenset(range(n))])
    if n == 0:
        return ShapleyEstimate([], "permutation", [], 0, cache.evaluations, v_empty, v_full)
    method = "permutation-antithetic" if settings.antithetic else "permutation"
    rng = random.Random(settings.seed)
    # A sample is one permutation's marginals, or with antithetic permutations the mean
    # of a pair's (a permutation and its reverse are not independent draws, so the pair
    # is the unit of the standard error). Budgets count permutations; pairs stay whole.
    per_sample = 2 if settings.antithetic else 1
    samples: list[list[float]] = []
    means = [0.0] * n
    done = False
    while not done and per_sample * len(samples) < settings.max_permutations:
        wanted = min(settings.round_size if samples else settings.min_permutations,
                     settings.max_permutations - per_sample * len(samples))
        perms = _round_permutations(n, -(-wanted // per_sample), settings, rng)
        gains_list = _marginals(perms, n, cache, v_empty, v_full, settings.truncation)
        if settings.antithetic:
            gains_list = [[(a + b) / 2 for a, b in zip(first, second, strict=True)]
                          for first, second in zip(gains_list[::2], gains_list[1::2],
                                                   strict=True)]
        for gains in gains_list:
            samples.append(gains)
            m = len(samples)
            updated = [mean + (g - mean) / m for mean, g in zip(means, gains, strict=True)]
            change = sum(abs(a - b) for a, b in zip(updated, means, strict=True)) / n
            means = updated
            # The round's later permutations are already paid for: they are kept.
            done = done or (per_sample * m >= settings.min_permutations
                            and change < settings.tolerance)
        m = len(samples)
        errors = [math.sqrt(sum((s[i] - means[i]) ** 2 for s in samples) / (m - 1) / m)
                  if m > 1 else math.nan for i in range(n)]
        estimate = ShapleyEstimate(values=means, method=method, std_errors=errors,
                                   permutations=per_sample * m,
                                   evaluations=cache.evaluations, v_empty=v_empty,
                                   v_full=v_full)
        if on_round:
            on_round(estimate)
    return estimate
