"""`promed train grpo`: graph rollouts or logged traces to a doctor checkpoint."""

from __future__ import annotations

from dataclasses import fields

import pytest

from promed_agents.storage import TraceStore

from helpers import run


def test_grpo_from_rollouts_then_consult_with_the_result(sqlite_url, tmp_path,
                                                         tiny_model_folder):
    assert run("consult", "--cases", "2", "--doctor", "fake:answer: A", "--db",
               sqlite_url).exit_code == 0  # imports the bundled cases
    out = tmp_path / "doctor"
    args = ["train", "grpo", "--model", f"local:{tiny_model_folder}", "--output", out,
            "--case-ids", "imedqa-1", "--num-generations", "2", "--max-steps", "1",
            "--max-questions", "1",
            "--max-new-tokens", "4", "--learning-rate", "1e-3", "--db", sqlite_url]
    trained = run(*args)
    assert trained.exit_code == 0, trained.output
    assert "GRPO (promed reward) on 1 case(s) from graph rollouts" in trained.output
    assert "trained 1 steps" in trained.output and f"local:{out}" in trained.output
    with TraceStore(sqlite_url) as store:
        run_id, config = store.experiment_config("grpo-doctor")
        assert config["kind"] == "grpo" and config["num_generations"] == 2
        assert config["case_ids"] == ["imedqa-1"]
        assert store.count_episodes(run_id) == 2
        assert [step for step, _ in store.training_metrics(run_id)] == [1]
        (checkpoint,) = store.list_checkpoints()
    assert checkpoint.experiment_id == run_id and checkpoint.step == 1
    consulted = run("consult", "--cases", "1", "--doctor", f"local:{out}", "--max-questions",
                    "1", "--max-new-tokens", "4", "--db", sqlite_url)
    assert consulted.exit_code == 0, consulted.output
    again = run(*args)  # the same command again: the run is finished, nothing to redo
    assert again.exit_code == 0 and "is already finished (1 steps)" in again.output
    with TraceStore(sqlite_url) as store:
        assert store.count_episodes(run_id) == 2 and len(store.list_checkpoints()) == 1
    fresh = run(*args[:-2], "--experiment", "new-run", "--db", sqlite_url)
    assert fresh.exit_code == 1 and "already holds a trained model" in fresh.stderr
    elsewhere = run(*[tmp_path / "other" if a == out else a for a in args],
                    "--experiment", "grpo-doctor")  # the run's records are not mixed
    assert elsewhere.exit_code == 1 and f"trains into {out}" in elsewhere.stderr
    assert not (tmp_path / "other").exists()


def test_grpo_from_logged_traces(sqlite_url, tmp_path, tiny_model_folder):
    faked = run("consult", "--cases", "2", "--doctor",
                "fake:question: What did the culture show?||answer: C", "--max-questions",
                "1", "--experiment", "faked", "--db", sqlite_url)
    assert faked.exit_code == 0, faked.output
    refused = run("train", "grpo", "--model", f"local:{tiny_model_folder}", "--output",
                  tmp_path / "refused", "--from-traces", "faked", "--num-generations", "2",
                  "--max-steps", "1", "--db", sqlite_url)
    assert refused.exit_code == 1 and "logprobs from a served doctor" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "refused").exists()
    greedy = run("consult", "--cases", "2", "--doctor", f"local:{tiny_model_folder}",
                 "--max-questions", "1", "--max-new-tokens", "6", "--experiment", "greedy",
                 "--db", sqlite_url)
    assert greedy.exit_code == 0, greedy.output
    refused = run("train", "grpo", "--model", f"local:{tiny_model_folder}", "--output",
                  tmp_path / "refused", "--from-traces", "greedy", "--num-generations", "2",
                  "--max-steps", "1", "--db", sqlite_url)
    assert refused.exit_code == 1 and "were decoded greedily" in refused.stderr
    logged = run("consult", "--cases", "2", "--doctor", f"local:{tiny_model_folder}",
                 "--temperature", "1", "--max-questions", "0", "--max-new-tokens", "6",
                 "--experiment", "logged", "--db", sqlite_url)  # one turn: always stitches
    assert logged.exit_code == 0, logged.output
    trained = run("train", "grpo", "--model", f"local:{tiny_model_folder}", "--output",
                  tmp_path / "offline", "--from-traces", "logged", "--num-generations", "2",
                  "--max-steps", "1", "--delta", "3", "--experiment", "off", "--db",
                  sqlite_url)
    assert trained.exit_code == 0, trained.output
    assert "GRPO (promed reward) on 2 case(s) from logged traces" in trained.output
    with TraceStore(sqlite_url) as store:
        run_id = store.experiment_id("off")
        assert store.count_episodes(run_id) == 0
        ((_, metrics),) = store.training_metrics(run_id)
    assert metrics["num_tokens_trained"] > 0


def test_the_sig_weighting_is_said_and_require_shapley_refuses(sqlite_url, tmp_path,
                                                               tiny_model_folder):
    args = ["train", "grpo", "--model", f"local:{tiny_model_folder}", "--cases", "2",
            "--num-generations", "2", "--max-steps", "1", "--max-questions", "1",
            "--max-new-tokens", "4", "--db", sqlite_url]
    refused = run(*args, "--output", tmp_path / "strict", "--require-shapley")
    assert refused.exit_code == 1 and "--require-shapley: 2 of 2 cases" in refused.stderr
    assert "promed shapley --scorer" in refused.stderr and not (tmp_path / "strict").exists()
    trained = run(*args, "--output", tmp_path / "loose")
    assert trained.exit_code == 0, trained.output
    assert "for 0 of 2 cases; uniform weights for the rest" in trained.output
    with TraceStore(sqlite_url) as store:
        episodes = list(store.iter_episodes(store.experiment_id("grpo-loose")))
    assert episodes and all(e.fact_weights == "uniform" for e in episodes)


def test_bad_grpo_arguments_are_one_line_errors(sqlite_url, tmp_path):
    missing = run("train", "grpo", "--output", tmp_path / "x", "--from-traces", "nope",
                  "--db", sqlite_url)
    assert missing.exit_code == 1 and "no experiment named 'nope'" in missing.stderr
    remote = run("train", "grpo", "--model", "fake:answer: A", "--output", tmp_path / "x",
                 "--db", sqlite_url)
    assert remote.exit_code == 1 and "training needs a local model" in remote.stderr
    run("consult", "--cases", "1", "--doctor", "fake:answer: A", "--experiment", "c",
        "--db", sqlite_url)
    taken = run("train", "grpo", "--output", tmp_path / "x", "--experiment", "c",
                "--cases", "1", "--db", sqlite_url)
    assert taken.exit_code == 1 and "is not a GRPO run" in taken.stderr
    small = run("train", "grpo", "--output", tmp_path / "x", "--num-generations", "1",
                "--db", sqlite_url)
    assert small.exit_code == 2
    for flags, problem in ((["--reward", "ppo"], "no reward design 'ppo': choose one of "
                                                 "promed, doctoragent, outcome"),
                           (["--dynamic-budget", "10-2"], "--dynamic-budget '10-2'"),
                           (["--dynamic-budget", "2-10", "--from-traces", "c"],
                            "already had theirs")):
        refused = run("train", "grpo", "--output", tmp_path / "y", *flags, "--db", sqlite_url)
        assert refused.exit_code == 1 and problem in refused.stderr, refused.output
        assert "Traceback" not in refused.stderr and not (tmp_path / "y").exists()
    with TraceStore(sqlite_url) as store:
        assert [e.name for e in store.list_experiments()] == ["c"]  # nothing written


@pytest.mark.parametrize("reward", ["doctoragent", pytest.param("outcome", marks=pytest.mark.slow),
                                    pytest.param("rollout-level", marks=pytest.mark.slow)])
def test_each_reward_design_trains_a_doctor_that_consults(reward, sqlite_url, tmp_path,
                                                          tiny_model_folder):
    from promed_agents.trainers.reward_designs import RewardChoice

    assert run("consult", "--cases", "2", "--doctor", "fake:answer: A", "--db",
               sqlite_url).exit_code == 0
    out = tmp_path / reward
    trained = run("train", "grpo", "--model", f"local:{tiny_model_folder}", "--output", out,
                  "--case-ids", "imedqa-1", "--num-generations", "4", "--max-steps", "1",
                  "--reward", reward, "--dynamic-budget", "2-4", "--length-penalty", "0.5",
                  "--max-new-tokens", "4", "--db", sqlite_url)
    assert trained.exit_code == 0, trained.output
    assert f"GRPO ({reward}+length reward)" in trained.output
    design = RewardChoice(reward, 0.5, 4).design()
    with TraceStore(sqlite_url) as store:
        run_id, config = store.experiment_config(f"grpo-{reward}")
        episodes = list(store.iter_episodes(run_id))
    assert config["reward"] == reward and config["dynamic_budget"] == "2-4"
    assert len(episodes) == 4 and {e.max_questions for e in episodes} <= {1, 2, 3}
    for episode in episodes:  # the stored turn rewards are the design's
        stored = [t.reward for t in episode.turns if t.role.value == "doctor"]
        assert stored == pytest.approx(design.turn_rewards(episode))
    consulted = run("consult", "--cases", "1", "--doctor", f"local:{out}", "--max-questions",
                    "1", "--max-new-tokens", "4", "--db", sqlite_url)
    assert consulted.exit_code == 0, consulted.output


@pytest.mark.slow
def test_two_processes_train_one_run(sqlite_url, tmp_path, tiny_model_folder):
    """torchrun, 2 CPU processes (DDP over gloo): each samples its own cases, one run,
    one registered checkpoint."""
    import os
    import subprocess
    import sys

    assert run("consult", "--cases", "1", "--doctor", "fake:answer: A", "--db",
               sqlite_url).exit_code == 0  # cases imported before the processes start
    out = tmp_path / "ddp"
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "-m", "promed_agents.cli", "train", "grpo", "--model", f"local:{tiny_model_folder}",
         "--output", str(out), "--cases", "2", "--num-generations", "2", "--max-steps", "2",
         "--max-questions", "1", "--max-new-tokens", "4", "--db", sqlite_url],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    with TraceStore(sqlite_url) as store:
        run_id = store.experiment_id("grpo-ddp")
        assert store.count_episodes(run_id) == 8  # 2 steps x 2 processes x 1 case x 2
        assert [step for step, _ in store.training_metrics(run_id)] == [1, 2]
        assert len(store.list_checkpoints()) == 1
    assert (out / "model.safetensors").exists()


def test_accelerate_configs_parse():
    from pathlib import Path

    from accelerate.commands.config.config_args import ClusterConfig

    folder = Path(__file__).parent.parent / "examples" / "accelerate"
    kinds = {p.name: ClusterConfig.from_yaml_file(p).distributed_type.value
             for p in sorted(folder.glob("*.yaml"))}
    assert kinds == {"deepspeed_zero2.yaml": "DEEPSPEED", "deepspeed_zero3.yaml": "DEEPSPEED",
                     "fsdp.yaml": "FSDP"}
    zero3 = ClusterConfig.from_yaml_file(folder / "deepspeed_zero3.yaml")
    assert zero3.deepspeed_config["zero_stage"] == 3


def test_reward_flags_have_the_config_names_and_old_names_still_work(monkeypatch, tmp_path):
    """--sig-weight, --sig-correct-weight, --answer-weight, --delta, --num-generations and
    --max-steps are the names of DoctorGRPOConfig's (TRL's) fields; --alpha,
    --sig-correct, --gamma, --ratio-cap, --group-size and --steps are hidden aliases for
    one release, with a warning."""
    import promed_agents.cli.grpo as command
    from promed_agents.trainers.reference_hyperparameters import REFERENCE_GRPO
    from promed_agents.trainers.token_rewards import REFERENCE_WEIGHTS

    seen = []
    monkeypatch.setattr(command, "run_grpo",
                        lambda store, settings, *_: seen.append(settings))
    db = f"sqlite:///{tmp_path / 'p.db'}"
    assert run("train", "grpo", "--output", tmp_path / "a", "--db", db).exit_code == 0
    new = run("train", "grpo", "--output", tmp_path / "b", "--sig-weight", "1.5",
              "--sig-correct-weight", "0.5", "--answer-weight", "0", "--delta", "2",
              "--num-generations", "3", "--max-steps", "7", "--db", db)
    old = run("train", "grpo", "--output", tmp_path / "c", "--alpha", "1.5",
              "--sig-correct", "0.5", "--gamma", "0", "--ratio-cap", "2", "--group-size",
              "3", "--steps", "7", "--db", db)
    assert new.exit_code == 0 and old.exit_code == 0, old.output
    default, renamed, aliased = seen
    assert (default.sig_weight, default.sig_correct_weight, default.answer_weight,
            default.delta, default.beta, default.num_generations) == (
        REFERENCE_WEIGHTS.sig_weight, REFERENCE_WEIGHTS.sig_correct_weight,
        REFERENCE_WEIGHTS.answer_weight, None, REFERENCE_GRPO.beta,
        REFERENCE_GRPO.num_generations)
    for settings in (renamed, aliased):
        assert (settings.sig_weight, settings.sig_correct_weight, settings.answer_weight,
                settings.delta, settings.num_generations, settings.max_steps) == (
            1.5, 0.5, 0.0, 2.0, 3, 7)
    assert "warning: --alpha is now --sig-weight" in old.stderr
    assert "warning: --group-size is now --num-generations" in old.stderr
    assert "warning: --steps is now --max-steps" in old.stderr
    assert "warning" not in new.stderr
    shown = run("train", "grpo", "--help", env={"COLUMNS": "250"}).output
    assert "--sig-correct-weight" in shown and "--alpha" not in shown
    assert "--num-generations" in shown and "--group-size" not in shown


def test_the_trainer_config_and_the_command_share_their_defaults():
    from promed_agents.cli.grpo import GRPOCommandConfig
    from promed_agents.trainers.grpo_trainer import DoctorGRPOConfig

    trainer = DoctorGRPOConfig(output_dir="unused")
    command = GRPOCommandConfig(output="unused")
    for name in ("sig_weight", "sig_correct_weight", "answer_weight", "format_weight",
                 "beta", "epsilon", "temperature", "loss_type", "learning_rate", "reward",
                 "length_penalty"):
        assert getattr(trainer, name) == getattr(command, name), name
    assert trainer.num_generations == command.num_generations
    # and their help: one declaration (GRPOHyperparameters, RewardWeights)
    helps = [{f.name: f.metadata.get("help") for f in fields(c)}
             for c in (DoctorGRPOConfig, GRPOCommandConfig)]
    for name in ("sig_weight", "sig_correct_weight", "answer_weight", "format_weight",
                 "beta", "epsilon", "temperature", "loss_type", "learning_rate",
                 "num_generations"):
        assert helps[0][name] and helps[0][name] == helps[1][name], name



def test_the_reference_settings_are_the_references():
    """ProMed's GRPO config, as ``shared/notes/method.md`` gives it: lr 5e-6, KL 0.04,
    clip 0.1, temperature 0.7, 4 rollouts a prompt, the per-sequence 'grpo' loss."""
    from promed_agents.trainers.reference_hyperparameters import REFERENCE_GRPO

    assert (REFERENCE_GRPO.learning_rate, REFERENCE_GRPO.beta, REFERENCE_GRPO.epsilon,
            REFERENCE_GRPO.temperature, REFERENCE_GRPO.num_generations,
            REFERENCE_GRPO.loss_type) == (5e-6, 0.04, 0.1, 0.7, 4, "grpo")


def test_sig_grpo_on_open_ended_cases_with_a_judge_and_a_test_cost(sqlite_url, tmp_path,
                                                                    tiny_model_folder):
    """SIG-GRPO trains on AgentClinic rollouts: the run keeps its judge, its policy and
    its test cost (what the cost does to rewards: tests/test_reward_designs.py)."""
    from conftest import ROOT

    sample = ROOT / "tests" / "data" / "agentclinic_sample.jsonl"
    assert run("cases", "import", sample, "--db", sqlite_url).exit_code == 0
    out = tmp_path / "doctor"
    trained = run("train", "grpo", "--model", f"local:{tiny_model_folder}", "--output", out,
                  "--case-ids", "agentclinic-0", "--num-generations", "2", "--max-steps",
                  "1", "--max-questions", "1", "--max-new-tokens", "4", "--policy",
                  "initial", "--judge", "token-f1:0.5", "--test-cost", "0.5",
                  "--demonstration", "--db", sqlite_url)
    assert trained.exit_code == 0, trained.output + trained.stderr
    assert "trained 1 steps" in trained.output
    with TraceStore(sqlite_url) as store:
        run_id, config = store.experiment_config("grpo-doctor")
        assert config["judge"] == "token-f1:0.5" and config["test_cost"] == 0.5
        episodes = list(store.iter_episodes(run_id))
    assert len(episodes) == 2
    assert all(e.partial_policy.value == "initial" and e.tests_ordered is not None
               for e in episodes)
    assert all(e.verdict is None or e.verdict.judge == "token-f1:0.5" for e in episodes)
