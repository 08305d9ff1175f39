"""SFT samples from search paths: exact token ids, only well-formed doctor turns trained."""

from __future__ import annotations

import pytest

from promed_agents.errors import TrainingError
from promed_agents.search_tree import SearchNode
from promed_agents.trace import EpisodeRecord, EpisodeStatus, Role, TurnKind, TurnRecord
from promed_agents.trainers.sft_dataset import (
    EpisodeFilter,
    ExportConfig,
    chosen_leaves,
    episode_samples,
    export_samples,
    filter_episodes,
)


def doctor(index, prompt, completion, kind):
    return TurnRecord(index=index, role=Role.DOCTOR, text=f"turn {index}", kind=kind,
                      prompt_token_ids=prompt, token_ids=completion,
                      logprobs=[-0.5] * len(completion))


def patient(index):
    return TurnRecord(index=index, role=Role.PATIENT, text="I don't know.", kind=TurnKind.REPLY)


def episode(second_prompt=(1, 2, 3, 10, 11, 20, 21), correct=True):
    return EpisodeRecord(id=7, case_id="c", graph="mcts", doctor_spec="local:x",
                         correct=correct, turns=[
        doctor(0, [1, 2, 3], [10, 11], TurnKind.QUESTION), patient(1),
        doctor(2, list(second_prompt), [12], TurnKind.INVALID),
        doctor(3, list(second_prompt) + [12, 22], [13, 14], TurnKind.ANSWER)])


def test_a_stitched_consultation_is_one_sample_masking_all_but_valid_doctor_turns():
    (sample,) = episode_samples(episode(), weight=2.5)
    assert sample.input_ids == [1, 2, 3, 10, 11, 20, 21, 12, 22, 13, 14]
    assert sample.assistant_masks == [0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1]  # invalid turn 12: 0
    assert sample.episode_id == 7 and sample.weight == 2.5
    assert sample.extra == {"case_id": "c"}
    assert [m["role"] for m in sample.messages] == ["assistant", "user", "assistant",
                                                    "assistant"]


def test_a_wrong_final_answer_is_context_only_its_questions_are_trained():
    (sample,) = episode_samples(episode(correct=False))
    assert sample.input_ids == [1, 2, 3, 10, 11, 20, 21, 12, 22, 13, 14]
    assert sample.assistant_masks == [0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0]  # answer 13, 14: 0
    samples = episode_samples(episode(second_prompt=(1, 2, 99, 10, 11, 20, 21),
                                      correct=False))
    assert [s.extra["turn"] for s in samples] == [0]  # the question only
    unknown = episode(correct=None)  # no verdict: the answer is not trained either
    assert episode_samples(unknown)[0].assistant_masks[-2:] == [0, 0]


GOLD = [30, 31, 2]  # "answer: <correct letter>" and the end-of-turn token, say


def test_a_wrong_final_answer_is_replaced_by_the_correct_one_and_trained():
    (sample,) = episode_samples(episode(correct=False), answer_ids=GOLD)
    assert sample.extra == {"case_id": "c", "answer_replaced": True}
    assert sample.input_ids == [1, 2, 3, 10, 11, 20, 21, 12, 22, 30, 31, 2]
    assert sample.assistant_masks == [0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 1]
    # unstitchable turns: the answer is its own sample, with the correct answer
    samples = episode_samples(episode(second_prompt=(1, 2, 99, 10, 11, 20, 21),
                                      correct=False), answer_ids=GOLD)
    assert [s.extra["turn"] for s in samples] == [0, 2]
    assert samples[1].input_ids[-3:] == GOLD and samples[1].assistant_masks[-3:] == [1, 1, 1]


def test_a_right_well_formed_answer_keeps_its_own_tokens():
    right = episode()
    right.turns[3] = right.turns[3].model_copy(update={"format_score": 1.0})
    (sample,) = episode_samples(right, answer_ids=GOLD)
    assert sample.input_ids[-2:] == [13, 14] and sample.assistant_masks[-2:] == [1, 1]
    half = episode()  # right, but the marker was not first (format 0.5): the clean form
    half.turns[3] = half.turns[3].model_copy(update={"format_score": 0.5})
    assert episode_samples(half, answer_ids=GOLD)[0].input_ids[-3:] == GOLD


def test_a_junk_turn_or_a_question_at_the_final_request_is_never_trained():
    ran_out = episode(correct=False)
    ran_out.status = EpisodeStatus.TIMEOUT
    ran_out.turns[3] = ran_out.turns[3].model_copy(update={
        "kind": TurnKind.INVALID, "text": "user will not be able to give information"})
    (sample,) = episode_samples(ran_out, answer_ids=GOLD)
    assert sample.input_ids[-3:] == GOLD and sample.assistant_masks[-3:] == [1, 1, 1]
    assert 13 not in sample.input_ids  # the junk is gone, not merely masked
    failed = episode(correct=None)  # a consultation cut short: its last turn is not final
    failed.status = EpisodeStatus.FAILED
    failed.failure_reason = "backend down"
    assert episode_samples(failed, answer_ids=GOLD)[0].assistant_masks[-2:] == [0, 0]


def test_repeated_and_uninformative_questions_are_context_only():
    repeated = episode()
    repeated.turns = [
        doctor(0, [1, 2, 3], [10, 11], TurnKind.QUESTION), patient(1),
        doctor(2, [1, 2, 3, 10, 11, 20, 21], [15, 16], TurnKind.QUESTION), patient(3),
        doctor(4, [1, 2, 3, 10, 11, 20, 21, 15, 16, 22], [13, 14], TurnKind.ANSWER)]
    repeated.turns[2] = repeated.turns[2].model_copy(update={"text": "turn 0?"})
    (sample,) = episode_samples(repeated)
    assert sample.assistant_masks == [0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1]
    repeated.turns[0] = repeated.turns[0].model_copy(update={"sig": 0.0})
    (sample,) = episode_samples(repeated, informative_only=True)
    assert sample.assistant_masks == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]
    repeated.turns[0] = repeated.turns[0].model_copy(update={"sig": 0.2})
    (sample,) = episode_samples(repeated, informative_only=True)
    assert sample.assistant_masks == [0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1]


def test_a_wrong_answer_without_questions_gives_no_sample():
    bare = episode(correct=False)
    bare.turns = [bare.turns[3].model_copy(update={"index": 0})]
    assert episode_samples(bare) == []


def test_a_stop_token_re_rendered_by_the_template_is_left_out():
    stopped = episode()
    stopped.turns[0] = stopped.turns[0].model_copy(update={"token_ids": [10, 11, 9],
                                                           "logprobs": [-0.5] * 3})
    (sample,) = episode_samples(stopped)
    assert sample.input_ids == [1, 2, 3, 10, 11, 20, 21, 12, 22, 13, 14]
    assert sample.assistant_masks == [0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1]


def test_turns_that_do_not_stitch_become_one_sample_each():
    samples = episode_samples(episode(second_prompt=(1, 2, 99, 10, 11, 20, 21)))
    assert [s.input_ids for s in samples] == [
        [1, 2, 3, 10, 11], [1, 2, 99, 10, 11, 20, 21, 12, 22, 13, 14]]
    assert [s.assistant_masks for s in samples] == [
        [0, 0, 0, 1, 1], [0] * 9 + [1, 1]]
    assert [s.extra["turn"] for s in samples] == [0, 2]  # the invalid turn is left out


def test_doctor_turns_without_token_ids_are_an_error():
    bare = episode()
    bare.turns[0] = bare.turns[0].model_copy(update={"token_ids": None, "logprobs": None})
    with pytest.raises(TrainingError, match="without token ids"):
        episode_samples(bare)


def leaf(root, reward, correct, episode_id):
    node = SearchNode(case_id="c", thread_id="t", checkpoint_id="x", depth=1, parent=root,
                      reward=reward, terminal=True, correct=correct, episode_id=episode_id)
    root.children.append(node)
    return node


def test_leaves_chosen_by_reward_threshold_and_correctness():
    root = SearchNode(case_id="c", thread_id="t", checkpoint_id="r")
    low = leaf(root, 0.2, False, 1)
    high = leaf(root, 2.3, True, 2)
    mid = leaf(root, 1.1, False, 3)
    leaf(root, 9.0, True, None)  # no stored episode: not exportable
    assert chosen_leaves(root, ExportConfig()) == [high]
    assert chosen_leaves(root, ExportConfig(min_reward=1.0)) == [high, mid]
    assert chosen_leaves(root, ExportConfig(min_reward=0.0, correct_only=True)) == [high]
    assert chosen_leaves(SearchNode(case_id="c", thread_id="t", checkpoint_id="r"),
                         ExportConfig()) == []
    assert low not in chosen_leaves(root, ExportConfig(min_reward=1.0))
    nothing = SearchNode(case_id="c", thread_id="t", checkpoint_id="r")
    leaf(nothing, 0.0, False, 4)
    assert chosen_leaves(nothing, ExportConfig(min_reward=0.0)) == []  # nothing to teach


def test_export_loads_with_datasets(tmp_path):
    from datasets import load_dataset

    samples = episode_samples(episode(), 1.0) + episode_samples(
        episode(second_prompt=(1, 2, 99, 10, 11, 20, 21)))
    path = export_samples(samples, tmp_path / "out" / "sft.jsonl")
    data = load_dataset("json", data_files=str(path), split="train")
    assert data.num_rows == 3
    assert data[0]["input_ids"] == samples[0].input_ids
    assert data[2]["assistant_masks"] == samples[2].assistant_masks
    assert [p.name for p in path.parent.iterdir()] == ["sft.jsonl"]  # no temporary left
    assert path.stat().st_mode & 0o044  # readable like any file the user writes


def logged(case_id, sig, correct, questions=1, facts=(0,), invalid=False, repeat=False,
           status=EpisodeStatus.COMPLETED):
    turns, index = [], 0
    asked = ["question: Any fever?", "question: Where does it hurt?", "question: Do you smoke?"]
    for k in range(questions):
        text = asked[0] if repeat else asked[k]
        turns += [TurnRecord(index=index, role=Role.DOCTOR, text=text, kind=TurnKind.QUESTION),
                  TurnRecord(index=index + 1, role=Role.PATIENT, text="Yes.",
                             kind=TurnKind.REPLY, disclosed_fact_ids=list(facts) if k == 0
                             else [])]
        index += 2
    turns.append(TurnRecord(index=index, role=Role.DOCTOR, text="answer: A",
                            kind=TurnKind.INVALID if invalid else TurnKind.ANSWER))
    return EpisodeRecord(case_id=case_id, graph="consultation", doctor_spec="local:x",
                         correct=correct, information_gain=sig, status=status, turns=turns,
                         failure_reason="down" if status is EpisodeStatus.FAILED else None)


def test_each_filter_keeps_what_it_says_and_counts_what_is_left():
    episodes = [logged("a", 0.5, True), logged("a", 0.9, False), logged("a", 0.7, True),
                logged("b", 0.1, True, facts=()), logged("b", 0.6, True, questions=3),
                logged("b", 0.8, True, invalid=True), logged("b", 0.8, True, questions=2,
                                                           repeat=True),
                logged("c", 0.9, True, status=EpisodeStatus.FAILED)]
    kept, counts = filter_episodes(episodes, EpisodeFilter(
        correct_only=True, min_sig=0.05, min_facts=1, clean_only=True, max_asked=2,
        best_per_case=1))
    assert counts == {"finished": 7, "correct_only": 6, "min_sig": 6, "min_facts": 5,
                      "clean_only": 3, "max_asked": 2, "best_per_case": 1}
    assert [(e.case_id, e.information_gain) for e in kept] == [("a", 0.7)]
    every, counts = filter_episodes(episodes, EpisodeFilter())
    assert len(every) == 7 and counts == {"finished": 7}  # no filter set: none counted


def test_the_best_per_case_rank_sig_first_then_right_answers():
    episodes = [logged("a", 0.5, False), logged("a", 0.5, True), logged("a", 0.2, True)]
    kept, _ = filter_episodes(episodes, EpisodeFilter(best_per_case=2))
    assert [(e.information_gain, e.correct) for e in kept] == [(0.5, False), (0.5, True)]
    kept, _ = filter_episodes(episodes, EpisodeFilter(best_per_case=1))
    assert [(e.information_gain, e.correct) for e in kept] == [(0.5, True)]


def consulted(tokens, script):
    """A consultation of a doctor that records ``tokens``' ids, as the local backend does
    for a turn it ends; run by the graph, so its conversation is recorded."""
    import asyncio

    from promed_agents.backends.scripted_chat_model import ScriptedChatModel
    from promed_agents.graphs import ConsultationContext
    from promed_agents.graphs.consultation_runner import arun_consultations
    from promed_agents.loader import bundled_sample_path, load_cases

    case = load_cases(bundled_sample_path())[0]
    doctor = ScriptedChatModel(responses=script, tokens=tokens)
    (done,) = asyncio.run(arun_consultations([case], ConsultationContext(
        doctor=doctor, max_questions=3, demonstration=True)))
    return done.model_copy(update={"id": 5})


SCRIPT = ["question: Do you have a fever?", "Well.", "question: Do you have a fever?",
          "answer: A"]  # a question, junk, a repeat, a wrong answer


@pytest.fixture(scope="module")
def smollm2_tokens(smollm2_folder):
    from transformers import AutoTokenizer

    from promed_agents.backends.chat_tokens import ChatTokens

    return ChatTokens(AutoTokenizer.from_pretrained(smollm2_folder))


def test_rendered_and_native_samples_of_one_consultation_train_the_same_tokens(
        smollm2_tokens):
    native_episode = consulted(smollm2_tokens, SCRIPT)
    gold = smollm2_tokens.turn_ids("answer: C")
    (native,) = episode_samples(native_episode, answer_ids=gold)
    # the same consultation from a backend that returned no token ids: rendered
    bare = native_episode.model_copy(update={"turns": [
        t.model_copy(update={"token_ids": None, "prompt_token_ids": None, "logprobs": None})
        for t in native_episode.turns]})
    (rendered,) = episode_samples(bare, answer_ids=gold, student=smollm2_tokens)
    assert rendered.input_ids == native.input_ids
    assert rendered.assistant_masks == native.assistant_masks
    assert rendered.extra["rendered"] and "rendered" not in native.extra
    trained = [t for t, m in zip(native.input_ids, native.assistant_masks, strict=True) if m]
    assert smollm2_tokens.tokenizer.decode(trained) == \
        "question: Do you have a fever?<|im_end|>answer: C<|im_end|>"  # no junk, no repeat
    # with the model that ran it as the student, the recorded ids are used as they are
    (same,) = episode_samples(native_episode, answer_ids=gold, student=smollm2_tokens)
    assert same.input_ids == native.input_ids and "rendered" not in same.extra


def test_another_models_consultation_is_rendered_in_the_students_tokens(
        smollm2_tokens, other_vocab_model_folder):
    from transformers import AutoTokenizer

    from promed_agents.backends.chat_tokens import ChatTokens

    student = ChatTokens(AutoTokenizer.from_pretrained(other_vocab_model_folder))
    teacher_episode = consulted(smollm2_tokens, SCRIPT)
    (sample,) = episode_samples(teacher_episode, answer_ids=student.turn_ids("answer: C"),
                                student=student)
    assert sample.extra["rendered"] and max(sample.input_ids) < len(student.tokenizer)
    text = student.tokenizer.decode(sample.input_ids)
    assert text.startswith("<|system|>\nYou are a doctor") and "<|im_start|>" not in text
    assert "<|user|>\nPatient:" in text and "Reply with exactly one line" in text
    trained = [t for t, m in zip(sample.input_ids, sample.assistant_masks, strict=True) if m]
    assert student.tokenizer.decode(trained) == \
        "question: Do you have a fever?</s>answer: C</s>"
    # what the teacher said at each trained turn is what the student learns there
    (own,) = episode_samples(teacher_episode, answer_ids=smollm2_tokens.turn_ids("answer: C"))
    assert own.input_ids != sample.input_ids


def test_a_trace_without_ids_the_student_can_use_or_a_conversation_is_an_error(
        smollm2_tokens):
    teacher_episode = consulted(smollm2_tokens, SCRIPT)
    old = teacher_episode.model_copy(update={"doctor_messages": [], "turns": [
        t.model_copy(update={"token_ids": None, "logprobs": None})
        for t in teacher_episode.turns]})
    with pytest.raises(TrainingError, match="holds no conversation to render"):
        episode_samples(old, student=smollm2_tokens)
    with pytest.raises(TrainingError, match="give the model to train"):
        episode_samples(old)


def test_an_open_ended_consultation_trains_its_questions_tests_and_the_correct_diagnosis(
        smollm2_tokens, sqlite_url):
    """A reference doctor's AgentClinic consultation (a question, a test order, then a
    diagnosis it cannot name) becomes a sample that teaches the question, the test order
    and, in place of the wrong diagnosis, the case's."""
    import asyncio

    from promed_agents.agents.reference_doctors import resolve_doctor
    from promed_agents.graphs import ConsultationContext, arun_consultations
    from promed_agents.loader import load_cases
    from promed_agents.storage import TraceRecorder, TraceStore
    from promed_agents.trainers.sft_dataset import logged_samples

    from conftest import ROOT

    case = load_cases(ROOT / "tests" / "data" / "agentclinic_sample.jsonl")[0]
    with TraceStore(sqlite_url) as store:
        store.import_cases([case])
        run_id = store.create_experiment("bank", "consult")
        asyncio.run(arun_consultations(
            [case], ConsultationContext(doctor=resolve_doctor("bank:fixed"), max_questions=2),
            policy="initial", experiment_id=run_id, on_episode=TraceRecorder(store, run_id)))
        samples, counts = logged_samples(store, [run_id], EpisodeFilter(), smollm2_tokens)
    (sample,) = samples
    tokenizer = smollm2_tokens.tokenizer
    trained = [t for t, m in zip(sample.input_ids, sample.assistant_masks, strict=True) if m]
    taught = tokenizer.decode(trained)
    assert "test: Vital signs<|im_end|>" in taught and taught.startswith("question: ")
    assert taught.endswith("diagnosis: Myasthenia gravis<|im_end|>")
    assert "undetermined" not in taught
    context = tokenizer.decode(sample.input_ids)
    assert "Objective:" in context and "Result: Temperature" in context
