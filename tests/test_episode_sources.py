"""Where SIG-GRPO's consultations come from: stored traces (LoggedEpisodes) are taken only
when they were sampled from the logprobs they recorded, and are served in turn."""

from __future__ import annotations

import asyncio

import pytest

from promed_agents.backends.scripted_chat_model import ScriptedChatModel
from promed_agents.errors import TrainingError
from promed_agents.graphs.consultation import ConsultationContext
from promed_agents.graphs.consultation_runner import arun_consultations
from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.storage import TraceStore
from promed_agents.trace import SamplingRecord
from promed_agents.trainers.episode_sources import LoggedEpisodes, inexact_sampling

from helpers import EXACT_SAMPLING

CASES = load_cases(bundled_sample_path())[:2]



@pytest.mark.parametrize("sampling, refusal", [
    (None, "recorded no sampling parameters"),
    (EXACT_SAMPLING.model_copy(update={"temperature": 0.7}), "sampled at temperature 0.7"),
    (EXACT_SAMPLING.model_copy(update={"temperature": 0.0}), "decoded greedily"),
    (EXACT_SAMPLING.model_copy(update={"top_p": 0.9}), "top-p 0.9"),
    (EXACT_SAMPLING.model_copy(update={"logprobs": "backend"}), "served doctor"),
])
def test_logged_traces_not_sampled_from_their_recorded_logprobs_are_refused(
        sqlite_url, sampling, refusal):
    with TraceStore(sqlite_url) as store:
        store.import_cases(CASES)
        logged = store.create_experiment("logged", "consult")
        context = ConsultationContext(doctor=ScriptedChatModel(responses=["answer: C"]))
        episodes = asyncio.run(arun_consultations(CASES[:2], context, experiment_id=logged))
        for position, episode in enumerate(episodes):
            episode.sampling = EXACT_SAMPLING if position else sampling
            store.record_episode(episode)
        with pytest.raises(TrainingError, match=f"1 of 2 logged consultations .*{refusal}"):
            LoggedEpisodes(store, [logged])


def test_logged_traces_with_proposed_turns_are_refused(sqlite_url):
    """A search's consultation whose turns a proposer wrote is not the policy's sample,
    even when the policy's own turns were sampled exactly."""
    with TraceStore(sqlite_url) as store:
        store.import_cases(CASES)
        logged = store.create_experiment("logged", "mcts")
        context = ConsultationContext(doctor=ScriptedChatModel(responses=["answer: C"]))
        episodes = asyncio.run(arun_consultations(CASES[:2], context, experiment_id=logged))
        for position, episode in enumerate(episodes):
            episode.sampling = EXACT_SAMPLING
            episode.metadata["proposer"] = {"spec": "bank", "ratio": 0.75,
                                            "proposed_turns": position}
            store.record_episode(episode)
        with pytest.raises(TrainingError, match="1 of 2 logged .*search proposer \\(bank\\)"):
            LoggedEpisodes(store, [logged])


def test_local_consultations_record_how_they_sampled(tiny_model_folder):
    from promed_agents.agents.doctor import doctor_sampling
    from promed_agents.backends.local_chat_model import LocalChatModel

    doctor = LocalChatModel(model_ref=str(tiny_model_folder))
    for temperature, problem in ((1.0, None), (0.7, "were sampled at temperature 0.7")):
        context = ConsultationContext(doctor=doctor, max_questions=0, doctor_kwargs=
                                      doctor_sampling(doctor, max_new_tokens=4,
                                                      temperature=temperature))
        (episode,) = asyncio.run(arun_consultations(CASES[:1], context))
        sampling = episode.sampling
        assert sampling == SamplingRecord(doctor=doctor.spec, temperature=temperature,
                                          top_p=1.0, logprobs="raw")
        assert inexact_sampling(sampling) == problem
        assert episode.fact_weights == "uniform"


def test_require_shapley_refuses_traces_weighed_uniformly(sqlite_url):
    with TraceStore(sqlite_url) as store:
        store.import_cases(CASES)
        logged = store.create_experiment("logged", "consult")
        context = ConsultationContext(doctor=ScriptedChatModel(responses=["answer: C"]))
        for episode in asyncio.run(arun_consultations(CASES[:1], context,
                                                      experiment_id=logged)):
            episode.sampling = EXACT_SAMPLING
            store.record_episode(episode)
        assert LoggedEpisodes(store, [logged]).case_ids == [CASES[0].id]
        with pytest.raises(TrainingError, match="weighed its facts uniform"):
            LoggedEpisodes(store, [logged], require_shapley=True)


def test_logged_episodes_are_served_in_turn_and_checked(sqlite_url):
    with TraceStore(sqlite_url) as store:
        store.import_cases(CASES)
        empty = store.create_experiment("empty", "consult")
        with pytest.raises(TrainingError, match="no finished consultations"):
            LoggedEpisodes(store, [empty])
        bare = store.create_experiment("bare", "consult")
        context = ConsultationContext(doctor=ScriptedChatModel(responses=["answer: C"]))
        for episode in asyncio.run(arun_consultations(CASES[:1], context, experiment_id=bare)):
            for turn in episode.turns:
                turn.token_ids, turn.logprobs = None, None
            store.record_episode(episode)
        with pytest.raises(TrainingError, match="no token ids"):
            LoggedEpisodes(store, [bare])
        logged = store.create_experiment("logged", "consult")
        for episode in asyncio.run(arun_consultations(CASES[:1] * 3, context,
                                                      experiment_id=logged)):
            episode.sampling = EXACT_SAMPLING
            store.record_episode(episode)
        source = LoggedEpisodes(store, [logged])
        ids = [e.id for e in source.episodes([CASES[0].id] * 2)]
        ids += [e.id for e in source.episodes([CASES[0].id] * 2)]
        assert len(set(ids[:3])) == 3 and ids[3] == ids[0]  # in turn, then cycling
        with pytest.raises(TrainingError, match="no stored consultation"):
            source.episodes([CASES[1].id])


@pytest.mark.parametrize(("logprobs", "temperature", "top_p", "problem"), [
    ("raw", 1.0, 1.0, None),
    ("processed", 1.0, 1.0, None),  # a server's processed logprobs, nothing warped
    ("processed", 0.7, 1.0, "were sampled at temperature 0.7"),
    ("raw", 1.0, 0.9, "were sampled with top-p 0.9"),
    ("backend", 1.0, 1.0, "did not say what they are"),
])
def test_served_logprobs_are_exact_only_where_the_server_said_so(logprobs, temperature,
                                                                 top_p, problem):
    sampling = SamplingRecord(doctor="vllm:m@http://h/v1", temperature=temperature,
                              top_p=top_p, logprobs=logprobs)
    found = inexact_sampling(sampling)
    assert found == problem if problem is None else problem in found
