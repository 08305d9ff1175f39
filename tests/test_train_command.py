"""`promed train sft`: from a stored search to a doctor checkpoint, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promed_agents.storage import TraceStore

from helpers import FAKE_DOCTOR, one_line, run


def test_sft_from_a_search_gives_a_usable_doctor(sqlite_url, tmp_path, tiny_model_folder):
    searched = run("mcts", "--experiment", "e", "--cases", "2", "--iterations", "2",
                   "--max-questions", "2", "--doctor", FAKE_DOCTOR, "--proposer", "none",
                   "--correct-bonus", "2", "--db", sqlite_url)
    assert searched.exit_code == 0, searched.output
    out = tmp_path / "doctor"
    args = ["train", "sft", "--from", "e", "--output", out, "--model",
            f"local:{tiny_model_folder}", "--max-steps", "2", "--batch-size", "2",
            "--learning-rate", "1e-3", "--db", sqlite_url]
    trained = run(*args)
    assert trained.exit_code == 0, trained.output
    # imedqa-1's answer A is right (+2); imedqa-0's path earns nothing, so gives no sample.
    assert "e (search): 1 sample(s) from 1 path(s) of 2 case(s)" in trained.output
    assert "training dataset e-sft: 1 sample(s)" in trained.output
    assert "trained 2 steps" in trained.output and f"local:{out}" in trained.output
    rows = [json.loads(line) for line in (out / "sft_data.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["case_id"] == "imedqa-1" and rows[0]["weight"] >= 2
    assert 0 < sum(rows[0]["assistant_masks"]) < len(rows[0]["input_ids"])
    with TraceStore(sqlite_url) as store:
        dataset_id, samples = store.load_training_dataset("e-sft")
        (checkpoint,) = store.list_checkpoints(dataset_id)
    assert checkpoint.step == 2 and checkpoint.base_model_spec == f"local:{tiny_model_folder}"
    consulted = run("consult", "--cases", "1", "--doctor", f"local:{out}", "--max-questions",
                    "1", "--max-new-tokens", "4", "--db", sqlite_url)
    assert consulted.exit_code == 0, consulted.output
    again = run(*args)  # the stored dataset is reused; the finished run is not redone
    assert again.exit_code == 0 and "is already finished (2 steps)" in again.output
    assert "e-sft: 1 sample(s) (stored)" in again.output
    with TraceStore(sqlite_url) as store:
        assert len(store.list_checkpoints()) == 1
    other = run(*args, "--dataset", "e-other")  # another dataset into the finished folder
    assert other.exit_code == 1 and "already holds a trained model" in other.stderr


@pytest.mark.slow
def test_the_readme_stage_one_flow_teaches_on_four_cases_with_no_extra_flags(tmp_path):
    """docs/reference.md, "MCTS and SFT": search, SFT, consult with the checkpoint, on the embedded
    model and a fresh store, each with its defaults only."""
    db = f"sqlite:///{tmp_path / 'fresh.db'}"
    searched = run("mcts", "--experiment", "search", "--cases", "4", "--db", db)
    assert searched.exit_code == 0, searched.output
    out = tmp_path / "sft-doctor"
    trained = run("train", "sft", "--from", "search", "--output", out, "--db", db)
    assert trained.exit_code == 0, trained.output
    assert "training dataset search-sft:" in trained.output
    consulted = run("consult", "--cases", "4", "--doctor", f"local:{out}", "--experiment",
                    "after", "--db", db)
    assert consulted.exit_code == 0, consulted.output
    with TraceStore(db) as store:
        _, samples = store.load_training_dataset("search-sft")
        episodes = list(store.iter_episodes(store.experiment_id("after")))
    assert samples and all(s.assistant_masks[-1] == 1 for s in samples)  # answers taught
    assert len(episodes) == 4 and all(e.status.value == "completed" for e in episodes)
    assert sum(e.num_questions for e in episodes) > 0


def test_checkpoints_are_written_every_save_steps_not_every_epoch(sqlite_url, tmp_path,
                                                                 monkeypatch):
    """A few samples make an epoch a step or two; a checkpoint (weights and optimizer
    state) each epoch would cost more than the steps."""
    from promed_agents.trainers import sft_trainer

    seen = []

    def fake_train(ref, samples, config, **kwargs):
        seen.append((config.save_strategy, config.save_steps))
        return sft_trainer.SFTResult(Path(config.output_dir), 1, [1.0], None, None)

    monkeypatch.setattr(sft_trainer, "train_sft", fake_train)
    assert run("mcts", "--experiment", "e", "--cases", "2", "--iterations", "2",
               "--max-questions", "2", "--doctor", FAKE_DOCTOR, "--proposer", "none",
               "--correct-bonus", "2", "--db", sqlite_url).exit_code == 0
    for extra, expected in (((), 10), (("--save-steps", "3"), 3)):
        out = tmp_path / f"doctor-{expected}"
        trained = run("train", "sft", "--from", "e", "--output", out, "--model",
                      "local:smollm2", *extra, "--db", sqlite_url)
        assert trained.exit_code == 0, trained.output
    assert [(str(s), n) for s, n in seen] == [("SaveStrategy.STEPS", 10),
                                            ("SaveStrategy.STEPS", 3)]


def test_bad_sources_and_models_are_one_line_errors(sqlite_url, tmp_path):
    missing = run("train", "sft", "--from", "nope", "--output", tmp_path / "x", "--db",
                  sqlite_url)
    assert missing.exit_code == 1 and "no experiment named 'nope'" in missing.stderr
    run("mcts", "--experiment", "e", "--cases", "1", "--iterations", "1", "--max-questions",
        "1", "--doctor", FAKE_DOCTOR, "--proposer", "none", "--db", sqlite_url)
    remote = run("train", "sft", "--from", "e", "--output", tmp_path / "x", "--db",
                 sqlite_url)  # the search's doctor is a fake model, not a local one
    assert remote.exit_code == 1
    assert "is not a local model to fine-tune; give the model to train with --model" in \
        remote.stderr
    run("consult", "--cases", "1", "--doctor", "fake:answer: A", "--experiment", "c",
        "--db", sqlite_url)
    logged = run("train", "sft", "--from", "c", "--output", tmp_path / "x", "--db",
                 sqlite_url)  # a logged run is taken; its doctor was a fake model
    assert logged.exit_code == 1 and "not a local model to fine-tune" in logged.stderr
    mixed = run("train", "sft", "--from", "c,e", "--output", tmp_path / "x", "--db",
                sqlite_url)
    assert mixed.exit_code == 1 and "different doctors; give the base model" in mixed.stderr
    run("mcts", "--experiment", "nothing", "--case-ids", "imedqa-1", "--iterations", "1",
        "--max-questions", "1", "--doctor", "fake:hello", "--proposer", "none", "--db",
        sqlite_url)  # no format
    empty = run("train", "sft", "--from", "nothing", "--model", "local:smollm2", "--output",
                tmp_path / "x", "--db", sqlite_url)
    assert empty.exit_code == 1 and "gives nothing to train on" in empty.stderr


def test_sft_from_a_logged_run_says_what_each_filter_kept(sqlite_url, tmp_path,
                                                          tiny_model_folder):
    doctor = f"local:{tiny_model_folder}"
    consulted = run("consult", "--cases", "3", "--doctor", doctor, "--max-questions", "1",
                    "--max-new-tokens", "6", "--experiment", "c", "--db", sqlite_url)
    assert consulted.exit_code == 0, consulted.output
    with TraceStore(sqlite_url) as store:
        right = sum(e.correct is True for e in store.iter_episodes(store.experiment_id("c")))
    refused = run("train", "sft", "--from", "c", "--correct-only", "--output",
                  tmp_path / "none", "--db", sqlite_url)
    if right == 0:  # the random tiny doctor is rarely right: nothing passes
        assert refused.exit_code == 1 and "gives nothing to train on" in refused.stderr
        assert "c (consult): consultations 3, finished 3, correct only 0" in refused.output
    trained = run("train", "sft", "--from", "c", "--max-asked", "1", "--max-steps", "1",
                  "--batch-size", "1", "--output", tmp_path / "sft", "--db", sqlite_url)
    assert trained.exit_code == 0, trained.output + trained.stderr
    assert "c (consult): consultations 3, finished 3, max asked 3, samples 3" in \
        trained.output  # the run's doctor is the base model; each sample ends answered
    rows = [json.loads(line) for line in (tmp_path / "sft" / "sft_data.jsonl").open()]
    assert {r["case_id"] for r in rows} == {"imedqa-0", "imedqa-1", "imedqa-2"}
    assert all(r["experiment_id"] is not None and r["episode_id"] for r in rows)


def test_a_consult_run_of_one_doctor_trains_a_doctor_with_another_vocabulary(
        sqlite_url, tmp_path, tiny_model_folder, other_vocab_model_folder):
    from transformers import AutoTokenizer

    consulted = run("consult", "--cases", "3", "--doctor", f"local:{tiny_model_folder}",
                    "--max-questions", "1", "--max-new-tokens", "6", "--experiment", "c",
                    "--db", sqlite_url)
    assert consulted.exit_code == 0, consulted.output
    out = tmp_path / "student"
    trained = run("train", "sft", "--from", "c", "--model", f"local:{other_vocab_model_folder}",
                  "--max-asked", "1", "--max-steps", "2", "--batch-size", "1",
                  "--output", out, "--db", sqlite_url)
    assert trained.exit_code == 0, trained.output + trained.stderr
    assert "samples 3, rendered in the student's tokens 3" in trained.output
    assert "trained 2 steps" in trained.output
    student = AutoTokenizer.from_pretrained(other_vocab_model_folder)
    with TraceStore(sqlite_url) as store:
        answers = {c: store.get_case(c).answer for c in ("imedqa-0", "imedqa-1", "imedqa-2")}
    for line in (out / "sft_data.jsonl").read_text().splitlines():
        row = json.loads(line)
        assert max(row["input_ids"]) < len(student) and row["rendered"]
        assert student.decode(row["input_ids"]).startswith("<|system|>\nYou are a doctor")
        taught = [t for t, m in zip(row["input_ids"], row["assistant_masks"], strict=True) if m]
        assert student.decode(taught).endswith(
            f"answer: {', '.join(answers[row['case_id']])}</s>")
    # the trained student is a doctor like any other
    again = run("consult", "--cases", "1", "--doctor", f"local:{out}", "--max-questions", "1",
                "--max-new-tokens", "4", "--db", sqlite_url)
    assert again.exit_code == 0, again.output


def test_a_stored_dataset_is_reused_only_for_the_model_and_filters_it_was_made_for(
        sqlite_url, tmp_path, tiny_model_folder, other_vocab_model_folder):
    assert run("consult", "--cases", "2", "--doctor", "bank:fixed", "--max-questions", "2",
               "--experiment", "c", "--db", sqlite_url).exit_code == 0
    first = run("train", "sft", "--from", "c", "--model", f"local:{tiny_model_folder}",
                "--max-steps", "1", "--output", tmp_path / "a", "--db", sqlite_url)
    assert first.exit_code == 0, first.output + first.stderr
    for other, named in ((("--model", f"local:{other_vocab_model_folder}"), "model"),
                         (("--model", f"local:{tiny_model_folder}", "--max-asked", "1"),
                          "max_asked None, not 1")):
        refused = one_line(run("train", "sft", "--from", "c", *other, "--max-steps", "1",
                               "--output", tmp_path / "b", "--db", sqlite_url))
        assert "training dataset c-sft was made with other settings (" in refused
        assert named in refused and "give --dataset NAME" in refused
        assert not (tmp_path / "b").exists()
    again = run("train", "sft", "--from", "c", "--model", f"local:{other_vocab_model_folder}",
                "--dataset", "c-other", "--max-steps", "1", "--output", tmp_path / "b",
                "--db", sqlite_url)
    assert again.exit_code == 0 and "training dataset c-other: 2 sample(s)" in again.output
    assert "give the model to train with --model" in one_line(run(
        "train", "sft", "--from", "c", "--output", tmp_path / "x", "--db", sqlite_url))


def test_sft_on_open_ended_consultations_trains_a_doctor_that_orders_tests(
        sqlite_url, tmp_path, tiny_model_folder):
    """bank:fixed's AgentClinic consultations (questions and test orders) train a tiny
    doctor with promed train sft; its samples end with the cases' diagnoses, and it
    consults open-ended cases."""
    from promed_agents import agentclinic_sample_path

    assert run("cases", "import", agentclinic_sample_path(), "--db", sqlite_url).exit_code == 0
    consulted = run("consult", "--cases", "3", "--doctor", "bank:fixed", "--policy", "initial",
                    "--max-questions", "4", "--experiment", "bank", "--db", sqlite_url)
    assert consulted.exit_code == 0, consulted.output
    trained = run("train", "sft", "--from", "bank", "--model", f"local:{tiny_model_folder}",
                  "--max-steps", "1", "--batch-size", "1", "--output", tmp_path / "sft",
                  "--db", sqlite_url)
    assert trained.exit_code == 0, trained.output + trained.stderr
    assert "samples 3, rendered in the student's tokens 3" in " ".join(trained.output.split())
    rows = [json.loads(line) for line in (tmp_path / "sft" / "sft_data.jsonl").open()]
    with TraceStore(sqlite_url) as store:
        diagnoses = {c.id: c.diagnosis for c in store.list_cases()}
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_folder)
    for row in rows:
        taught = tokenizer.decode([t for t, m in zip(row["input_ids"], row["assistant_masks"],
                                                     strict=True) if m])
        assert "test: Vital signs" in taught
        assert taught.endswith(f"diagnosis: {diagnoses[row['case_id']]}<|im_end|>")
    again = run("consult", "--cases", "1", "--doctor", f"local:{tmp_path / 'sft'}",
                "--policy", "initial", "--max-questions", "1", "--max-new-tokens", "4",
                "--db", sqlite_url)
    assert again.exit_code == 0, again.output + again.stderr
