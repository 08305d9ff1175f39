"""Crash and resume under kill -9, with the tiny model: benchmarks/crash_resume.py
kills a consultation batch, a Shapley job, an MCTS search and a GRPO run, reruns each, and
counts what they stored against an uninterrupted run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "crash_resume.py"


def _script():
    if str(SCRIPT.parent) not in sys.path:  # as when it runs as a script
        sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("crash_resume", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_a_killed_consultation_batch_resumes_to_the_uninterrupted_counts(tiny_model_folder):
    """The fast representative of the test below: one job, one kill, SQLite."""
    results = _script().main(["--model", f"local:{tiny_model_folder}", "--cases", "4",
                              "--kills", "1", "--jitter", "0.05", "--jobs", "consult"])
    result = results["consult"]
    (kill,) = result["kills"]
    assert kill["killed"] and kill["mid_work"], kill
    assert kill["half_written"] == [] and result["half_written_at_end"] == []
    assert result["equal"], (result["reference"], result["resumed"])
    assert result["kept_unchanged"] == result["stored_before_first_kill"] > 0
    assert result["resumed"]["episodes"] == 4 and result["resumed"]["duplicated"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("where", ["sqlite", pytest.param("postgres",
                                                          marks=pytest.mark.postgres)])
def test_killed_jobs_resume_to_the_counts_of_an_uninterrupted_run(where, tiny_model_folder,
                                                                 request, capsys):
    store = ["--postgres-url", request.getfixturevalue("postgres_url")] \
        if where == "postgres" else []
    results = _script().main(["--model", f"local:{tiny_model_folder}", "--cases", "6",
                              "--steps", "3", "--kills", "1", "--jitter", "0.05", *store])
    assert results["store"] == ("postgresql" if store else "sqlite")
    for job in ("consult", "shapley", "mcts", "train"):
        result = results[job]
        (kill,) = result["kills"]
        assert kill["killed"] and kill["mid_work"], (job, kill)  # killed with work left
        assert kill["half_written"] == [] and result["half_written_at_end"] == [], job
        assert result["equal"], (job, result["reference"], result["resumed"])
        # what was stored before the kill is still there, unchanged
        assert result["stored_before_first_kill"] > 0, job
        assert result["kept_unchanged"] == result["stored_before_first_kill"], job
    assert results["consult"]["resumed"]["episodes"] == 6
    assert results["consult"]["resumed"]["duplicated"] == 0
    assert results["mcts"]["resumed"]["iterations"] == 6 * 3
    assert results["train"]["resumed"]["steps"] == 3
    assert results["train"]["resumed"]["rollouts"] == 3 * 2
