"""``run_search`` from Python: a search recorded, resumed, and its failures warned about."""

from __future__ import annotations

import pytest

from promed_agents.errors import ConsultationError
from promed_agents.runs import MCTSCommandConfig, run_search
from promed_agents.storage import TraceStore

from collecting_reporter import CollectingReporter
from helpers import FAKE_DOCTOR


def settings(iterations: int) -> MCTSCommandConfig:
    return MCTSCommandConfig(experiment="s", cases=2, iterations=iterations, max_questions=2,
                             doctor=FAKE_DOCTOR, proposer="none")


def test_a_search_runs_then_resumes_with_its_progress_counted(sqlite_url):
    first = CollectingReporter()
    with TraceStore(sqlite_url) as store:
        reports = run_search(store, settings(2), first)
        assert [r.case_id for r in reports] == ["imedqa-0", "imedqa-1"]
        assert all(r.iterations == 2 and r.error is None for r in reports)
        assert store.experiment("s").status == "complete"
        [(label, total, counter)] = first.tasks
        assert (label, total, counter.completed) == (f"MCTS ({FAKE_DOCTOR})", 4, 4)
        assert any(n.startswith("MCTS s: 2 of 2 case(s) searched") for n in first.notes)
        again = CollectingReporter()
        run_search(store, settings(3), again)
        assert "resuming search s: 2 of 2 cases started" in again.notes
        [(_, total, counter)] = again.tasks
        assert (total, counter.completed) == (6, 6)  # started at 4: the finished ones
        assert store.search_progress(store.experiment_id("s"))["imedqa-0"] == 3.0


def test_a_search_needs_a_name_before_anything_is_written(sqlite_url):
    with TraceStore(sqlite_url) as store:
        with pytest.raises(ConsultationError, match="name the search"):
            run_search(store, MCTSCommandConfig(cases=1, doctor=FAKE_DOCTOR))
        assert store.list_experiments() == []
