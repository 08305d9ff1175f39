from __future__ import annotations

import pytest

from promed_agents.sig.fact_weights import shapley_weights
from promed_agents.storage import TraceStore

from conftest import ROOT
from helpers import run


@pytest.fixture
def scorer(tiny_model_folder) -> str:
    return f"local:{tiny_model_folder}"


def test_shapley_stores_values_resumes_and_shows_them(sqlite_url, scorer):
    first = run("shapley", "--cases", "2", "--scorer", scorer, "--db", sqlite_url)
    assert first.exit_code == 0, first.output
    assert "stored Shapley values for 2 cases (0 already stored" in first.output
    with TraceStore(sqlite_url) as store:
        cases = store.list_cases(limit=2)
        records = [store.get_shapley(c.id, scorer) for c in cases]
    for case, record in zip(cases, records, strict=True):
        assert len(record.values) == len(case.facts)
        assert record.method == "kernel"
        assert record.samples == min(64, max(2 ** len(case.facts), 2 * len(case.facts) + 2))
        assert record.weights == pytest.approx(shapley_weights(record.values, 2.0))
    again = run("shapley", "--cases", "3", "--scorer", scorer, "--db", sqlite_url)
    assert "stored Shapley values for 1 cases (2 already stored, skipped)" in again.output
    shown = run("shapley", "show", cases[0].id, "--scorer", scorer, "--db", sqlite_url)
    assert shown.exit_code == 0, shown.output
    assert cases[0].facts[0][:30] in shown.output and records[0].method in shown.output
    assert f"{records[0].values[0]:+.4f}" in shown.output


def _computed(url, scorer, case_id, *options):
    """The record ``promed shapley --case-ids CASE_ID OPTIONS`` stores, the sample imported."""
    run("cases", "import", __import__("promed_agents").bundled_sample_path(), "--db", url)
    result = run("shapley", "--case-ids", case_id, *options, "--scorer", scorer, "--db", url)
    assert result.exit_code == 0, result.output
    with TraceStore(url) as store:
        return store.get_shapley(case_id, scorer)


def test_permutation_method_records_standard_errors(sqlite_url, scorer):
    options = ("--method", "permutation", "--permutations", "4", "--min-permutations", "4",
               "--antithetic")
    result = run("shapley", "--case-ids", "imedqa-0", *options, "--scorer", scorer,
                 "--db", sqlite_url)
    assert result.exit_code == 1 and "not in the store" in result.stderr
    record = _computed(sqlite_url, scorer, "imedqa-0", *options)
    assert record.method == "permutation-antithetic" and record.samples == 4
    assert all(e is not None and e >= 0 for e in record.std_errors)


def test_kernel_budget_is_the_max_evaluations_option(sqlite_url, scorer):
    # imedqa-2 has 12 facts: the first round is 26 coalitions, then whole pairs.
    record = _computed(sqlite_url, scorer, "imedqa-2", "--max-evaluations", "31")
    assert record.method == "kernel" and record.samples == 30
    # two strata of five hold one pair each, three none: the error is unknown, not 0
    assert record.std_errors == [None] * 12


def test_bad_options_and_missing_values_are_reported(sqlite_url, scorer):
    bad = run("shapley", "--method", "owen", "--db", sqlite_url)
    assert bad.exit_code == 2 and "use kernel, exact, permutation or auto" in bad.output
    remote = run("shapley", "--cases", "1", "--scorer", "anthropic:claude",
                 "--db", sqlite_url)
    assert remote.exit_code == 1 and "token log-probabilities" in remote.stderr
    unknown = run("shapley", "show", "imedqa-1", "--scorer", scorer, "--db", sqlite_url)
    assert unknown.exit_code == 1 and "is not in the store" in unknown.stderr  # nothing
    run("consult", "--cases", "1", "--doctor", "fake:answer: A", "--db", sqlite_url)  # imports
    missing = run("shapley", "show", "imedqa-1", "--scorer", scorer, "--db", sqlite_url)
    assert missing.exit_code == 1 and "no Shapley values for case 'imedqa-1'" in missing.stderr


def test_consult_reports_sig_from_stored_values(sqlite_url, scorer):
    run("shapley", "--cases", "2", "--scorer", scorer, "--db", sqlite_url)
    result = run("consult", "--cases", "3", "--doctor",
                 "fake:question: What symptoms do you have?||answer: A", "--max-questions",
                 "2", "--sig-scorer", scorer, "--experiment", "sig", "--db", sqlite_url)
    assert result.exit_code == 0, result.output
    assert "SIG from stored Shapley values" in result.output and "for 2 of 3 cases" in \
        result.output
    with TraceStore(sqlite_url) as store:
        _, config = store.experiment_config("sig")
        assert config["evaluator"] == f"sig:{scorer}"
        for episode in store.iter_episodes(experiment_id=store.experiment_id("sig")):
            case = store.get_case(episode.case_id)
            record = store.get_shapley(case.id, scorer)
            weights = shapley_weights(record.values, 2.0) if record else \
                [1 / len(case.facts)] * len(case.facts)
            known = set(episode.known_fact_ids)
            for i, turn in enumerate(episode.turns):
                if turn.sig is None:
                    continue
                new = set(episode.turns[i + 1].disclosed_fact_ids) - known
                assert turn.sig == pytest.approx(sum(weights[j] for j in new))
                known |= new


def test_the_weights_temperature_is_named_as_mcts_names_it(sqlite_url, scorer):
    """--weight-temperature (mcts's name for the same softmax); --temperature, which
    elsewhere is a doctor's sampling temperature, still works for one release."""
    record = _computed(sqlite_url, scorer, "imedqa-2", "--weight-temperature", "1.5")
    assert record.temperature == 1.5
    old = run("shapley", "--case-ids", "imedqa-3", "--temperature", "0.5", "--scorer",
              scorer, "--db", sqlite_url)
    assert old.exit_code == 0 and "--temperature is now --weight-temperature" in old.stderr
    with TraceStore(sqlite_url) as store:
        assert store.get_shapley("imedqa-3", scorer).temperature == 0.5


def test_agentclinic_cases_get_shapley_values_of_their_diagnosis(sqlite_url, scorer):
    sample = ROOT / "tests" / "data" / "agentclinic_sample.jsonl"
    assert run("cases", "import", sample, "--db", sqlite_url).exit_code == 0
    scored = run("shapley", "--case-ids", "agentclinic-0", "--scorer", scorer,
                 "--max-evaluations", "48", "--db", sqlite_url)
    assert scored.exit_code == 0, scored.output + scored.stderr
    with TraceStore(sqlite_url) as store:
        record = store.get_shapley("agentclinic-0", scorer)
        assert len(record.values) == len(store.get_case("agentclinic-0").facts) == 22
        assert len(set(round(v, 6) for v in record.values)) > 1  # the facts matter
