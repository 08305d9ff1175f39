from __future__ import annotations

import asyncio

import pytest

from promed_agents.agents.abstention import Abstention
from promed_agents.agents.doctor import doctor_sampling
from promed_agents.backends.chat_tokens import ChatTokens, chat_dicts
from promed_agents.backends.local_chat_model import LocalChatModel
from promed_agents.backends.scripted_chat_model import ScriptedChatModel, byte_tokens
from promed_agents.graphs.consultation import (
    ConsultationContext,
    build_consultation_graph,
    reply_instead,
)
from promed_agents.graphs.consultation_runner import arun_consultations
from promed_agents.graphs.token_sequence import (
    PolicySample,
    doctor_prompts,
    policy_samples,
    rendered_samples,
    stitch,
)
from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.trace import ConsultationMode, EpisodeRecord, Role, TurnKind

CASES = load_cases(bundled_sample_path())[:3]


def consultations(policy, cases, times, max_questions=10, **sampling):
    context = ConsultationContext(doctor=policy, max_questions=max_questions,
                                  doctor_kwargs=doctor_sampling(policy, **sampling))
    return asyncio.run(arun_consultations([c for c in cases for _ in range(times)], context))


def test_a_consultation_stitches_into_one_sequence_with_a_policy_mask():
    policy = ScriptedChatModel(responses=[
        "question: What did the culture of the joint fluid show?", "answer: C"])
    (episode,) = consultations(policy, CASES[:1], 1)
    samples = policy_samples(episode)
    assert episode.correct
    assert [s.kind for s in samples] == [TurnKind.QUESTION, TurnKind.ANSWER]
    assert samples[0].sig == pytest.approx(1 / 9)
    question = byte_tokens("question: What did the culture of the joint fluid show?")
    answer = byte_tokens("answer: C")
    sequence = stitch(samples)
    masked = [t for t, m in zip(sequence.completion_ids, sequence.policy_mask, strict=True)
              if m]
    assert masked == question + answer
    assert [i for i in sequence.turn_index if i >= 0] == [0] * len(question) + [1] * len(answer)
    environment = [t for t, m in zip(sequence.completion_ids, sequence.policy_mask,
                                     strict=True) if not m]
    assert bytes(environment).decode() == "Patient: Culture of joint fluid shows a bacteria."
    assert len(sequence.logprobs) == len(sequence.completion_ids) and sequence.dropped == 0
    assert sequence.prompt_ids == samples[0].prompt_ids


def test_sampled_consultations_of_a_local_policy(tiny_model_folder):
    policy = LocalChatModel(model_ref=str(tiny_model_folder))
    episodes = consultations(policy, CASES[:1], 4, max_questions=1, temperature=1.0,
                             max_new_tokens=8)
    texts = {repr(policy_samples(e)[0].completion_ids) for e in episodes}
    assert len(texts) > 1  # sampling makes the group differ
    for episode in episodes:
        samples = policy_samples(episode)
        for sample in samples:
            assert sample.prompt_ids and len(sample.completion_ids) == len(sample.logprobs)
        sequence = stitch(samples)
        if sequence is not None:  # a random model's text need not re-tokenize the same
            assert sum(sequence.policy_mask) + sequence.dropped == \
                sum(len(s.completion_ids) for s in samples)


@pytest.mark.slow
def test_smollm2_consultations_stitch_into_one_sequence(smollm2_folder):
    """SmolLM2's turns re-render token for token in the next prompt (a turn stopped at
    its newline drops only that token), so each consultation is one sequence."""
    policy = LocalChatModel(model_ref=str(smollm2_folder), seed=0)
    for episode in consultations(policy, CASES[:1], 3, max_questions=2, temperature=0.7,
                                 max_new_tokens=24):
        samples = policy_samples(episode)
        sequence = stitch(samples)
        assert sequence is not None, [s.completion_ids for s in samples]
        assert sum(sequence.policy_mask) + sequence.dropped == \
            sum(len(s.completion_ids) for s in samples)
        assert sequence.prompt_ids == samples[0].prompt_ids
        # every later prompt is the stitched sequence so far
        for later in samples[1:]:
            assert later.prompt_ids[:len(samples[0].prompt_ids)] == sequence.prompt_ids


def sample(prompt, completion, kind=TurnKind.QUESTION):
    return PolicySample(prompt_ids=prompt, completion_ids=completion,
                        logprobs=[-0.5] * len(completion), kind=kind, sig=None)


def test_stitch_drops_a_stop_token_the_next_prompt_re_renders():
    # turn 0 stopped at a newline token (9); the template re-rendered it as end-of-turn (2)
    turns = [sample([1, 1], [5, 6, 9]), sample([1, 1, 5, 6, 2, 7, 7], [8, 2])]
    sequence = stitch(turns)
    assert sequence.completion_ids == [5, 6, 2, 7, 7, 8, 2]
    assert sequence.turn_index == [0, 0, -1, -1, -1, 1, 1]
    assert sequence.logprobs == [-0.5, -0.5, 0.0, 0.0, 0.0, -0.5, -0.5]
    assert sequence.dropped == 1


def test_stitch_refuses_prompts_that_do_not_extend_each_other():
    assert stitch([sample([1, 1], [5]), sample([1, 3, 5], [6])]) is None
    # a template that rewrites the turn's text drops more than max_dropped tokens
    assert stitch([sample([1], [5, 6, 7, 9]), sample([1, 4, 4, 4, 4], [6])]) is None
    assert stitch([]) is None


def _spy(script):
    """A scripted doctor that keeps every conversation it was prompted with."""
    seen = []

    def respond(messages):
        if not str(messages[-1].content).startswith("Before you go on"):  # abstention
            seen.append(chat_dicts(messages))
        turn = sum(1 for m in messages if m.type == "ai" and not getattr(m, "example", False))
        return script[min(turn, len(script) - 1)]

    return ScriptedChatModel(responder=respond, spec="fake:spy"), seen


@pytest.mark.parametrize("setting", ["plain", "example", "drawn budget", "reactive",
                                     "hooks"])
def test_the_recorded_conversation_is_what_each_doctor_turn_was_prompted_with(setting):
    """Junk (a reminder follows), a question, a repeat, the final request, an answer."""
    script = ["I am not sure.", "question: Do you have a fever?",
              "question: Do you have a fever?", "question: Any rash?", "answer: C"]
    doctor, seen = _spy(script)
    context = ConsultationContext(
        doctor=doctor, max_questions=3, demonstration=setting == "example",
        budget_range=(2, 4) if setting == "drawn budget" else None,
        mode=ConsultationMode.REACTIVE if setting == "reactive" else
        ConsultationMode.PROACTIVE)
    graph = None
    if setting == "hooks":
        graph = build_consultation_graph(
            question_hooks=[("guard", lambda state: reply_instead(state, "Ask the nurse."))],
            doctor_hooks=[("abstain", Abstention(threshold=0.99))])
    (episode,) = asyncio.run(arun_consultations(CASES[:1], context, graph=graph))
    prompts = doctor_prompts(episode)
    assert [[{"role": m.role, "content": m.content} for m in p] for p in prompts] == seen
    assert len(seen) == len([t for t in episode.turns if t.role is Role.DOCTOR]) >= 1
    if setting == "example":
        assert any(m.example for m in prompts[0]) and not any(
            m.example for m in episode.doctor_messages[len(prompts[0]):])
    stored = EpisodeRecord.model_validate({**episode.model_dump(exclude={"doctor_messages"}),
                                           "metadata": episode.stored_metadata()})
    assert stored.doctor_messages == episode.doctor_messages  # kept in the metadata JSON


def test_without_a_recorded_conversation_nothing_is_rendered():
    (episode,) = consultations(ScriptedChatModel(responses=["answer: C"]), CASES[:1], 1)
    assert doctor_prompts(episode.model_copy(update={"doctor_messages": []})) is None
    cut = episode.model_copy(update={"doctor_messages": episode.doctor_messages[:-1]})
    assert doctor_prompts(cut) is None  # one message short of the doctor's turns
    assert rendered_samples(cut, ChatTokens(None)) is None


def test_rendered_turns_are_the_tokens_the_local_backend_records(smollm2_folder):
    """A doctor recording a real tokenizer's ids (as the local backend does for a turn
    it ends) and the same consultation rendered from its conversation agree token for
    token."""
    from transformers import AutoTokenizer

    tokens = ChatTokens(AutoTokenizer.from_pretrained(smollm2_folder))
    doctor = ScriptedChatModel(responses=["question: Any fever?", "Hmm.",
                                          "question: Any joint pain?", "answer: B"],
                               tokens=tokens)
    context = ConsultationContext(doctor=doctor, max_questions=3, demonstration=True)
    (episode,) = asyncio.run(arun_consultations(CASES[:1], context))
    native, rendered = policy_samples(episode), rendered_samples(episode, tokens)
    assert len(native) == 4
    for ours, theirs in zip(rendered, native, strict=True):
        assert (ours.prompt_ids, ours.completion_ids, ours.kind, ours.sig) == \
            (theirs.prompt_ids, theirs.completion_ids, theirs.kind, theirs.sig)
    assert stitch(rendered).completion_ids == stitch(native).completion_ids
