"""`promed eval` and `promed eval compare` with scripted doctors."""

from __future__ import annotations

from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.storage import TraceStore

from helpers import run

CASES = load_cases(bundled_sample_path())[:6]


def accuracy(letter: str) -> float:
    return sum(case.answer == [letter] for case in CASES) / len(CASES)


def test_eval_runs_each_mode_and_seed_and_stores_the_runs(sqlite_url):
    result = run("eval", "--doctor", "fake:answer: C", "--cases", "6", "--seeds", "2",
                 "--experiment", "e", "--max-questions", "2", "--db", sqlite_url)
    assert result.exit_code == 0, result.output
    assert "e-proactive" in result.output and "e-reactive" in result.output
    assert "relative accuracy gain of proactive over reactive" in result.output
    with TraceStore(sqlite_url) as store:
        for mode in ("proactive", "reactive"):
            run_id, config = store.experiment_config(f"e-{mode}")
            assert config["kind"] == "eval" and config["mode"] == mode
            assert store.count_episodes(run_id) == 12  # 6 cases x 2 seeds
            episodes = list(store.iter_episodes(run_id))
            assert {e.mode.value for e in episodes} == {mode}
            assert {e.graph for e in episodes} == {"eval-s0", "eval-s1"}


def test_compare_reports_paired_differences_and_the_gain(sqlite_url):
    for name, letter in (("c", "C"), ("a", "A")):
        assert run("eval", "--doctor", f"fake:answer: {letter}", "--cases", "6",
                   "--modes", "proactive", "--experiment", name, "--db",
                   sqlite_url).exit_code == 0
    compared = run("eval", "compare", "c-proactive", "a-proactive", "--db", sqlite_url)
    assert compared.exit_code == 0, compared.output
    assert "6 shared cases" in compared.output
    difference = accuracy("A") - accuracy("C")
    assert f"{difference:+.3f}" in compared.output
    assert "relative accuracy gain" in compared.output


def test_bad_eval_arguments_are_one_line_errors(sqlite_url):
    bad_mode = run("eval", "--modes", "curious", "--doctor", "fake:answer: A", "--db",
                   sqlite_url)
    assert bad_mode.exit_code == 1 and "give proactive, reactive or both" in bad_mode.stderr
    missing = run("eval", "compare", "x", "y", "--db", sqlite_url)
    assert missing.exit_code == 1 and "no experiment named 'x'" in missing.stderr


def test_reference_doctors_are_evaluated_with_the_asking_metrics(sqlite_url):
    for doctor, name in (("bank:random", "r"), ("oracle", "o")):
        result = run("eval", "--doctor", doctor, "--cases", "6", "--modes", "proactive",
                     "--max-questions", "3", "--experiment", name, "--db", sqlite_url)
        assert result.exit_code == 0, result.output
        assert "answerable share of questions" in result.output
        assert "SIG / episode (uniform weights)" in result.output
    with TraceStore(sqlite_url) as store:
        oracle = list(store.iter_episodes(store.experiment_id("o-proactive")))
        assert {e.doctor_spec for e in oracle} == {"oracle"} and all(
            e.num_questions == 3 for e in oracle)
    compared = run("eval", "compare", "r-proactive", "o-proactive", "--db", sqlite_url)
    assert compared.exit_code == 0 and "facts acquired / episode" in compared.output
