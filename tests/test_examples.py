from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT


def test_import_and_inspect_example_runs_twice(tmp_path):
    command = [sys.executable, str(ROOT / "examples" / "import_and_inspect.py"),
               "--db", f"sqlite:///{tmp_path / 'ex.db'}"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "50 case(s) added" in first.stdout
    assert "recorded episode 1 with 3 turns" in first.stdout
    second = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert "0 case(s) added, 50 already stored" in second.stdout
    assert "recorded episode 2" in second.stdout


def test_compose_graph_example_refuses_the_leading_question():
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "compose_graph.py")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "patient: I can only tell you about my symptoms and history." in lines[2]
    assert "patient: Patient complains of fever." in lines[4]
    assert lines[0].startswith("audit: 2 question(s)")
    assert lines[-1] == "final answer ['C'], correct True"


def test_agentclinic_example_routes_questions_and_test_orders_and_judges():
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "agentclinic.py")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    roles = [line.split(":", 1)[0].strip() for line in lines[1:7]]
    assert roles == ["doctor", "patient", "doctor", "measurement", "doctor", "measurement"]
    assert lines[4].startswith("measurement: Temperature: 36.6")
    assert "(SIG 0.182)" in lines[3]  # four vital signs of 22 facts
    assert lines[6] == "measurement: Acetylcholine receptor antibodies: Present (elevated)"
    assert lines[-2] == "tests ordered 2, facts known 8 of 22"
    assert lines[-1] == ("diagnosis ['Myasthenia gravis'] vs 'Myasthenia gravis': right by "
                         "rouge:0.5")


def test_abstaining_doctor_example_asks_until_confident():
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "abstaining_doctor.py")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("  doctor: question:") and lines[1].startswith(" patient:")
    assert lines[2] == "  doctor: answer: C"
    assert lines[-2] == "confidence before each turn: [0.4, 0.9]"
    assert lines[-1] == "final answer ['C'], correct True"


@pytest.mark.slow
def test_swap_backends_example_runs_one_graph_on_three_backends(served_url, smollm2_folder):
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "swap_backends.py"),
                             "--openai-url", served_url, "--openai-model", str(smollm2_folder)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[:3]] == [
        "fake:question:", "local:smollm2", f"openai:{smollm2_folder}"]
    assert lines[3] == "local models still loaded: none"  # released
    assert "1/2 correct  [completed,completed]" in lines[0]  # always C; case 1 is not C
    assert all("failed" not in line for line in lines)


@pytest.mark.slow
def test_train_from_traces_example(tmp_path, tiny_model_folder):
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "train_from_traces.py"), "--doctor",
         f"local:{tiny_model_folder}", "--model", f"local:{tiny_model_folder}", "--steps",
         "2", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith(("step", "trained"))]
    assert [line.split(":")[0] for line in lines[:2]] == ["step 1", "step 2"]
    assert lines[-1] == f"trained doctor: local:{tmp_path / 'doctor'}"


@pytest.mark.slow
def test_pipeline_example_runs_the_whole_data_path(tmp_path):
    """examples/pipeline.py: cases -> Shapley -> SIG evaluator -> MCTS -> SFT -> SIG-GRPO ->
    recorded evaluation -> report, on the embedded model at its smallest."""
    import importlib.util

    from promed_agents.storage import TraceStore

    spec = importlib.util.spec_from_file_location("pipeline", ROOT / "examples" / "pipeline.py")
    pipeline = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pipeline)
    pipeline.main(cases_count=2, steps=1, out=tmp_path)
    with TraceStore(f"sqlite:///{tmp_path / 'pipeline.db'}") as store:
        assert all(store.get_shapley(f"imedqa-{i}", "local:smollm2") for i in (0, 1))
        search = store.experiment_id("pipeline-search")
        assert store.load_search_tree(search, "imedqa-0").visits >= 3
        ((step, metrics),) = store.training_metrics(store.experiment_id("pipeline-grpo"))
        assert step == 1 and "loss" in metrics
        assert store.count_episodes(store.experiment_id("pipeline-eval")) == 2
        (checkpoint, *_) = store.list_checkpoints()
    assert (tmp_path / "grpo" / "config.json").exists()
    assert "pipeline-eval" in (tmp_path / "report.html").read_text()


def test_sft_from_any_traces_example_trains_a_student_with_another_vocabulary(
        tmp_path, other_vocab_model_folder):
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "sft_from_any_traces.py"), "--student",
         f"local:{other_vocab_model_folder}", "--steps", "1", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0] == f"distilled: 1 steps, model local:{tmp_path / 'distilled'}"
    assert lines[1] == ("imported: ['question: What did the culture of the joint fluid "
                        "show?', 'The culture of joint fluid shows a bacteria.', 'answer: C'], "
                        "facts [5], SIG 0.111")
    assert lines[2] == f"from the log: 1 steps, model local:{tmp_path / 'from-log'}"
    assert (tmp_path / "distilled" / "config.json").exists()
