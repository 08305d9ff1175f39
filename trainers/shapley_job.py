"""Shapley values for many cases, stored: the first trainer step.

case -> consultation graph -> trace in SQL -> **Shapley** / SIG -> MCTS-SFT / GRPO

:func:`compute_shapley` estimates each case's fact values under a scorer
(:mod:`promed_agents.sig.answer_scorer`), turns them into weights and stores both, one
transaction per case. Cases already stored for the same scorer and method are skipped, so
an interrupted run resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from promed_agents.case import Case
from promed_agents.sig.answer_scorer import AnswerScorer
from promed_agents.sig.fact_weights import WeightMethod, shapley_weights
from promed_agents.sig.kernel_shapley import KernelConfig, kernel_shapley
from promed_agents.sig.shapley import (
    PermutationConfig,
    ShapleyEstimate,
    exact_shapley,
    permutation_shapley,
)
from promed_agents.storage import TraceStore

ShapleyMethod = Literal["kernel", "exact", "permutation", "auto"]
STORED_METHODS = ("kernel", "exact", "permutation", "permutation-antithetic")


@dataclass(frozen=True)
class ShapleyConfig:
    """How values are estimated and weighted."""

    method: ShapleyMethod = "kernel"
    """kernel (stratified paired KernelSHAP: the least time for a given error, measured in
    BENCHMARKS.md), exact, permutation (the reference's estimator), or auto: exact up to
    ``max_exact_facts`` facts, kernel above."""
    max_exact_facts: int = 10
    kernel: KernelConfig = field(default_factory=KernelConfig)
    permutations: PermutationConfig = field(default_factory=PermutationConfig)
    temperature: float = 2.0
    weight_method: WeightMethod = "softmax"


def estimate_case(case: Case, scorer: AnswerScorer, config: ShapleyConfig) -> ShapleyEstimate:
    """The Shapley values of ``case``'s facts under ``scorer``."""
    n = len(case.facts)
    value = scorer.value_function(case) if n else (lambda coalitions: [0.0] * len(coalitions))
    use_exact = config.method == "exact" or (config.method == "auto"
                                             and n <= config.max_exact_facts)
    if use_exact:
        return exact_shapley(n, value, max(config.max_exact_facts, n)
                             if config.method == "exact" else config.max_exact_facts)
    if config.method == "permutation":
        return permutation_shapley(n, value, config.permutations)
    return kernel_shapley(n, value, config.kernel)


def method_name(n_facts: int, config: ShapleyConfig) -> str:
    """The method :func:`estimate_case` uses for a case with ``n_facts`` facts."""
    if config.method == "exact" or (config.method == "auto" and n_facts <= config.max_exact_facts):
        return "exact"
    if config.method == "permutation":
        return "permutation-antithetic" if config.permutations.antithetic else "permutation"
    return "kernel"


@dataclass
class ShapleyReport:
    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def compute_shapley(store: TraceStore, cases: Iterable[Case], scorer: AnswerScorer,
                    config: ShapleyConfig | None = None,
                    on_case: Callable[[Case, ShapleyEstimate | None], None] | None = None,
                    ) -> ShapleyReport:
    """Estimate and store Shapley values for ``cases`` not yet stored under this scorer
    and method.

    Args:
        store: where the values and their fact weights are stored, per case and scorer.
        cases: the cases whose facts are valued.
        scorer: v(S), e.g. ``promed_agents.sig.resolve_scorer("local:smollm2")``.
        config: the estimator (kernel, exact, permutation or auto) and the weights'
            temperature.
        on_case: called after each case (with None for a skipped one).
    """
    config = config or ShapleyConfig()
    report = ShapleyReport()
    done = {m: store.shapley_case_ids(scorer.spec, m) for m in STORED_METHODS}
    for case in cases:
        if case.id in done[method_name(len(case.facts), config)]:
            report.skipped.append(case.id)
            if on_case:
                on_case(case, None)
            continue
        estimate = estimate_case(case, scorer, config)
        weights = shapley_weights(estimate.values, config.temperature, config.weight_method)
        store.save_shapley(case.id, scorer.spec, estimate, weights, config.temperature)
        report.computed.append(case.id)
        if on_case:
            on_case(case, estimate)
    return report


class ScorerWeights:
    """Fact weights computed on demand with a scorer, without the store.

    The reference recomputes Shapley values with the current policy at every rollout;
    this offers that: values are computed the first time a case is weighed and kept until
    :meth:`refresh` (a trainer calls it after each policy update; the scorer then sees the
    new weights). Off by default: :class:`~promed_agents.storage.StoredWeights` reads
    values computed once per case and scorer.
    """

    def __init__(self, scorer: AnswerScorer, config: ShapleyConfig | None = None):
        self.scorer = scorer
        self.config = config or ShapleyConfig()
        self._weights: dict[str, list[float]] = {}
        self.estimates = 0

    def refresh(self) -> None:
        self._weights.clear()

    def __call__(self, case: Case) -> list[float]:
        if case.id not in self._weights:
            estimate = estimate_case(case, self.scorer, self.config)
            self.estimates += 1
            self._weights[case.id] = shapley_weights(estimate.values, self.config.temperature,
                                                     self.config.weight_method)
        return self._weights[case.id]
