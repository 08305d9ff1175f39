"""An import run from Python: the run it records, its notes, SIG from Shapley values."""

from __future__ import annotations

import json

import pytest

from promed_agents.errors import ConsultationError
from promed_agents.loader import bundled_sample
from promed_agents.runs import ImportCommandConfig, run_import
from promed_agents.sig.shapley import ShapleyEstimate
from promed_agents.storage import TraceStore, sig_evaluator

from collecting_reporter import CollectingReporter

DIALOGUE = {"case_id": "imedqa-0", "messages": [
    {"role": "doctor", "content": "question: What did the culture of the joint fluid show?"},
    {"role": "patient", "content": "Yes.", "disclosed_fact_ids": [5]},
    {"role": "doctor", "content": "answer: C"}]}


@pytest.fixture
def store(sqlite_url, tmp_path):
    with TraceStore(sqlite_url) as opened:
        opened.import_cases(bundled_sample()[:1])
        yield opened


def test_an_import_is_a_complete_run_of_kind_import(store, tmp_path):
    path = tmp_path / "visits.jsonl"
    path.write_text(json.dumps(DIALOGUE) + "\n")
    reporter = CollectingReporter()
    result = run_import(store, path, ImportCommandConfig(source="ward-3"), reporter)
    assert (result.experiment, result.episodes, result.sources) == \
        ("import-visits", 1, {"ward-3": 1})
    summary = store.experiment("import-visits")
    assert (summary.kind, summary.status) == ("import", "complete")
    assert any("uniform fact weights" in note for note in reporter.notes)
    (episode,) = store.iter_episodes(result.experiment_id)
    assert episode.information_gain == pytest.approx(1 / 9)  # one of 9 facts, uniform


def test_sig_from_stored_shapley_values(store, tmp_path):
    n = len(store.get_case("imedqa-0").facts)
    weights = [0.0] * n
    weights[5] = 1.0
    store.save_shapley("imedqa-0", "local:smollm2",
                       ShapleyEstimate(values=weights, method="exact"), weights, 1.0)
    path = tmp_path / "visits.jsonl"
    path.write_text(json.dumps(DIALOGUE) + "\n")
    with pytest.raises(ConsultationError, match="no Shapley values are stored"):
        run_import(store, path, ImportCommandConfig(sig_scorer="local:other"))
    result = run_import(store, path, ImportCommandConfig(sig_scorer="local:smollm2"))
    (episode,) = store.iter_episodes(result.experiment_id)
    case = store.get_case("imedqa-0")
    fact_5 = sig_evaluator(store, "local:smollm2", [case]).evaluator.weights(case)[5]
    assert episode.information_gain == pytest.approx(fact_5) and fact_5 > 1.5 / n
    assert episode.fact_weights.startswith("shapley:")
