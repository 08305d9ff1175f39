"""The MCTS tree: UCB, selection with a width limit, discounted backpropagation."""

from __future__ import annotations

import math

import pytest

from promed_agents.errors import ConsultationError
from promed_agents.search_tree import (
    SearchNode,
    UCBConfig,
    backpropagate,
    best_leaf,
    fully_explored,
    select,
    ucb,
)


def node(parent: SearchNode | None = None, reward: float = 0.0, terminal: bool = False,
         visits: float = 0.0, value_sum: float = 0.0) -> SearchNode:
    child = SearchNode(case_id="c", thread_id="t", checkpoint_id="x",
                       depth=0 if parent is None else parent.depth + 1, parent=parent,
                       reward=reward, terminal=terminal, visits=visits, value_sum=value_sum)
    if parent is not None:
        parent.children.append(child)
    return child


def test_ucb_is_value_plus_exploration():
    assert ucb(0.5, 4, 16, 2.2) == pytest.approx(0.5 + 2.2 * math.sqrt(math.log(17) / 4))
    assert ucb(0.5, 4, 0, 2.2) == pytest.approx(0.5)  # before the parent's first visit


def test_the_new_child_slot_and_the_children_share_the_parents_count():
    """The slot is an unvisited child with ``initial_visits`` and ``optimistic_value``:
    a child with the same visits and a higher value beats it, whatever N is."""
    for parent_visits in (1, 2, 7):
        settings = UCBConfig(width=2, initial_visits=1.0, optimistic_value=0.0)
        root = node(visits=parent_visits)
        better = node(root, visits=1, value_sum=0.1)
        assert select(root, settings) is better
        worse = UCBConfig(width=2, initial_visits=1.0, optimistic_value=0.2)
        assert select(root, worse) is root


def test_backpropagation_gives_each_node_its_discounted_return():
    root = node()
    a = node(root, reward=0.2)
    b = node(a, reward=0.3)
    leaf = node(b, reward=2.0, terminal=True)
    backpropagate(leaf.path(), decay=0.9)
    assert [n.visits for n in leaf.path()] == [1, 1, 1, 1]
    assert leaf.value == pytest.approx(2.0)
    assert b.value == pytest.approx(0.3 + 0.9 * 2.0)
    assert a.value == pytest.approx(0.2 + 0.9 * (0.3 + 0.9 * 2.0))
    assert root.value == pytest.approx(0.9 * a.value)
    assert leaf.path_reward() == pytest.approx(2.5)  # undiscounted, for export
    backpropagate(leaf.path(), decay=0.9)
    assert root.visits == 2 and root.value == pytest.approx(0.9 * a.value)


def test_a_node_is_widened_to_its_width_before_children_are_deepened():
    settings = UCBConfig(width=3)  # reference initial visits 0.01: new slots win
    root = node(visits=2)
    strong = node(root, visits=1, value_sum=5.0)
    assert select(root, settings) is root  # 1 child < width 3: a new child
    node(root, visits=1, value_sum=0.0)
    assert select(root, settings) is root
    node(root, visits=1, value_sum=0.0)
    root.visits = 3
    # Full width: descend to the best child by UCB, which is widened in turn.
    assert select(root, settings) is strong


def test_selection_trades_value_against_visits():
    settings = UCBConfig(width=2, exploration=1.0)
    root = node(visits=101)
    often = node(root, visits=100, value_sum=60.0)   # value 0.6, well explored
    rarely = node(root, visits=1, value_sum=0.5)     # value 0.5, explored once
    assert select(root, settings) is rarely  # 0.5 + sqrt(ln 102) > 0.6 + sqrt(ln 102 / 100)
    settings = UCBConfig(width=2, exploration=0.0)
    assert select(root, settings) is often


def test_terminal_nodes_are_revisited_and_a_full_tree_is_exhausted():
    settings = UCBConfig(width=1)
    root = node(visits=1)
    leaf = node(root, reward=1.0, terminal=True, visits=1, value_sum=1.0)
    assert fully_explored(root, 1)
    assert select(root, settings) is leaf
    assert not fully_explored(root, 2)


def test_best_leaf_by_undiscounted_path_reward():
    root = node()
    a = node(root, reward=0.5)
    a_leaf = node(a, reward=0.0, terminal=True)
    b_leaf = node(root, reward=2.0, terminal=True)
    assert best_leaf(root) is b_leaf
    a_leaf.reward = 2.0
    assert best_leaf(root) is a_leaf
    assert best_leaf(node()) is None
    assert root.walk()[0] is root and len(root.walk()) == 4


def test_settings_are_checked():
    with pytest.raises(ConsultationError, match="width"):
        UCBConfig(width=0)
    with pytest.raises(ConsultationError, match="initial_visits"):
        UCBConfig(initial_visits=0)
