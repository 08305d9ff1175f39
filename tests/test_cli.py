from __future__ import annotations

import json

import pytest

from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.storage import TraceStore

from conftest import ROOT, shared_file
from helpers import counts, episode, run
from malformed_inputs import MALFORMED


@pytest.fixture
def seeded(sqlite_url):
    """A store holding 3 sample cases and 2 episodes."""
    with TraceStore(sqlite_url) as store:
        store.import_cases(load_cases(bundled_sample_path(), limit=3))
        experiment = store.create_experiment("smoke", "rollout")
        store.record_episode(episode(experiment_id=experiment))
        store.record_episode(episode(case_id="imedqa-2"))
    return sqlite_url


def test_help_lists_every_command():
    top = run("--help")
    assert top.exit_code == 0
    for name in ("demo", "cases", "db", "traces"):
        assert name in top.output
    for group, commands in {"cases": ("import", "list", "show"), "db": ("upgrade", "current"),
                            "traces": ("list", "show", "export")}.items():
        result = run(group, "--help")
        assert result.exit_code == 0
        for command in commands:
            assert command in result.output


def test_import_the_three_shared_files_idempotently(sqlite_url):
    mediq = shared_file("mediq/imedqa_dev.jsonl")
    result = run("cases", "import", mediq, "--split", "dev", "--db", sqlite_url)
    assert result.exit_code == 0, result.output
    assert "imported 1000 new case(s)" in result.output
    for name in ("promed_format/medqa_atomic_example.jsonl",
                 "promed_format/cmb_atomic_example.json"):
        assert run("cases", "import", shared_file(name), "--db", sqlite_url).exit_code == 0
    again = run("cases", "import", mediq, "--split", "dev", "--db", sqlite_url)
    assert "imported 0 new case(s)" in again.output and "1000 already stored" in again.output
    assert counts(sqlite_url)[0] == 1003


def test_import_limit_and_explicit_format(sqlite_url):
    result = run("cases", "import", bundled_sample_path(), "--format", "mediq", "--limit", "7",
                 "--db", sqlite_url)
    assert result.exit_code == 0, result.output
    assert counts(sqlite_url)[0] == 7


@pytest.mark.parametrize("name, suffix, text, location, field, problem",
                         MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_file_is_one_clear_error_and_changes_nothing(seeded, tmp_path, name, suffix,
                                                               text, location, field, problem):
    path = tmp_path / f"{name}{suffix}"
    path.write_text(text, encoding="utf-8")
    before = counts(seeded)
    result = run("cases", "import", path, "--db", seeded)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {path}:{location}: ")
    assert problem in lines[0]
    if field:
        assert f"field '{field}'" in lines[0]
    assert counts(seeded) == before


def test_conflicting_reimport_names_file_and_line(seeded, tmp_path):
    record = json.loads(bundled_sample_path().read_text().splitlines()[1])
    record["question"] = "A different question?"
    path = tmp_path / "changed.jsonl"
    first = bundled_sample_path().read_text().splitlines()[4]  # a new case, imedqa-4
    path.write_text(first + "\n" + json.dumps(record) + "\n")
    result = run("cases", "import", path, "--db", seeded)
    assert result.exit_code == 1
    assert f"{path}:line 2: case imedqa-1 is already stored" in result.stderr
    assert counts(seeded)[0] == 3


def test_missing_file_and_bad_options(sqlite_url, tmp_path):
    result = run("cases", "import", tmp_path / "absent.jsonl", "--db", sqlite_url)
    assert result.exit_code == 1 and "absent.jsonl: no such file" in result.stderr
    assert run("cases", "import", bundled_sample_path(), "--format", "csv").exit_code == 2


def test_cases_list_and_show(seeded):
    listed = run("cases", "list", "--db", seeded)
    assert listed.exit_code == 0
    assert "3 of 3 case(s)" in listed.output and "imedqa-2" in listed.output
    shown = run("cases", "show", "imedqa-0", "--policy", "first-sentence", "--db", seeded)
    assert shown.exit_code == 0, shown.output
    assert "Ceftriaxone" in shown.output
    assert "Given at start (first-sentence)" in shown.output
    assert "5 of 9 known" in shown.output
    missing = run("cases", "show", "imedqa-77", "--db", seeded)
    assert missing.exit_code == 1 and "case 'imedqa-77' is not in the store" in missing.stderr


def test_agentclinic_cases_import_list_and_show(sqlite_url):
    sample = ROOT / "tests" / "data" / "agentclinic_sample.jsonl"
    imported = run("cases", "import", sample, "--db", sqlite_url)
    assert imported.exit_code == 0, imported.output + imported.stderr
    listed = run("cases", "list", "--db", sqlite_url, "--format", "csv")
    assert "agentclinic-0,,22,Myasthenia gravis,\"Assess and diagnose" in listed.output
    shown = run("cases", "show", "agentclinic-0", "--policy", "initial", "--db", sqlite_url,
                env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.output + shown.stderr
    assert "Diagnosis: Myasthenia gravis" in shown.output
    assert "2 of 22 known at start, policy initial" in shown.output
    assert "measurement: Test_Results.Imaging.Chest_CT.Findings" in shown.output


def test_db_upgrade_and_current(sqlite_url, tmp_path):
    missing = run("db", "current", "--db", sqlite_url)
    assert missing.exit_code == 1 and "does not exist" in missing.stderr
    assert not any(tmp_path.iterdir())  # a read-only command creates no database
    (tmp_path / "empty.db").touch()
    assert "(empty database)" in run("db", "current", "--db", tmp_path / "empty.db").output
    from promed_agents.storage.database import head_revision

    head = head_revision()
    upgraded = run("db", "upgrade", "--db", sqlite_url)
    assert upgraded.exit_code == 0 and f"is at revision {head}" in upgraded.output
    assert f"current: {head}" in run("db", "current", "--db", sqlite_url).output


def test_traces_list_show_export(seeded, tmp_path):
    listed = run("traces", "list", "--experiment", "smoke", "--db", seeded)
    assert listed.exit_code == 0 and "1 episode(s)" in listed.output
    assert "2 episode(s)" in run("traces", "list", "--db", seeded).output
    shown = run("traces", "show", "1", "--db", seeded)
    assert shown.exit_code == 0
    assert "question: Any fever?" in shown.output and "SIG 0.250" in shown.output
    assert "final answer C: correct" in shown.output
    assert run("traces", "show", "99", "--db", seeded).exit_code == 1
    out = tmp_path / "out" / "traces.jsonl"
    exported = run("traces", "export", "--format", "jsonl", out, "--db", seeded)
    assert exported.exit_code == 0 and "wrote 2 episode(s)" in exported.output
    assert len(out.read_text().splitlines()) == 2
    unknown = run("traces", "export", out, "--experiment", "nope", "--db", seeded)
    assert unknown.exit_code == 1 and "no experiment named 'nope'" in unknown.stderr


def test_db_from_environment(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'env.db'}"
    result = run("cases", "import", bundled_sample_path(), "--limit", "2",
                 env={"PROMED_DB": url})
    assert result.exit_code == 0, result.output
    assert counts(url)[0] == 2


def test_demo_imports_the_bundled_sample_and_summarises(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    first = run("demo", "--doctor", "none", "--db", url)
    assert first.exit_code == 0, first.output
    assert "50 case(s) added" in first.output
    assert "imedqa-0" in first.output and "policy half-facts" in first.output
    second = run("demo", "--doctor", "none", "--db", url)
    assert "0 case(s) added, 50 already stored" in second.output
    assert counts(url)[1] == 0


def test_demo_consults_in_both_modes(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    report = tmp_path / "demo-report.html"
    result = run("demo", "--doctor", "fake:question: Do you have a fever?||answer: C",
                 "--cases", "3", "--max-questions", "2", "--report", report, "--db", url)
    assert result.exit_code == 0, result.output
    assert "proactive" in result.output and "reactive" in result.output
    assert f"report: {report}" in result.output.replace("\n", "")
    assert "answerable" in result.output
    assert report.read_text().count("<div class=episode>") == 9  # 3 per run, 3 runs
    with TraceStore(url) as store:
        modes = sorted(e.mode for e in store.list_episodes())
        assert modes == ["proactive"] * 6 + ["reactive"] * 3  # base and bank:random
        episodes = store.list_episodes()
        (bank_run,) = [x.id for x in store.list_experiments()
                       if x.name.endswith("-bank-random-proactive")]
        bank = [e for e in episodes if e.experiment_id == bank_run]
        assert len(bank) == 3 and all(e.num_questions == 2 for e in bank)
        proactive = [e for e in episodes if e.mode == "proactive" and e not in bank]
        reactive = [e for e in episodes if e.mode == "reactive"]
        assert [e.status for e in proactive] == ["completed"] * 3
        assert [e.num_questions for e in proactive] == [1] * 3
        # asked a question when only an answer was allowed
        assert [e.status for e in reactive] == ["timeout"] * 3


def test_demo_runs_the_whole_pipeline_on_a_local_model(tmp_path, tiny_model_folder):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    report = tmp_path / "report.html"
    result = run("demo", "--doctor", f"local:{tiny_model_folder}", "--cases", "2",
                 "--train-cases", "2", "--max-questions", "1", "--sft-steps", "1",
                 "--grpo-steps", "1", "--models", tmp_path / "models", "--report", report,
                 "--db", url)
    assert result.exit_code == 0, result.output
    assert "stored Shapley values for 2 cases" in result.output
    assert "relative accuracy gain of proactive over reactive" in result.output
    with TraceStore(url) as store:
        kinds = sorted({e.kind for e in store.list_experiments()})
        names = [e.name for e in store.list_experiments()]
        assert kinds == ["eval", "grpo", "mcts"]
        assert any(n.endswith("-bank-random-proactive") for n in names)
        trained = [n for n in names if n.endswith("-trained-proactive")]
        assert len(trained) == 1 and store.count_episodes(store.experiment_id(trained[0])) == 2
        grpo = [n for n in names if n.endswith("-grpo")]
        assert [s for s, _ in store.training_metrics(store.experiment_id(grpo[0]))] == [1]
    html = report.read_text()
    assert "-trained-proactive" in html and 'src="data:image/png;base64,' in html


def test_short_help_version_and_plain_help():
    assert run("-h").output == run("--help").output
    assert run("traces", "list", "-h").exit_code == 0
    from promed_agents import __version__

    assert run("--version").output == f"promed-agents {__version__}\n"
    top = run("--help").output
    assert "<bool>" not in top and "╭" not in top  # plain, as click writes help
    commands = top.split("Commands:")[1].strip().splitlines()
    assert len(commands) == 10  # one line per command, no hard breaks
    assert all(not line.rstrip().endswith("...") for line in commands)
    assert "[default: sqlite:///promed.db]" in " ".join(run("cases", "list", "-h").output.split())


def test_the_readme_quick_start_imports_dev_after_the_sample(sqlite_url):
    # An empty store gets the bundled sample on its first consultation; the README's next
    # step imports the 1,000 dev cases, whose first 50 are the sample's.
    first = run("consult", "--cases", "1", "--doctor", "fake:answer: C", "--db", sqlite_url)
    assert first.exit_code == 0 and "bundled sample (50 iMedQA dev cases" in first.output
    dev = run("cases", "import", shared_file("mediq/imedqa_dev.jsonl"), "--split", "dev",
              "--db", sqlite_url)
    assert dev.exit_code == 0, dev.stderr
    assert "imported 950 new case(s)" in dev.output and "50 already stored" in dev.output
    without = run("cases", "import", shared_file("mediq/imedqa_dev.jsonl"), "--db",
                  sqlite_url)
    assert "case imedqa-0 is already stored with split 'dev', not without one" in \
        without.stderr and "--split dev" in without.stderr


def test_imedqa_and_icraftmd_live_in_one_store(sqlite_url, tmp_path):
    craft = tmp_path / "all_craft_md.jsonl"  # the name of MediQ's iCraft-MD file
    craft.write_text("\n".join(bundled_sample_path().read_text().splitlines()[:3]) + "\n")
    assert run("cases", "import", bundled_sample_path(), "--split", "dev", "--db",
               sqlite_url).exit_code == 0
    detected = run("cases", "import", craft, "--db", sqlite_url)
    assert detected.exit_code == 0 and "imported 3 new case(s)" in detected.output
    named = run("cases", "import", bundled_sample_path(), "--source", "craftmd-v2",
                "--limit", "2", "--db", sqlite_url)
    assert named.exit_code == 0, named.stderr
    with TraceStore(sqlite_url) as store:
        assert store.count_cases(source="imedqa") == 50
        assert [c.id for c in store.list_cases(source="craftmd")] == [
            "craftmd-0", "craftmd-1", "craftmd-2"]
        assert store.count_cases(source="craftmd-v2") == 2


def test_traces_list_pages_and_prints_json_or_csv(seeded):
    page = run("traces", "list", "--limit", "1", "--offset", "1", "--db", seeded)
    assert page.exit_code == 0 and "2-2 of 2 episode(s)" in page.output
    rows = json.loads(run("traces", "list", "--format", "json", "--db", seeded).output)
    assert [(r["id"], r["experiment"], r["case"]) for r in rows] == [
        (1, "smoke", "imedqa-0"), (2, None, "imedqa-2")]
    lines = run("traces", "list", "--format", "csv", "--db", seeded).output.splitlines()
    assert lines[0] == "id,experiment,case,mode,status,questions,answer,correct"
    assert lines[1].startswith("1,smoke,imedqa-0,proactive,completed,1,C,yes")
    cases = json.loads(run("cases", "list", "--format", "json", "--db", seeded).output)
    assert [c["id"] for c in cases] == ["imedqa-0", "imedqa-1", "imedqa-2"]


def test_tables_fit_80_columns_when_piped(seeded):
    for args in (["cases", "list"], ["traces", "list"]):
        result = run(*args, "--db", seeded)
        assert max(len(line) for line in result.output.splitlines()) <= 80, result.output


def test_traces_export_to_standard_output_with_prompt_and_metadata(seeded):
    result = run("traces", "export", "-", "--db", seeded)
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 2 and "wrote 2 episode(s) to standard output" in result.stderr
    metadata = lines[0]["metadata"]  # JSON, not a string
    assert (metadata["seed"], metadata["prompt_tokens"], metadata["fact_recall"]) == (1, 40, 0.5)
    system, case = lines[0]["prompt"]
    assert system["role"] == "system" and "ask the patient ONE short question" in \
        system["content"]
    assert case["role"] == "user" and "Ceftriaxone" in case["content"]


@pytest.mark.slow
def test_the_whole_path_on_ten_agentclinic_cases_with_the_embedded_model(sqlite_url, tmp_path):
    """AgentClinic's cases with the embedded SmolLM2: imported, Shapley values of their
    diagnoses, a search that asks and orders tests, SFT on it, SIG-GRPO, a judged
    evaluation and the report, each a command of docs/open_ended.md."""
    from promed_agents import agentclinic_sample_path

    def ok(*args):
        result = run(*args, "--db", sqlite_url)
        assert result.exit_code == 0, f"{args}: {result.output}{result.stderr}"
        return " ".join(result.output.split())

    assert "imported 10 new case(s)" in ok("cases", "import", agentclinic_sample_path())
    ok("shapley", "--cases", "10", "--max-evaluations", "48")
    ok("mcts", "--experiment", "ac-search", "--cases", "10", "--policy", "initial",
       "--max-questions", "4", "--iterations", "3", "--width", "2", "--demonstration")
    sft = ok("train", "sft", "--from", "ac-search", "--output", tmp_path / "sft",
             "--max-steps", "4")
    assert "10 sample(s) from 10 path(s) of 10 case(s)" in sft
    ok("train", "grpo", "--model", f"local:{tmp_path / 'sft'}", "--output",
       tmp_path / "grpo", "--cases", "2", "--num-generations", "2", "--max-steps", "1",
       "--max-questions", "2", "--policy", "initial", "--demonstration")
    evaluated = ok("eval", "--doctor", f"local:{tmp_path / 'grpo'}", "--cases", "10",
                   "--policy", "initial", "--max-questions", "5", "--modes", "proactive",
                   "--demonstration", "--experiment", "ac-eval")
    assert "judged by rouge:0.5" in evaluated and "tests ordered / episode" in evaluated
    assert "diagnosis ROUGE-L F1" in evaluated
    with TraceStore(sqlite_url) as store:
        assert len(store.shapley_scorers()) == 1
        run_id = store.experiment_id("ac-search")
        kinds = {n.turn_kind for c in store.search_progress(run_id)
                 for n in store.load_search_tree(run_id, c).walk()[1:]}
        assert {"question", "test"} <= kinds  # the bank proposer's test orders
        episodes = list(store.iter_episodes(store.experiment_id("ac-eval-proactive")))
    assert len(episodes) == 10 and all(e.tests_ordered is not None for e in episodes)
    out = tmp_path / "report.html"
    ok("report", "--out", out)
    assert "<th>judge</th>" in out.read_text()
