"""Run reporters: the default logs and draws nothing; the training callback reports steps."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from promed_agents.runs.run_reporter import (
    SILENT,
    LoggingReporter,
    RunReporter,
    reporter_or_default,
    training_callback,
)

from collecting_reporter import CollectingReporter, CountingTask


def test_the_default_reporter_logs_notes_and_warnings_and_prints_nothing(caplog, capsys):
    reporter = reporter_or_default(None)
    assert isinstance(reporter, LoggingReporter)
    with caplog.at_level(logging.INFO, logger="promed_agents"):
        reporter.note("resuming search [bold]e[/]")
        reporter.warn("run x is incomplete")
        with reporter.task("MCTS", total=4) as progress:
            assert progress is SILENT
            progress.advance()
            progress.update(3, 4)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "resuming search [bold]e[/]"), (logging.WARNING, "run x is incomplete")]
    assert capsys.readouterr() == ("", "")


def test_a_given_reporter_is_used_and_any_object_with_the_methods_is_one():
    mine = CollectingReporter()
    assert reporter_or_default(mine) is mine
    assert isinstance(mine, RunReporter)
    assert not isinstance(object(), RunReporter)


def test_the_training_callback_reports_each_step_of_the_trainer():
    counter = CountingTask()
    callback = training_callback(counter)
    callback.on_step_end(None, SimpleNamespace(global_step=3, max_steps=10), None)
    assert (counter.completed, counter.total) == (3, 10)
