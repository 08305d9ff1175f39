from __future__ import annotations

import pytest

from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.sig.shapley import PermutationConfig
from promed_agents.storage import TraceStore
from promed_agents.trainers.shapley_job import ShapleyConfig, compute_shapley, method_name


class AdditiveScorer:
    """v(S) = sum of the lengths of the facts in S: Shapley value = own length."""

    spec = "test:additive"

    def __init__(self):
        self.cases = []

    def value_function(self, case):
        self.cases.append(case.id)
        return lambda coalitions: [float(sum(len(case.facts[i]) for i in c))
                                   for c in coalitions]


@pytest.fixture
def store(sqlite_url):
    with TraceStore(sqlite_url) as opened:
        opened.import_cases(load_cases(bundled_sample_path())[:6])
        yield opened


def test_values_are_stored_and_a_rerun_skips_done_cases(store):
    cases = store.list_cases()
    scorer = AdditiveScorer()
    seen = []
    report = compute_shapley(store, cases[:4], scorer, ShapleyConfig(max_exact_facts=8),
                             on_case=lambda case, estimate: seen.append(estimate is None))
    assert report.computed == [c.id for c in cases[:4]] and seen == [False] * 4
    for case in cases[:4]:
        record = store.get_shapley(case.id, scorer.spec)
        assert record.values == pytest.approx([float(len(f)) for f in case.facts])
        assert record.method == method_name(len(case.facts), ShapleyConfig(max_exact_facts=8))
    again = compute_shapley(store, cases, scorer, ShapleyConfig(max_exact_facts=8))
    assert again.skipped == [c.id for c in cases[:4]]
    assert again.computed == [c.id for c in cases[4:]]
    assert scorer.cases.count(cases[0].id) == 1  # not scored twice


def test_auto_uses_exact_up_to_the_bound_then_kernel(store):
    case = max(store.list_cases(), key=lambda c: len(c.facts))
    n = len(case.facts)
    config = ShapleyConfig(method="auto", max_exact_facts=n - 1)
    assert method_name(n, config) == "kernel" and method_name(n - 1, config) == "exact"
    compute_shapley(store, [case], AdditiveScorer(), config)
    record = store.get_shapley(case.id, "test:additive")
    from promed_agents.sig.kernel_shapley import default_budget

    assert record.method == "kernel" and record.samples == default_budget(n)
    # An additive game: KernelSHAP's regression is exact, and so is every resample.
    assert record.values == pytest.approx([float(len(f)) for f in case.facts])
    assert record.std_errors == pytest.approx([0.0] * n, abs=1e-9)


def test_permutation_method_uses_the_permutation_settings(store):
    case = max(store.list_cases(), key=lambda c: len(c.facts))
    config = ShapleyConfig(method="permutation", permutations=PermutationConfig(
        max_permutations=5, min_permutations=5))
    assert method_name(len(case.facts), config) == "permutation"
    compute_shapley(store, [case], AdditiveScorer(), config)
    record = store.get_shapley(case.id, "test:additive", "permutation")
    assert record.samples == 5
    assert record.values == pytest.approx([float(len(f)) for f in case.facts])


def test_scorer_weights_compute_once_until_refreshed(store):
    from promed_agents.sig.fact_weights import shapley_weights
    from promed_agents.trainers.shapley_job import ScorerWeights

    case = store.list_cases()[0]
    scorer = AdditiveScorer()
    weights = ScorerWeights(scorer, ShapleyConfig(temperature=1.0))
    expected = shapley_weights([float(len(f)) for f in case.facts], 1.0)
    assert weights(case) == pytest.approx(expected) and weights(case) == weights(case)
    assert weights.estimates == 1
    weights.refresh()
    weights(case)
    assert weights.estimates == 2 and scorer.cases == [case.id, case.id]
