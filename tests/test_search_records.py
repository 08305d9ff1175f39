"""Stored MCTS trees, on SQLite and PostgreSQL: round trip, statistics, one transaction
per iteration."""

from __future__ import annotations

import pytest

from promed_agents.errors import TraceError
from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.search_tree import SearchNode
from promed_agents.storage import TraceStore
from promed_agents.trace import EpisodeRecord, Role, TurnKind, TurnRecord


@pytest.fixture
def store(db_url):
    with TraceStore(db_url) as opened:
        opened.import_cases(load_cases(bundled_sample_path())[:2])
        yield opened


def chain(case_id: str) -> list[SearchNode]:
    root = SearchNode(case_id=case_id, thread_id="t", checkpoint_id="c0")
    question = SearchNode(case_id=case_id, thread_id="t", checkpoint_id="c1", depth=1,
                          parent=root, turn_text="question: Fever?", turn_kind="question",
                          reward=0.25, sig=0.25, disclosed_fact_ids=[5])
    answer = SearchNode(case_id=case_id, thread_id="t", checkpoint_id="c2", depth=2,
                        parent=question, turn_text="answer: C", turn_kind="answer",
                        reward=2.0, terminal=True, correct=True)
    root.children.append(question)
    question.children.append(answer)
    return [root, question, answer]


def episode(case_id: str, experiment_id: int, disclosed: list[int]) -> EpisodeRecord:
    return EpisodeRecord(case_id=case_id, experiment_id=experiment_id, graph="mcts",
                         doctor_spec="fake", turns=[
                             TurnRecord(index=0, role=Role.DOCTOR, text="question: Fever?",
                                        kind=TurnKind.QUESTION),
                             TurnRecord(index=1, role=Role.PATIENT, text="yes",
                                        kind=TurnKind.REPLY, disclosed_fact_ids=disclosed)])


def test_a_tree_round_trips_with_links_and_statistics(store):
    case_id = store.list_cases()[0].id
    experiment = store.create_experiment("search", "mcts")
    nodes = chain(case_id)
    for n in nodes:
        n.visits, n.value_sum = 1.0, 2.0
    store.save_search_step(experiment, nodes, [(nodes[2], episode(case_id, experiment, [5]))])
    assert all(n.id is not None for n in nodes) and nodes[2].episode_id is not None
    root = store.load_search_tree(experiment, case_id)
    (question,) = root.children
    (answer,) = question.children
    assert question.parent is root and answer.parent is question
    assert (question.turn_text, question.sig, question.disclosed_fact_ids) == \
        ("question: Fever?", 0.25, [5])
    assert answer.terminal and answer.correct and answer.path_reward() == pytest.approx(2.25)
    assert answer.episode_id == nodes[2].episode_id
    assert store.get_episode(answer.episode_id).graph == "mcts"
    # A later iteration updates the statistics of stored nodes.
    for n in nodes:
        n.visits += 1
    store.save_search_step(experiment, nodes)
    assert store.load_search_tree(experiment, case_id).visits == 2.0
    assert store.search_progress(experiment) == {case_id: 2.0}
    assert store.load_search_tree(experiment, store.list_cases()[1].id) is None


def test_an_iteration_is_written_whole_or_not_at_all(store):
    case_id = store.list_cases()[0].id
    experiment = store.create_experiment("search", "mcts")
    nodes = chain(case_id)
    store.save_search_step(experiment, nodes[:1])
    nodes[0].visits = 1.0
    with pytest.raises(TraceError, match="fact ids"):  # the episode names a fact that isn't
        store.save_search_step(experiment, nodes, [(nodes[2], episode(case_id, experiment,
                                                                      [999]))])
    root = store.load_search_tree(experiment, case_id)
    assert root.children == [] and root.visits == 0.0
    assert store.count_episodes(experiment) == 0
    assert nodes[1].id is None  # ids are only set once the transaction commits


def test_children_must_follow_their_parents(store):
    case_id = store.list_cases()[0].id
    experiment = store.create_experiment("search", "mcts")
    nodes = chain(case_id)
    with pytest.raises(TraceError, match="parents first"):
        store.save_search_step(experiment, [nodes[1], nodes[0]])
    assert store.load_search_tree(experiment, case_id) is None
