"""The MCTS tree over consultations: nodes, UCB selection and backpropagation.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> **MCTS** -> SFT -> evaluation

A :class:`SearchNode` is a dialogue state: the root is the consultation before the
doctor's first turn, and each child is the state after one more doctor turn (and, for a
question, the patient's reply and the evaluator's SIG). A final answer, or a consultation
that ran out of budget, is a terminal leaf. The node's ``reward`` is what reaching it
earned: the question's SIG, or for an answer the correctness bonus when it is right.

Selection follows the reference (ProMed): from the root, take the child with the highest
UCB ``Q + c * sqrt(ln(N_parent + 1) / n)``; while a node has fewer than ``width`` children it
also has a *new-child slot*, scored as an unvisited child with ``initial_visits`` visits
and the ``optimistic_value`` (so with the reference's 0.01 initial visits, a node is
widened to its full width before its children are deepened). Backpropagation gives each
node on the path the discounted return below it, ``G = r + decay * G_child``.

This module is pure (no graph, no model, no database): the search driver is
:mod:`promed_agents.trainers.mcts_search`, the storage :mod:`promed_agents.storage`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from promed_agents.errors import ConsultationError


@dataclass(frozen=True)
class UCBConfig:
    """Selection parameters (reference values)."""

    exploration: float = 2.2
    width: int = 8
    initial_visits: float = 0.01
    optimistic_value: float = 0.0

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ConsultationError(f"MCTS width must be >= 1, got {self.width}")
        if self.initial_visits <= 0:
            raise ConsultationError(f"MCTS initial_visits must be > 0, got {self.initial_visits}")


@dataclass(eq=False)  # nodes are compared by identity
class SearchNode:
    """One dialogue state of a search. ``id`` is set once the node is stored."""

    case_id: str
    thread_id: str
    checkpoint_id: str
    depth: int = 0
    parent: SearchNode | None = None
    turn_text: str | None = None
    turn_kind: str | None = None
    reward: float = 0.0
    sig: float | None = None
    disclosed_fact_ids: list[int] = field(default_factory=list)
    terminal: bool = False
    correct: bool | None = None
    visits: float = 0.0
    value_sum: float = 0.0
    episode_id: int | None = None
    id: int | None = None
    children: list[SearchNode] = field(default_factory=list)
    proposed: bool = False
    """Its turn came from the search's proposer, not the policy (known while the search
    runs; the store keeps the text, not the source)."""

    @property
    def value(self) -> float:
        """Mean discounted return of the visits through this node (0 when unvisited)."""
        return self.value_sum / self.visits if self.visits > 0 else 0.0

    def path(self) -> list[SearchNode]:
        """The nodes from the root to this one."""
        nodes, node = [], self
        while node is not None:
            nodes.append(node)
            node = node.parent
        return nodes[::-1]

    def path_reward(self) -> float:
        """Undiscounted reward of the path to this node: its SIG sum and answer bonus."""
        return sum(node.reward for node in self.path())

    def leaves(self) -> list[SearchNode]:
        """Terminal nodes under (or equal to) this one."""
        if self.terminal:
            return [self]
        return [leaf for child in self.children for leaf in child.leaves()]

    def walk(self) -> list[SearchNode]:
        """This node and all below it, parents before children."""
        nodes = [self]
        for child in self.children:
            nodes += child.walk()
        return nodes


def ucb(value: float, visits: float, parent_visits: float, exploration: float) -> float:
    """Upper confidence bound of a child: ``value + c * sqrt(ln(N + 1) / n)``, N the
    parent's visits. The +1 keeps the bound defined (and exploring) from the parent's
    first visit on; the children and the new-child slot use the same N."""
    return value + exploration * math.sqrt(math.log(parent_visits + 1.0) / visits)


def fully_explored(node: SearchNode, width: int) -> bool:
    """True when nothing new can be found under ``node``: a leaf, or full width with every
    child fully explored."""
    if node.terminal:
        return True
    return len(node.children) >= width and all(fully_explored(c, width) for c in node.children)


def select(root: SearchNode, settings: UCBConfig) -> SearchNode:
    """The node to expand next: descend by UCB until a node whose new-child slot wins, or
    a terminal node (then the search revisits that leaf)."""
    node = root
    while not node.terminal:
        best, best_score = None, -math.inf
        if len(node.children) < settings.width:
            best_score = ucb(settings.optimistic_value, settings.initial_visits,
                             node.visits, settings.exploration)
        for child in node.children:
            score = ucb(child.value, max(child.visits, settings.initial_visits),
                        node.visits, settings.exploration)
            if score > best_score:
                best, best_score = child, score
        if best is None:
            return node
        node = best
    return node


def backpropagate(path: Sequence[SearchNode], decay: float) -> None:
    """Add one visit to every node of ``path`` (root first), each with the discounted
    return from it to the path's end."""
    ret = 0.0
    for node in reversed(path):
        ret = node.reward + decay * ret
        node.visits += 1
        node.value_sum += ret


def best_leaf(root: SearchNode) -> SearchNode | None:
    """The terminal leaf with the highest path reward (earliest found on ties)."""
    leaves = root.leaves()
    return max(leaves, key=lambda leaf: leaf.path_reward()) if leaves else None
