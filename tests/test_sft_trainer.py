"""SFT of the doctor: TRL's SFTTrainer on exported samples, resumable, usable as local:DIR."""

from __future__ import annotations

import json

import pytest

from promed_agents.errors import TrainingError
from promed_agents.storage import TraceStore, TrainingSample
from promed_agents.trainers.sft_trainer import DoctorSFTConfig, doctor_sft_trainer, train_sft
from promed_agents.trainers.training_output import RECEIPT


def _samples(tokenizer) -> list[TrainingSample]:
    samples = []
    for question in ("question: Do you have a fever?", "answer: B"):
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": "Case: cough for a week."}], add_generation_prompt=True)
        prompt = list(prompt["input_ids"] if hasattr(prompt, "keys") else prompt)
        completion = tokenizer(question + "\n", add_special_tokens=False)["input_ids"]
        samples.append(TrainingSample(prompt + completion,
                                      [0] * len(prompt) + [1] * len(completion)))
    return samples


def _config(tmp_path, **kwargs) -> DoctorSFTConfig:
    defaults = dict(output_dir=str(tmp_path / "sft"), max_steps=8, learning_rate=2e-3,
                    per_device_train_batch_size=2, logging_steps=1, save_strategy="no",
                    report_to="none", use_cpu=True, seed=0)
    return DoctorSFTConfig(**{**defaults, **kwargs})


def test_loss_falls_and_the_output_is_a_usable_doctor(tiny_model_folder, tmp_path, sqlite_url):
    from transformers import AutoTokenizer

    from promed_agents.backends import resolve_chat_model

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_folder)
    with TraceStore(sqlite_url) as store:
        result = train_sft(f"local:{tiny_model_folder}", _samples(tokenizer), _config(tmp_path),
                           store=store)
        (checkpoint,) = store.list_checkpoints()
    assert result.steps == 8 and len(result.losses) == 8
    assert result.losses[-1] < result.losses[0] - 1.0  # a fixed batch is learnt
    assert checkpoint.step == 8 and checkpoint.path == str(result.output_dir.resolve())
    receipt = json.loads((result.output_dir / RECEIPT).read_text())
    assert receipt["checkpoint_id"] == checkpoint.id and receipt["trained_tokens"] > 0
    doctor = resolve_chat_model(f"local:{result.output_dir}")
    reply = doctor.invoke("Case: cough for a week.", max_tokens=4)
    assert reply.response_metadata["completion_token_ids"]


def test_the_labels_trl_builds_are_ignored_exactly_outside_trained_turns(tiny_model_folder,
                                                                        tmp_path):
    """The batches TRL's collator builds from exported samples: labels are the token ids
    where the doctor's well-formed turns are (the question; the right answer) and -100
    everywhere else (prompt, patient reply, the wrong answer, padding)."""
    from promed_agents.trace import EpisodeRecord, Role, TurnKind, TurnRecord
    from promed_agents.trainers.sft_dataset import episode_samples

    def doctor(index, prompt, completion, kind):
        return TurnRecord(index=index, role=Role.DOCTOR, text="t", kind=kind,
                          prompt_token_ids=prompt, token_ids=completion,
                          logprobs=[-0.5] * len(completion))

    def consultation(correct):
        return EpisodeRecord(id=1, case_id="c", graph="mcts", doctor_spec="local:x",
                             correct=correct, turns=[
            doctor(0, [11, 12, 13], [21, 22], TurnKind.QUESTION),
            TurnRecord(index=1, role=Role.PATIENT, text="I don't know.", kind=TurnKind.REPLY),
            doctor(2, [11, 12, 13, 21, 22, 31, 32], [41, 42, 43], TurnKind.ANSWER)])

    samples = episode_samples(consultation(True)) + episode_samples(consultation(False))
    trainer, _ = doctor_sft_trainer(f"local:{tiny_model_folder}", samples,
                                    _config(tmp_path, per_device_train_batch_size=2))
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["input_ids"][:, :10].tolist() == [[11, 12, 13, 21, 22, 31, 32, 41, 42, 43]] * 2
    labels = sorted(row[:10] for row in batch["labels"].tolist())
    ignored = [-100] * 3
    assert labels == sorted([ignored + [21, 22, -100, -100, 41, 42, 43],     # right answer
                             ignored + [21, 22, -100, -100, -100, -100, -100]])  # wrong
    assert (batch["labels"][:, 10:] == -100).all()  # padding, if any


def test_only_masked_tokens_are_trained(tiny_model_folder, tmp_path):
    """With every mask 0 there is nothing to learn: a clear error, no training."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_folder)
    unmasked = [TrainingSample(s.input_ids, [0] * len(s.input_ids))
                for s in _samples(tokenizer)]
    with pytest.raises(TrainingError, match="no trained tokens"):
        train_sft(f"local:{tiny_model_folder}", unmasked, _config(tmp_path))
    with pytest.raises(TrainingError, match="empty"):
        train_sft(f"local:{tiny_model_folder}", [], _config(tmp_path))


def test_lora_resume_and_refusal_to_overwrite(tiny_model_folder, tmp_path):
    from transformers import AutoTokenizer, TrainerCallback

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_folder)
    samples = _samples(tokenizer)
    first = _config(tmp_path, max_steps=2, save_strategy="steps", save_steps=2, use_lora=True,
                    lora_r=4)
    result = train_sft(f"local:{tiny_model_folder}", samples, first)
    assert result.resumed_from is None and result.steps == 2
    assert (result.output_dir / "config.json").exists()  # merged, a plain model folder
    assert not (result.output_dir / "adapter_config.json").exists()
    with pytest.raises(TrainingError, match="already holds a trained model"):
        train_sft(f"local:{tiny_model_folder}", samples, first)
    # An interrupted run (checkpoint written, no receipt) resumes from its checkpoint.
    (result.output_dir / RECEIPT).unlink()
    longer = _config(tmp_path, max_steps=4, save_strategy="steps", save_steps=2,
                     use_lora=True, lora_r=4)
    steps_run = []

    class Count(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            steps_run.append(state.global_step)

    resumed = train_sft(f"local:{tiny_model_folder}", samples, longer, callbacks=[Count()])
    assert steps_run == [3, 4]
    assert resumed.resumed_from.endswith("checkpoint-2") and resumed.steps == 4
    # The first two steps come from the checkpoint's history, not from running again.
    assert len(resumed.losses) == 4 and resumed.losses[:2] == result.losses


def _all_wrong_search(tiny_model_folder, sqlite_url):
    """A search whose every final answer is wrong: its case, the doctor's spec, its SFT
    samples and the consultation context."""
    import asyncio

    from langgraph.checkpoint.memory import InMemorySaver

    from promed_agents.agents.doctor import FINAL_REQUEST, doctor_sampling
    from promed_agents.backends import resolve_chat_model
    from promed_agents.backends.chat_tokens import ChatTokens
    from promed_agents.backends.scripted_chat_model import ScriptedChatModel
    from promed_agents.case import Case
    from promed_agents.graphs import ConsultationContext
    from promed_agents.trainers.mcts_search import ConsultationEnvironment, MCTSConfig, run_mcts
    from promed_agents.trainers.sft_dataset import ExportConfig, search_samples

    case = Case(id="t-wrong", source="t", question="Which diagnosis?",
                options={"A": "Shingles", "B": "Migraine", "C": "Gout"}, answer=["B"],
                facts=["Patient is a 30-year-old woman.", "Patient is a teacher.",
                       "Patient has a throbbing headache on one side.",
                       "Patient sees flashing lights before the pain."])

    def wrong_proposer(messages) -> str:  # asks a hidden fact, then answers wrong
        if any(m.content == FINAL_REQUEST for m in messages):
            return "answer: C"
        return f"question: {case.facts[2]}"

    spec = f"local:{tiny_model_folder}"

    def context(doctor) -> ConsultationContext:
        return ConsultationContext(doctor=doctor, max_questions=1, doctor_kwargs=doctor_sampling(
            doctor, max_new_tokens=12, temperature=0.0))

    with TraceStore(sqlite_url) as store:
        store.import_cases([case])
        experiment = store.create_experiment("wrong", "mcts")
        config = MCTSConfig(iterations=2, width=2)
        env = ConsultationEnvironment(
            context(resolve_chat_model(spec)), InMemorySaver(), config,
            experiment_id=experiment, proposer=ScriptedChatModel(responder=wrong_proposer))
        asyncio.run(run_mcts([case], env, store, experiment, config))
        searched = list(store.iter_episodes(experiment))
        assert searched and all(e.final_answer == ["C"] for e in searched)
        samples, _ = search_samples(store, experiment, ExportConfig(),
                                    ChatTokens.for_model(spec))
    return case, spec, samples, context


def test_paths_whose_answers_were_all_wrong_teach_the_correct_answer(
        tiny_model_folder, sqlite_url):
    """A search whose every final answer is wrong still trains an answer turn: the case's
    correct one, in the last taught tokens of every sample."""
    from transformers import AutoTokenizer

    _, _, samples, _ = _all_wrong_search(tiny_model_folder, sqlite_url)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_folder)
    assert samples
    for sample in samples:
        assert sample.assistant_masks[-1] == 1
        taught = [t for t, m in zip(sample.input_ids, sample.assistant_masks, strict=True) if m]
        text = tokenizer.decode(taught)
        assert "answer: B" in text and "answer: C" not in text, text


@pytest.mark.slow
def test_sft_on_paths_whose_answers_were_all_wrong_teaches_the_correct_answer(
        tiny_model_folder, tmp_path, sqlite_url):
    """After SFT on a search whose every answer was wrong, the doctor answers the final
    request with the case's correct letter."""
    import asyncio

    from promed_agents.agents.doctor import parse_doctor_turn
    from promed_agents.backends import resolve_chat_model
    from promed_agents.graphs import arun_consultations
    from promed_agents.trace import TurnKind

    case, spec, samples, context = _all_wrong_search(tiny_model_folder, sqlite_url)
    result = train_sft(spec, samples, _config(tmp_path, max_steps=120, learning_rate=2e-2,
                                              per_device_train_batch_size=1))
    trained = resolve_chat_model(f"local:{result.output_dir}")
    (episode,) = asyncio.run(arun_consultations([case], context(trained)))
    doctor_turns = [t for t in episode.turns if t.role.value == "doctor"]
    final = parse_doctor_turn(doctor_turns[-1].text, case)  # the reply to the final request
    assert doctor_turns[-1].text.startswith("answer: B")
    assert final.kind is TurnKind.ANSWER and final.letters == ("B",)
    assert episode.status.value == "completed" and episode.final_answer == ["B"]
