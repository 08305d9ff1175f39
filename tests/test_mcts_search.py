"""MCTS over the consultation graph with a scripted doctor and the fact-select patient."""

from __future__ import annotations

import asyncio
import random

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from promed_agents.agents.doctor import FINAL_REQUEST
from promed_agents.agents.evaluator import Evaluator
from promed_agents.backends.scripted_chat_model import ScriptedChatModel
from promed_agents.case import Case
from promed_agents.errors import ConsultationError
from promed_agents.graphs import ConsultationContext
from promed_agents.graphs.checkpointer import checkpointer
from promed_agents.search_tree import best_leaf
from promed_agents.storage import TraceStore
from promed_agents.trainers.mcts_search import ConsultationEnvironment, MCTSConfig, run_mcts

CASE = Case(id="t-mcts", source="t", question="Which diagnosis?",
            options={"A": "Shingles", "B": "Migraine"}, answer=["A"],
            facts=["Patient is a 60-year-old man.", "Patient is retired.",
                   "Patient lives alone.", "Patient reports a mild headache.",
                   "Patient has a painful rash on the chest.",
                   "Patient drinks alcohol daily."])
# Known at the start (half-facts): facts 0-2. Asking about the rash is worth the most.
WEIGHTS = [0.0, 0.0, 0.0, 0.1, 0.6, 0.3]
QUESTIONS = {"rash": "question: Do you have a rash?",
             "alcohol": "question: Do you drink alcohol?",
             "headache": "question: Do you have a headache?"}


def random_doctor(seed: int = 0, fail_after: int | None = None) -> ScriptedChatModel:
    rng = random.Random(seed)
    calls = [0]

    def respond(messages) -> str:
        calls[0] += 1
        if fail_after is not None and calls[0] > fail_after:
            raise RuntimeError("backend down")
        if messages[-1].content == FINAL_REQUEST:
            return "answer: A"
        return rng.choice(sorted(QUESTIONS.values()))

    return ScriptedChatModel(responder=respond)


def context(doctor) -> ConsultationContext:
    return ConsultationContext(doctor=doctor, max_questions=2,
                               evaluator=Evaluator(weights=lambda case: WEIGHTS))


def search(store, experiment_id, doctor, saver, iterations, width=3):
    config = MCTSConfig(iterations=iterations, width=width, correct_bonus=2.0)
    env = ConsultationEnvironment(context(doctor), saver, config, experiment_id=experiment_id)
    return asyncio.run(run_mcts([CASE], env, store, experiment_id, config))


@pytest.fixture
def store(sqlite_url):
    with TraceStore(sqlite_url) as store:
        store.import_cases([CASE])
        yield store


def test_search_finds_the_best_question_order(store):
    experiment = store.create_experiment("s", "mcts")
    (report,) = search(store, experiment, random_doctor(), InMemorySaver(), iterations=40)
    root = store.load_search_tree(experiment, CASE.id)
    assert report.error is None and report.iterations == root.visits
    # Width 3, distinct turns only (a repeated sample continues from its twin), so the
    # tree of 3 x 3 question pairs is exhausted before 40 iterations.
    assert {c.turn_text for c in root.children} == set(QUESTIONS.values())
    assert len(root.leaves()) == 9 and report.leaves == 9
    best = best_leaf(root)
    asked = [n.turn_text for n in best.path()[1:-1]]
    assert sorted(asked) == sorted([QUESTIONS["rash"], QUESTIONS["alcohol"]])
    assert best.path_reward() == pytest.approx(0.6 + 0.3 + 2.0)
    assert best.correct and best.turn_text == "answer: A"
    # Discounting prefers the valuable question first.
    assert max(root.children, key=lambda c: c.value).turn_text == QUESTIONS["rash"]
    # Every iteration passes through one child of the root.
    assert root.visits == sum(c.visits for c in root.children)
    # SIG per question node is the weight of the fact it acquired.
    rash = next(c for c in root.children if c.turn_text == QUESTIONS["rash"])
    assert rash.sig == pytest.approx(0.6) and rash.disclosed_fact_ids == [4]
    # Each new leaf's consultation is an episode of the experiment.
    assert store.count_episodes(experiment) == 9
    episode = store.get_episode(best.episode_id)
    assert episode.graph == "mcts" and episode.correct
    assert [t.text for t in episode.turns if t.role.value == "doctor"] == asked + ["answer: A"]


def test_search_resumes_from_the_store_and_checkpoints(store, tmp_path):
    experiment = store.create_experiment("r", "mcts")
    where = str(tmp_path / "checkpoints.sqlite")

    async def run(iterations, doctor):
        config = MCTSConfig(iterations=iterations, width=3)
        async with checkpointer(where) as saver:
            env = ConsultationEnvironment(context(doctor), saver, config,
                                          experiment_id=experiment)
            return await run_mcts([CASE], env, store, experiment, config)

    asyncio.run(run(3, random_doctor(1)))
    first = {n.id: n.turn_text for n in store.load_search_tree(experiment, CASE.id).walk()}
    episodes = store.count_episodes(experiment)
    (report,) = asyncio.run(run(6, random_doctor(2)))
    root = store.load_search_tree(experiment, CASE.id)
    assert report.iterations == 6 and root.visits == 6
    again = {n.id: n.turn_text for n in root.walk()}
    assert first.items() <= again.items()  # earlier nodes kept, not redone
    assert store.count_episodes(experiment) > episodes


def test_a_failing_doctor_leaves_whole_iterations_and_the_rerun_completes(store):
    experiment = store.create_experiment("f", "mcts")
    saver = InMemorySaver()
    (report,) = search(store, experiment, random_doctor(fail_after=7), saver, iterations=8)
    assert report.error and "backend down" in report.error
    root = store.load_search_tree(experiment, CASE.id)
    done = root.visits
    assert 1 <= done < 8
    assert root.visits == sum(c.visits for c in root.children)
    assert store.count_episodes(experiment) == len([n for n in root.walk() if n.episode_id])
    (report,) = search(store, experiment, random_doctor(3), saver, iterations=8)
    assert report.error is None and store.load_search_tree(experiment, CASE.id).visits == 8


def test_a_lost_checkpoint_is_a_clear_error(store):
    experiment = store.create_experiment("l", "mcts")
    search(store, experiment, random_doctor(), InMemorySaver(), iterations=1)
    (report,) = search(store, experiment, random_doctor(), InMemorySaver(), iterations=2)
    assert "checkpointer it was started with" in report.error


def test_config_is_checked():
    with pytest.raises(ConsultationError, match="iterations"):
        MCTSConfig(iterations=0)
    with pytest.raises(ConsultationError, match="decay"):
        MCTSConfig(decay=0)


def test_the_default_search_ranks_paths_by_what_they_acquired():
    # SFT teaches the correct answer on every path, so a lucky answer earns nothing
    # (the reference's +2 is a setting), and the bank proposer writes every turn
    assert MCTSConfig().correct_bonus == 0.0 and MCTSConfig().proposer_ratio == 1.0


def proposer_run(store, name, policy, proposer, ratio, seed=0):
    experiment = store.create_experiment(name, "mcts")
    config = MCTSConfig(iterations=1, width=3, proposer_ratio=ratio, seed=seed)
    env = ConsultationEnvironment(context(policy), InMemorySaver(), config,
                                  experiment_id=experiment, proposer=proposer)
    (report,) = asyncio.run(run_mcts([CASE], env, store, experiment, config))
    assert report.error is None
    (episode,) = store.iter_episodes(experiment)
    return episode


def asks_rash(messages) -> str:
    return "answer: A" if messages[-1].content == FINAL_REQUEST else QUESTIONS["rash"]


def test_a_proposer_writes_the_share_of_turns_it_is_given(store):
    never_asks = ScriptedChatModel(responder=lambda messages: "answer: B")
    proposer = ScriptedChatModel(responder=asks_rash, spec="fake:proposer")
    proposed = proposer_run(store, "all", never_asks, proposer, 1.0)
    doctor = [t.text for t in proposed.turns if t.role.value == "doctor"]
    assert doctor == [QUESTIONS["rash"], QUESTIONS["rash"], "answer: A"]
    assert proposed.metadata["proposer"] == {"spec": "fake:proposer", "ratio": 1.0,
                                             "proposed_turns": 3}
    own = proposer_run(store, "none", never_asks, proposer, 0.0)
    assert [t.text for t in own.turns] == ["answer: B"]
    assert own.metadata["proposer"]["proposed_turns"] == 0
    # a share in between: some turns from each, drawn with the config's seed
    mixed = [proposer_run(store, f"mixed-{k}", never_asks, proposer, 0.5, seed=k)
             for k in range(8)]
    assert {e.metadata["proposer"]["proposed_turns"] for e in mixed} - {0, 3}


class TokenizingPolicy(ScriptedChatModel):
    """A scripted policy that, like a local model, tokenizes others' replies."""

    def tokens_for(self, messages, text):
        return [len(messages)], [ord(c) for c in text]


def test_proposed_turns_are_recorded_in_the_policys_tokens(store):
    policy = TokenizingPolicy(responder=lambda messages: "answer: B")
    proposer = ScriptedChatModel(responder=asks_rash)
    episode = proposer_run(store, "tokens", policy, proposer, 1.0)
    first = episode.turns[0]
    assert first.text == QUESTIONS["rash"]
    assert first.token_ids == [ord(c) for c in QUESTIONS["rash"]]
    assert first.prompt_token_ids == [2]  # system + case: the policy's tokens, not bytes
    assert first.logprobs is None  # the policy did not sample it
