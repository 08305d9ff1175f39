from __future__ import annotations

import pytest

from promed_agents.agents.evaluator import Evaluator
from promed_agents.errors import NotFoundError
from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.sig.fact_weights import shapley_weights
from promed_agents.sig.shapley import ShapleyEstimate
from promed_agents.storage import StoredWeights, TraceStore


@pytest.fixture
def store(db_url):
    with TraceStore(db_url) as opened:
        opened.import_cases(load_cases(bundled_sample_path())[:3])
        yield opened


def estimate(n, method="exact", scale=1.0):
    values = [scale * (i - n / 2) for i in range(n)]
    errors = [0.1] * n if method != "exact" else None
    return ShapleyEstimate(values=values, method=method, std_errors=errors,
                           permutations=7 if errors else 0, evaluations=2 ** n)


def test_values_round_trip_and_a_resave_replaces_them(store):
    case = store.list_cases()[0]
    n = len(case.facts)
    first = estimate(n)
    store.save_shapley(case.id, "local:smollm2", first, shapley_weights(first.values, 2.0), 2.0)
    record = store.get_shapley(case.id, "local:smollm2")
    assert record.values == pytest.approx(first.values) and record.method == "exact"
    assert sum(record.weights) == pytest.approx(1.0) and record.std_errors == [None] * n
    assert record.samples == 2 ** n
    second = estimate(n, scale=3.0)
    store.save_shapley(case.id, "local:smollm2", second, [1.0 / n] * n, 1.0)
    record = store.get_shapley(case.id, "local:smollm2", "exact")
    assert record.values == pytest.approx(second.values) and record.temperature == 1.0
    assert store.get_shapley(case.id, "local:other") is None
    assert store.shapley_case_ids("local:smollm2") == {case.id}
    assert store.shapley_case_ids("local:smollm2", "permutation") == set()


def test_methods_are_kept_apart_and_the_latest_is_the_default(store):
    case = store.list_cases()[1]
    n = len(case.facts)
    store.save_shapley(case.id, "s", estimate(n), [1.0 / n] * n, 2.0)
    store.save_shapley(case.id, "s", estimate(n, "permutation", 2.0), [1.0 / n] * n, 2.0)
    assert store.get_shapley(case.id, "s").method == "permutation"
    assert store.get_shapley(case.id, "s").std_errors == [0.1] * n
    assert store.get_shapley(case.id, "s", "exact").values == pytest.approx(estimate(n).values)


def test_saving_is_all_or_nothing(store):
    case = store.list_cases()[0]
    n = len(case.facts)
    with pytest.raises(ValueError, match="weights for"):
        store.save_shapley(case.id, "s", estimate(n), [1.0] * (n - 1), 2.0)
    with pytest.raises(NotFoundError, match="'nope-1' is not in the store"):
        store.save_shapley("nope-1", "s", estimate(n), [1.0 / n] * n, 2.0)
    assert store.get_shapley(case.id, "s") is None


def test_stored_weights_turn_the_evaluator_gain_into_sig(store):
    with_values, without = store.list_cases()[:2]
    n = len(with_values.facts)
    values = estimate(n).values
    store.save_shapley(with_values.id, "s", estimate(n), shapley_weights(values), 1.0)
    weights = StoredWeights(store, "s", temperature=2.0)
    assert weights(with_values) == pytest.approx(shapley_weights(values, 2.0))
    assert weights(without) == pytest.approx([1 / len(without.facts)] * len(without.facts))
    evaluator = Evaluator(weights=weights)
    score = evaluator.score_reply(with_values, acquired=[0], disclosed=[0, n - 1])
    assert score.new_fact_ids == [n - 1]
    assert score.gain == pytest.approx(shapley_weights(values, 2.0)[n - 1])
    assert score.gain > 1 / n  # the last fact has the largest value


def test_sig_evaluator_weighs_by_stored_values_where_a_case_has_them(store):
    from promed_agents.errors import ShapleyError
    from promed_agents.storage import sig_evaluator

    cases = store.list_cases()
    assert sig_evaluator(store, "local:smollm2", cases).with_values == 0
    none = sig_evaluator(store, "local:smollm2", cases).evaluator
    assert none.name == Evaluator().name  # no values anywhere: the uniform evaluator
    first = cases[0]
    values = estimate(len(first.facts))
    store.save_shapley(first.id, "local:smollm2", values,
                       shapley_weights(values.values, 2.0), 2.0)
    made = sig_evaluator(store, "local:smollm2", cases)
    assert (made.with_values, made.cases) == (1, 3)
    assert made.evaluator.name == "sig:local:smollm2"
    assert made.evaluator.weights(first) == pytest.approx(shapley_weights(values.values, 2.0))
    assert made.evaluator.weights(cases[1]) == pytest.approx([1 / len(cases[1].facts)] *
                                                             len(cases[1].facts))
    with pytest.raises(ShapleyError, match="2 of 3 cases .* no stored Shapley values"):
        sig_evaluator(store, "local:smollm2", cases, require_shapley=True)


def test_values_that_are_not_finite_are_never_stored(store):
    from promed_agents.errors import ShapleyError

    case = store.list_cases()[0]
    n = len(case.facts)
    good = estimate(n)
    with pytest.raises(ShapleyError, match="never stored"):
        store.save_shapley(case.id, "s", good, [float("nan")] + [1.0 / n] * (n - 1), 1.0)
    assert store.get_shapley(case.id, "s") is None
