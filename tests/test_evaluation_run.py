"""``run_evaluation`` from Python: recorded runs, figures, and what it tells its reporter."""

from __future__ import annotations

import logging

import pytest

from promed_agents.errors import ConsultationError
from promed_agents.runs import EvalCommandConfig, run_evaluation
from promed_agents.storage import TraceStore

from collecting_reporter import CollectingReporter


def test_an_evaluation_runs_records_and_reports_to_its_reporter(sqlite_url):
    reporter = CollectingReporter()
    with TraceStore(sqlite_url) as store:
        runs = run_evaluation(store, EvalCommandConfig(
            doctor="fake:answer: C", cases=3, modes=("proactive",), seeds=2,
            experiment="py"), reporter)
        run = store.experiment("py-proactive")
        episodes = store.count_episodes(store.experiment_id("py-proactive"))
    assert list(runs) == ["py-proactive"] and len(runs["py-proactive"]) == 3
    assert run.status == "complete" and episodes == 6
    assert reporter.notes[0].startswith("the store was empty: imported the bundled sample")
    assert "SIG from stored Shapley values (fake:answer: C) for 0 of 3 cases" in reporter.notes[1]
    [(label, total, counter)] = reporter.tasks
    assert label == "proactive (fake:answer: C)" and total == 6 and counter.completed == 6
    assert reporter.warnings == []


def test_without_a_reporter_the_notes_are_log_records_and_nothing_is_printed(
        sqlite_url, caplog, capsys):
    with TraceStore(sqlite_url) as store, caplog.at_level(logging.INFO, "promed_agents"):
        runs = run_evaluation(store, EvalCommandConfig(
            doctor="fake:answer: A", cases=2, modes=("reactive",)))
    [name] = runs
    assert name.startswith("eval-") and name.endswith("-reactive")  # named for the time
    assert any("SIG from stored Shapley values" in r.getMessage() for r in caplog.records)
    assert capsys.readouterr() == ("", "")


def test_a_run_whose_every_consultation_failed_is_an_error_and_recorded_failed(sqlite_url):
    from langchain_core.language_models import BaseChatModel

    from promed_agents.backends import register_backend

    class Gone(BaseChatModel):
        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            raise ConnectionError("the server went away")

        @property
        def _llm_type(self) -> str:
            return "gone"

    register_backend("gone", lambda spec: Gone())
    reporter = CollectingReporter()
    with TraceStore(sqlite_url) as store:
        with pytest.raises(ConsultationError, match="run down-proactive failed"):
            run_evaluation(store, EvalCommandConfig(
                doctor="gone:x", cases=2, modes=("proactive",), experiment="down"), reporter)
        assert store.experiment("down-proactive").status == "failed"
