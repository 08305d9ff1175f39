"""SIG-GRPO: TRL's private API it relies on, short runs on a tiny model, resume, offline."""

from __future__ import annotations

import asyncio
import inspect
import json

import pytest
import torch

from promed_agents.backends.scripted_chat_model import ScriptedChatModel
from promed_agents.errors import TrainingError
from promed_agents.graphs.consultation import ConsultationContext
from promed_agents.graphs.consultation_runner import arun_consultations
from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.storage import TraceStore
from promed_agents.trace import Role
from promed_agents.trainers.episode_sources import GraphRollouts, LoggedEpisodes
from promed_agents.trainers.grpo_trainer import (
    DoctorGRPOConfig,
    DoctorGRPOTrainer,
    case_dataset,
    train_grpo,
)
from promed_agents.trainers.training_log import LOG_FILE
from promed_agents.trainers.training_output import RECEIPT

from helpers import EXACT_SAMPLING

CASES = load_cases(bundled_sample_path())[:2]
SCRIPT = ["question: What did the culture of the joint fluid show?", "answer: C"]


def _config(tmp_path, name="grpo", **kwargs) -> DoctorGRPOConfig:
    defaults = dict(output_dir=str(tmp_path / name), max_steps=2, learning_rate=5e-3,
                    num_generations=2, per_device_train_batch_size=4, logging_steps=1,
                    save_strategy="no", report_to="none", seed=0, beta=0.0)
    return DoctorGRPOConfig(**{**defaults, **kwargs})


def _weights(folder):
    from transformers import AutoModelForCausalLM

    return {k: v.clone() for k, v in AutoModelForCausalLM.from_pretrained(folder)
            .state_dict().items()}


def test_the_private_trl_api_we_rely_on():
    """Fails loudly when a TRL upgrade changes what DoctorGRPOTrainer overrides or calls."""
    import trl
    from trl import GRPOTrainer

    assert trl.__version__ == "1.16.0", "DoctorGRPOTrainer is tested against trl 1.16.0 only"
    assert list(inspect.signature(GRPOTrainer._generate_and_score_completions).parameters) \
        == ["self", "inputs"]
    logps = inspect.signature(GRPOTrainer._get_per_token_logps_and_entropies).parameters
    assert list(logps)[:5] == ["self", "model", "input_ids", "attention_mask",
                               "logits_to_keep"] and "batch_size" in logps
    assert "rollout_func" in inspect.signature(GRPOTrainer.__init__).parameters
    generate = inspect.getsource(GRPOTrainer._generate)
    assert 'extra_fields.pop("env_mask"' in generate and "self.rollout_func(prompts, self)" \
        in generate, "rollout_func's call or its env_mask changed"
    loss_source = inspect.getsource(GRPOTrainer._compute_loss)
    for key in ("tool_mask", "old_per_token_logps", "ref_per_token_logps",
                "advantages.dim() == 1"):
        assert key in loss_source, f"_compute_loss no longer reads {key}"


def test_compute_loss_takes_per_token_advantages(tiny_model_folder, tmp_path):
    """TRL's loss with (B, T) advantages, ratio 1 and no KL is -mean_seq(mean_tok(A))."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_folder)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_folder)
    source = LoggedEpisodesStub()
    trainer = DoctorGRPOTrainer(model, _config(tmp_path), case_dataset(CASES), source,
                             processing_class=tokenizer)
    advantages = torch.tensor([[1.0, 2.0, 0.0], [-3.0, 0.0, 0.0]])
    inputs = {"prompt_ids": torch.tensor([[5, 6], [5, 6]]),
              "prompt_mask": torch.ones(2, 2, dtype=torch.long),
              "completion_ids": torch.tensor([[7, 8, 9], [7, 0, 0]]),
              "completion_mask": torch.tensor([[1, 1, 1], [1, 0, 0]]),
              "tool_mask": torch.tensor([[1, 1, 0], [1, 1, 1]]),
              "advantages": advantages, "num_items_in_batch": torch.tensor(3)}
    model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop
    loss = trainer._compute_loss(model, inputs)
    # sequence 1: tokens 1, 2 trained -> mean -(1 + 2) / 2; sequence 2: token 1 -> 3
    assert loss.item() == pytest.approx(((-1.5) + 3.0) / 2, abs=1e-5)


class LoggedEpisodesStub:
    off_policy = False

    def episodes(self, case_ids, trainer):
        raise AssertionError("not used")


@pytest.mark.slow
def test_two_steps_from_graph_rollouts(tiny_model_folder, tmp_path, sqlite_url):
    from promed_agents.backends import resolve_chat_model

    before = _weights(tiny_model_folder)
    with TraceStore(sqlite_url) as store:
        store.import_cases(CASES)
        run = store.create_experiment("grpo-run", "grpo")
        source = GraphRollouts({c.id: c for c in CASES}, max_questions=2, store=store,
                               experiment_id=run, doctor=ScriptedChatModel(responses=SCRIPT))
        result = train_grpo(f"local:{tiny_model_folder}", CASES, source, _config(tmp_path),
                            store=store, experiment_id=run)
        assert store.count_episodes(run) == 8  # 2 steps x 2 cases x 2 consultations
        recorded = next(store.iter_episodes(run))
        question = recorded.turns[0]
        assert question.token_rewards == pytest.approx([question.reward] * len(question.token_ids))
        assert recorded.total_reward == sum(t.reward for t in recorded.turns
                                            if t.role is Role.DOCTOR)
        steps = store.training_metrics(run)
        (checkpoint,) = store.list_checkpoints()
    assert result.steps == 2 and [s for s, _ in steps] == [1, 2]
    first = steps[0][1]
    # the script's answer C is right for the first case only; one question each
    assert first["episodes/accuracy"] == 0.5 and first["episodes/questions"] == 1.0
    assert first["episodes/sig"] > 0 and first["num_tokens_trained"] > 0
    # on-policy the ratio is 1, so the loss is about 0 but its gradient is not
    assert first["grad_norm"] > 0 and "entropy" in first
    lines = [json.loads(x) for x in (result.output_dir / LOG_FILE).read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == [1, 2]
    after = _weights(result.output_dir)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    receipt = json.loads((result.output_dir / RECEIPT).read_text())
    assert receipt["checkpoint_id"] == checkpoint.id and checkpoint.step == 2
    doctor = resolve_chat_model(f"local:{result.output_dir}")
    assert doctor.invoke("Case: cough.", max_tokens=3).response_metadata["completion_token_ids"]


def test_the_live_policy_samples_its_own_consultations(tiny_model_folder, tmp_path,
                                                       sqlite_url):
    with TraceStore(sqlite_url) as store:
        store.import_cases(CASES)
        run = store.create_experiment("live", "grpo")
        source = GraphRollouts({c.id: c for c in CASES[:1]}, max_questions=1,
                               max_new_tokens=6, store=store, experiment_id=run)
        train_grpo(f"local:{tiny_model_folder}", CASES[:1], source,
                   _config(tmp_path, max_steps=1, per_device_train_batch_size=2, beta=0.04),
                   store=store, experiment_id=run)
        episodes = list(store.iter_episodes(run))
        ((_, metrics),) = store.training_metrics(run)
    assert len(episodes) == 2
    assert metrics["kl"] == pytest.approx(0.0, abs=1e-6)  # no update yet: the reference
    for episode in episodes:
        assert episode.doctor_spec == "local:grpo-policy"
        doctor_turns = [t for t in episode.turns if t.role is Role.DOCTOR]
        assert doctor_turns and all(t.token_ids and t.logprobs for t in doctor_turns)
    assert "kl" in metrics and "episodes/untrained" in metrics


@pytest.mark.slow
def test_resume_restores_the_step_counter_and_optimizer(tiny_model_folder, tmp_path,
                                                        sqlite_url):
    from transformers import TrainerCallback

    class FirstStep(TrainerCallback):
        seen = None

        def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
            if self.seen is None:
                self.seen = (state.global_step, len(optimizer.state_dict()["state"]))

    with TraceStore(sqlite_url) as store:
        store.import_cases(CASES)
        run = store.create_experiment("resumed", "grpo")
        source = GraphRollouts({c.id: c for c in CASES}, max_questions=1, store=store,
                               experiment_id=run, doctor=ScriptedChatModel(responses=SCRIPT))
        config = _config(tmp_path, max_steps=1, save_strategy="steps", save_steps=1)
        first = train_grpo(f"local:{tiny_model_folder}", CASES, source, config, store=store,
                           experiment_id=run)
        # as if the run had gone on and been killed in step 2, while saving checkpoint-2:
        (first.output_dir / RECEIPT).unlink()
        (first.output_dir / "checkpoint-2").mkdir()
        (first.output_dir / "checkpoint-2" / "config.json").write_text("{")
        stale = next(store.iter_episodes(run)).model_copy(update={"training_step": 1})
        store.record_episodes([stale] * 3)
        store.save_training_metrics(run, 2, {"loss": 99.0})
        probe = FirstStep()
        second = train_grpo(f"local:{tiny_model_folder}", CASES, source,
                            _config(tmp_path, max_steps=2, save_strategy="steps",
                                    save_steps=1),
                            callbacks=[probe], store=store, experiment_id=run)
        # the half-written checkpoint is passed over, the killed step's records dropped
        assert second.resumed_from.endswith("checkpoint-1") and second.steps == 2
        assert probe.seen[0] == 1 and probe.seen[1] > 0  # step 1 done, Adam moments loaded
        steps = [e.training_step for e in store.iter_episodes(run)]
        assert sorted(steps) == [0] * 4 + [1] * 4  # as many as an uninterrupted run
        assert [s for s, m in store.training_metrics(run)] == [1, 2]
        assert store.training_metrics(run)[1][1]["loss"] != 99.0
        (checkpoint,) = store.list_checkpoints()  # registered twice, stored once
        assert checkpoint.step == 2
        with pytest.raises(TrainingError, match="already holds a trained model"):
            train_grpo(f"local:{tiny_model_folder}", CASES, source, config)


def _logged_consultations(store, model, tokenizer, run, shift=0.0):
    """Scripted consultations of CASES recorded with their true logprobs under ``model``
    (plus ``shift``), as if ``model`` had sampled them."""
    context = ConsultationContext(doctor=ScriptedChatModel(responses=SCRIPT), max_questions=2)
    episodes = asyncio.run(arun_consultations(CASES * 2, context, experiment_id=run))
    for episode in episodes:
        for turn in episode.turns:
            if turn.role is Role.DOCTOR:
                ids = torch.tensor([turn.prompt_token_ids + turn.token_ids])
                with torch.no_grad():
                    logits = model(ids).logits[0, len(turn.prompt_token_ids) - 1:-1]
                chosen = torch.log_softmax(logits.float(), -1).gather(
                    1, torch.tensor(turn.token_ids)[:, None])[:, 0]
                turn.logprobs = [v + shift for v in chosen.tolist()]
        episode.sampling = EXACT_SAMPLING  # as if sampled at temperature 1
        store.record_episode(episode)


@pytest.mark.slow  # test_grpo_command's offline run and the recorded-logprobs test stay fast
@pytest.mark.parametrize("shift, clipped", [(0.0, False), (-1.0, True)])
def test_training_from_logged_traces_is_importance_weighted(tiny_model_folder, tmp_path,
                                                            sqlite_url, shift, clipped):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_folder)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_folder)
    with TraceStore(sqlite_url) as store:
        store.import_cases(CASES)
        logged = store.create_experiment("logged", "consult")
        _logged_consultations(store, model, tokenizer, logged, shift)
        run = store.create_experiment("offline", "grpo")
        source = LoggedEpisodes(store, [logged])
        assert source.case_ids == sorted(c.id for c in CASES)
        result = train_grpo(f"local:{tiny_model_folder}", CASES, source,
                            _config(tmp_path, max_steps=1), store=store, experiment_id=run)
        ((_, metrics),) = store.training_metrics(run)
        assert store.count_episodes(run) == 0  # nothing new sampled
    assert result.metrics["off_policy"] and metrics["grad_norm"] > 0
    # recorded = the model's logprobs: every ratio is 1, nothing clipped; recorded 1 nat
    # lower: ratios e > 1 + epsilon, clipped wherever the advantage is positive
    assert (metrics["clip_ratio/high_mean"] > 0) == clipped
    assert metrics["clip_ratio/low_mean"] == 0.0


@pytest.mark.slow
def test_kl_to_the_starting_model_grows_once_an_update_changes_the_policy(tiny_model_folder,
                                                                         tmp_path):
    source = GraphRollouts({c.id: c for c in CASES}, max_questions=1,
                           doctor=ScriptedChatModel(responses=SCRIPT))
    result = train_grpo(f"local:{tiny_model_folder}", CASES, source,
                        _config(tmp_path, max_steps=2, beta=0.04, learning_rate=5e-2))
    lines = [json.loads(x) for x in (result.output_dir / LOG_FILE).read_text().splitlines()]
    first, second = [x for x in lines if "loss" in x]
    assert first["grad_norm"] > 0
    assert first["kl"] == pytest.approx(0.0, abs=1e-6) and second["kl"] > 1e-6


@pytest.mark.slow
def test_lora_with_kl_and_gradient_accumulation(tiny_model_folder, tmp_path):
    """LoRA: the reference is the model with the adapter off; the adapter is merged on
    save. Two accumulation steps split one generation batch of two cases."""
    from transformers import AutoModelForCausalLM

    source = GraphRollouts({c.id: c for c in CASES}, max_questions=1,
                           doctor=ScriptedChatModel(responses=SCRIPT))
    config = _config(tmp_path, max_steps=2, beta=0.04, use_lora=True, learning_rate=5e-2,
                     per_device_train_batch_size=2, gradient_accumulation_steps=2,
                     lora_target_modules=["q_proj", "v_proj"])
    result = train_grpo(f"local:{tiny_model_folder}", CASES, source, config)
    lines = [json.loads(x) for x in (result.output_dir / LOG_FILE).read_text().splitlines()]
    first, second = [x for x in lines if "loss" in x]
    assert first["step"] == 1 and first["grad_norm"] > 0
    # the reference is the adapter switched off: the same model until the adapter moves
    assert first["kl"] == pytest.approx(0.0, abs=1e-6) and second["kl"] > 1e-6
    merged = AutoModelForCausalLM.from_pretrained(result.output_dir)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    before = _weights(tiny_model_folder)
    after = merged.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed and all("q_proj" in k or "v_proj" in k for k in changed)



def test_recorded_logprobs_match_the_trainers(tiny_model_folder, tmp_path):
    """What the local backend records while the policy samples is what the trainer
    computes for the same tokens (temperature 1), so logged traces are exact old logprobs."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_folder)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_folder)
    source = GraphRollouts({c.id: c for c in CASES[:1]}, max_questions=1, max_new_tokens=6)
    trainer = DoctorGRPOTrainer(model, _config(tmp_path, temperature=1.0), case_dataset(CASES),
                             source, processing_class=tokenizer)
    (episode,) = source.episodes([CASES[0].id], trainer)
    for turn in [t for t in episode.turns if t.role is Role.DOCTOR]:
        ids = torch.tensor([turn.prompt_token_ids + turn.token_ids])
        with torch.no_grad():
            logps = trainer._get_per_token_logps_and_entropies(
                trainer.model, ids, torch.ones_like(ids), len(turn.token_ids))[0][0]
        assert logps.tolist() == pytest.approx(turn.logprobs, abs=1e-4)


@pytest.fixture
def trl_vllm_on_loopback(monkeypatch):
    """TRL's vLLM server mode with its client's NCCL transport replaced (no vLLM here)."""
    from fake_vllm import LoopbackVLLMClient

    monkeypatch.setattr("trl.generation.vllm_generation.is_vllm_available", lambda *a, **k: True)
    monkeypatch.setattr("trl.generation.vllm_client.is_vllm_available", lambda *a, **k: True)
    monkeypatch.setattr("trl.generation.vllm_generation.VLLMClient", LoopbackVLLMClient)


@pytest.mark.slow
def test_a_served_doctor_is_synced_each_step_and_its_ratio_reaches_the_loss(
        tiny_model_folder, tmp_path, trl_vllm_on_loopback):
    """use_vllm with a served doctor: TRL syncs the server's weights before each step's
    rollouts, and the importance-sampling ratio TRL's loss multiplies in is supplied (it
    raised KeyError); with the server in sync the ratio is 1 on every trained token."""
    from fake_vllm import FakeVLLMServer, serve_vllm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from promed_agents.backends import resolve_chat_model

    server = FakeVLLMServer(AutoModelForCausalLM.from_pretrained(tiny_model_folder),
                            AutoTokenizer.from_pretrained(tiny_model_folder), script=SCRIPT)
    start = server.weights()
    with serve_vllm(server) as url:
        doctor = resolve_chat_model(f"vllm:served-doctor@{url}/v1")
        source = GraphRollouts({c.id: c for c in CASES}, max_questions=1, doctor=doctor)
        config = _config(tmp_path, max_steps=2, temperature=1.0, learning_rate=5e-2,
                         use_vllm=True, vllm_mode="server", vllm_server_base_url=url,
                         vllm_importance_sampling_mode="token_truncate")
        result = train_grpo(f"local:{tiny_model_folder}", CASES, source, config)
    lines = [json.loads(x) for x in (result.output_dir / LOG_FILE).read_text().splitlines()]
    first, second = [x for x in lines if "loss" in x]
    assert first["grad_norm"] > 0 and first["num_tokens_trained"] > 0
    assert server.calls.count("/update_weights") == 2  # before step 1 and before step 2
    assert server.calls.index("/init_weight_transfer_engine") < server.calls.index(
        "/update_weights") < server.calls.index("/v1/chat/completions")
    moved = server.weights()
    assert any(not torch.equal(start[k], moved[k]) for k in start)  # step 1's weights
    assert server.requests[0]["return_tokens_as_token_ids"] is True
    for step in (first, second):  # synced: the server's logprobs are the policy's
        assert step["sampling/importance_sampling_ratio/mean"] == pytest.approx(1.0, abs=1e-3)
        assert step["sampling/importance_sampling_ratio/min"] > 0.99


def test_a_served_doctor_without_weight_sync_is_refused(tiny_model_folder, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from promed_agents.backends import resolve_chat_model

    served = resolve_chat_model("vllm:policy@http://127.0.0.1:9/v1")  # never called
    source = GraphRollouts({c.id: c for c in CASES}, doctor=served)
    with pytest.raises(TrainingError, match="nothing keeps in sync"):
        DoctorGRPOTrainer(AutoModelForCausalLM.from_pretrained(tiny_model_folder),
                       _config(tmp_path), case_dataset(CASES), source,
                       processing_class=AutoTokenizer.from_pretrained(tiny_model_folder))


def test_training_from_logged_traces_leaves_the_callers_config_as_it_was(tiny_model_folder,
                                                                        tmp_path):
    """Logged logprobs are at temperature 1, so the trainer samples nothing and scores at
    1; the config it was given keeps the temperature the caller set."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    class Logged:
        off_policy, doctor = True, None

        def episodes(self, case_ids, trainer):
            raise AssertionError("not called")

    config = _config(tmp_path, temperature=0.7)
    trainer = DoctorGRPOTrainer(AutoModelForCausalLM.from_pretrained(tiny_model_folder), config,
                                case_dataset(CASES), Logged(),
                                processing_class=AutoTokenizer.from_pretrained(tiny_model_folder))
    assert config.temperature == 0.7 and trainer.args.temperature == 1.0
    assert trainer.temperature == 1.0
