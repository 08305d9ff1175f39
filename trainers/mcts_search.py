"""SIG-guided MCTS over consultations, with the consultation graph as the environment.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> **MCTS** -> SFT -> evaluation

Stage 1 of ProMed. A tree node (:class:`~promed_agents.search_tree.SearchNode`) is a
LangGraph checkpoint of the consultation graph, compiled to pause before every doctor
turn. Expanding a node forks the graph from that checkpoint: the doctor samples a turn
(at ``temperature``), the patient replies and the evaluator scores the question's SIG,
and the graph pauses again. One iteration selects a node by UCB, simulates from it to a
final answer (each doctor turn on the way becomes a node, so the tree keeps the whole
path), and backpropagates the path's discounted return. Rewards: a question's SIG, and
``correct_bonus`` for a right final answer.

Candidate turns come from the policy and, with a ``proposer`` (any chat model: the
reference searched with a stronger doctor than the one it trained, served for example
by vLLM; or ``bank``, the bundled question bank, which widens each node in the bank's
best order, told the turns the node's children already took), from it: each doctor
turn of a simulation is the proposer's with probability ``proposer_ratio`` and the
policy's otherwise. A proposed turn is stored as the proposer said it, in the policy's
tokens when the policy is a local model (:mod:`~promed_agents.backends.policy_tokens`),
so SFT on the best paths teaches the policy to say it; an episode with proposed turns records the
proposer in its metadata (``proposer``), and is not the policy's sample for RL.

Every iteration is stored in one transaction (its new nodes, the path's statistics and
the finished consultation as an episode of the experiment), so a search stopped at any
point resumes after its last whole iteration; the checkpoints live in the LangGraph
checkpointer given (SQLite file or PostgreSQL), which must be the same on resume.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel

from promed_agents.backends import spec_name
from promed_agents.backends.policy_tokens import PolicyTokenized
from promed_agents.case import Case
from promed_agents.errors import ConsultationError
from promed_agents.graphs.consultation import ConsultationContext, build_consultation_graph
from promed_agents.graphs.consultation_runner import episode_from_state, recursion_limit
from promed_agents.partial_view import DEFAULT_POLICY, PartialInfoPolicy, partial_view
from promed_agents.search_tree import (
    SearchNode,
    UCBConfig,
    backpropagate,
    best_leaf,
    fully_explored,
    select,
)
from promed_agents.trace import EpisodeRecord, Role

if TYPE_CHECKING:
    from promed_agents.storage import TraceStore

GRAPH_NAME = "mcts"


@dataclass
class MCTSConfig:
    """Search parameters; the defaults are the reference's (ProMed)."""

    iterations: int = field(default=8, metadata={"help": "Iterations per case (ref 5-10)."})
    width: int = field(default=UCBConfig.width,
                       metadata={"help": "Most children per node (ref 8)."})
    exploration: float = field(default=UCBConfig.exploration,
                               metadata={"help": "UCB exploration weight (2.2)."})
    initial_visits: float = field(
        default=UCBConfig.initial_visits,
        metadata={"help": "Visits an unvisited child counts (ref 0.01)."})
    optimistic_value: float = field(
        default=UCBConfig.optimistic_value,
        metadata={"help": "Value assumed for an unvisited child."})
    decay: float = field(default=0.9, metadata={"help": "Discount per level in backprop."})
    correct_bonus: float = field(default=0.0, metadata={
        "help": "Reward of a correct final answer (the reference's is +2; SFT teaches the "
                "correct answer on every path, so by default paths rank by what they "
                "acquired, not by a lucky answer)."})
    proposer_ratio: float = field(default=1.0, metadata={
        "help": "Share of doctor turns the proposer writes, when there is one (0: the "
                "policy only, 1: the proposer only, a search with no policy call)."})
    seed: int = field(default=0, metadata={"help": "Seeds the policy/proposer draws."})

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ConsultationError(f"MCTS iterations must be >= 1, got {self.iterations}")
        if not 0 < self.decay <= 1:
            raise ConsultationError(f"MCTS decay must be in (0, 1], got {self.decay}")
        if not 0 <= self.proposer_ratio <= 1:
            raise ConsultationError(
                f"MCTS proposer_ratio must be in [0, 1], got {self.proposer_ratio}")

    @property
    def ucb(self) -> UCBConfig:
        return UCBConfig(self.exploration, self.width, self.initial_visits,
                           self.optimistic_value)


class ConsultationEnvironment:
    """The consultation graph, paused before each doctor turn, as a tree environment."""

    def __init__(self, context: ConsultationContext, checkpointer: Any, config: MCTSConfig,
                 policy: PartialInfoPolicy | str = DEFAULT_POLICY, graph: Any = None,
                 experiment_id: int | None = None, proposer: BaseChatModel | None = None,
                 proposer_kwargs: dict[str, Any] | None = None):
        self.context, self.config, self.policy = context, config, policy
        self.experiment_id = experiment_id
        self.proposer = proposer
        # proposed turns in the policy's tokens, so that SFT can teach them
        writer = PolicyTokenized(proposer=proposer, policy=context.doctor) \
            if proposer is not None and hasattr(context.doctor, "tokens_for") else proposer
        self._proposing = None if writer is None else replace(
            context, doctor=writer, doctor_kwargs=dict(
                proposer_kwargs if proposer_kwargs is not None else context.doctor_kwargs))
        self._draws = random.Random(config.seed)
        self.graph = (graph or build_consultation_graph()).compile(
            checkpointer=checkpointer, interrupt_before=["doctor"])

    def _config(self, thread_id: str, checkpoint_id: str | None = None) -> dict[str, Any]:
        configurable = {"thread_id": thread_id}
        if checkpoint_id:
            configurable["checkpoint_id"] = checkpoint_id
        return {"configurable": configurable,
                "recursion_limit": recursion_limit(self.context.max_questions)}

    async def root(self, case: Case, thread_id: str) -> SearchNode:
        """The consultation of ``case`` before the doctor's first turn."""
        view = partial_view(case, self.policy)
        await self.graph.ainvoke({"case": case, "view": view}, self._config(thread_id),
                                 context=self.context)
        state = await self.graph.aget_state(self._config(thread_id))
        return SearchNode(case_id=case.id, thread_id=thread_id,
                          checkpoint_id=state.config["configurable"]["checkpoint_id"])

    async def step(self, node: SearchNode) -> tuple[SearchNode, dict[str, Any]]:
        """One doctor turn from ``node``: the child node and the graph state it reached."""
        before = await self.graph.aget_state(self._config(node.thread_id, node.checkpoint_id))
        if not before.values or not before.next:
            raise ConsultationError(
                f"checkpoint {node.checkpoint_id} of thread {node.thread_id} is missing or "
                "finished; resume a search with the checkpointer it was started with")
        seen = len(before.values.get("turns", []))
        proposed = self._proposing is not None and \
            self._draws.random() < self.config.proposer_ratio
        context = self.context
        if proposed:
            context = self._proposing
            if getattr(self.proposer, "widens_in_order", False):  # the bank: no twins
                context = replace(context, doctor_kwargs={
                    **context.doctor_kwargs,
                    "exclude": [c.turn_text for c in node.children if c.turn_text]})
        await self.graph.ainvoke(None, self._config(node.thread_id, node.checkpoint_id),
                                 context=context)
        state = await self.graph.aget_state(self._config(node.thread_id))
        values = state.values
        new_turns = values["turns"][seen:]
        doctor = next(t for t in new_turns if t.role is Role.DOCTOR)
        disclosed = [i for t in new_turns if t.role is not Role.DOCTOR
                     for i in t.disclosed_fact_ids]
        terminal = not state.next
        correct = values.get("correct") if terminal else None
        reward = (doctor.sig or 0.0) + (self.config.correct_bonus if correct else 0.0)
        child = SearchNode(
            case_id=node.case_id, thread_id=node.thread_id,
            checkpoint_id=state.config["configurable"]["checkpoint_id"], depth=node.depth + 1,
            parent=node, turn_text=doctor.text, turn_kind=doctor.kind.value if doctor.kind
            else None, reward=reward, sig=doctor.sig, disclosed_fact_ids=disclosed,
            terminal=terminal, correct=correct, proposed=proposed)
        node.children.append(child)
        return child, values

    async def simulate(self, node: SearchNode
                       ) -> tuple[SearchNode, list[SearchNode], EpisodeRecord | None]:
        """Doctor turns from ``node`` to the end: the leaf, the new nodes and the new
        episode. A sampled turn identical to a sibling's is not a new child: the
        simulation goes on from that sibling (and ends with no new episode when the
        sibling is a leaf), so the width is spent on distinct turns."""
        new: list[SearchNode] = []
        values = None
        while not node.terminal:
            child, values = await self.step(node)
            twin = next((c for c in node.children if c is not child
                         and c.turn_text == child.turn_text), None)
            if twin is not None:
                node.children.remove(child)
                node, values = twin, None
                continue
            new.append(child)
            node = child
        if values is None:
            return node, new, None
        episode = episode_from_state(values, self.context, GRAPH_NAME, self.experiment_id)
        if self.proposer is not None:
            episode.metadata["proposer"] = {
                "spec": spec_name(self.proposer), "ratio": self.config.proposer_ratio,
                "proposed_turns": sum(n.proposed for n in new)}
        return node, new, episode


@dataclass(frozen=True)
class SearchReport:
    """What a search did for one case."""

    case_id: str
    iterations: int
    nodes: int
    leaves: int
    best_reward: float
    best_correct: bool | None
    error: str | None = None


async def search_case(case: Case, env: ConsultationEnvironment, store: TraceStore,
                      experiment_id: int, config: MCTSConfig,
                      on_iteration: Callable[[str], None] | None = None) -> SearchReport:
    """Run (or resume) the search of ``case`` until its root has ``config.iterations``
    visits or its tree is exhausted; every iteration is stored as it ends."""
    root = store.load_search_tree(experiment_id, case.id)
    if root is None:
        # a fresh thread: a run killed before storing its root leaves an unused one
        root = await env.root(case, f"mcts-{experiment_id}-{case.id}-{uuid.uuid4().hex[:8]}")
        store.save_search_step(experiment_id, [root])
    settings = config.ucb
    while root.visits < config.iterations and not fully_explored(root, settings.width):
        node = select(root, settings)
        episodes: list[tuple[SearchNode, EpisodeRecord]] = []
        if node.terminal:
            leaf = node
        else:
            leaf, _, episode = await env.simulate(node)
            if episode is not None:
                episodes.append((leaf, episode))
        path = leaf.path()
        backpropagate(path, config.decay)
        store.save_search_step(experiment_id, path, episodes)
        if on_iteration is not None:
            on_iteration(case.id)
    best = best_leaf(root)
    return SearchReport(case.id, int(root.visits), len(root.walk()), len(root.leaves()),
                        best.path_reward() if best else 0.0, best.correct if best else None)


async def run_mcts(cases: Sequence[Case], env: ConsultationEnvironment, store: TraceStore,
                   experiment_id: int, config: MCTSConfig, concurrency: int = 8,
                   on_iteration: Callable[[str], None] | None = None) -> list[SearchReport]:
    """Search ``cases``, ``concurrency`` at a time (so a local doctor decodes their turns
    together); reports in the order of ``cases``. A case whose search fails (a model
    that still fails after the graph's retries) is reported with its error; what it had
    stored stays, and a rerun resumes it.

    Args:
        cases: the cases searched.
        env: the consultation graph as the search's environment (doctor, patient,
            evaluator, checkpointer, proposer).
        store: where each tree's nodes and each simulated consultation are stored.
        experiment_id: the search's experiment in ``store``.
        config: iterations, UCB and reward settings.
        concurrency: cases searched at once.
        on_iteration: called with the case id after each iteration (progress).
    """
    if concurrency < 1:
        raise ConsultationError(f"concurrency must be >= 1, got {concurrency}")
    gate = asyncio.Semaphore(concurrency)

    async def one(case: Case) -> SearchReport:
        async with gate:
            try:
                return await search_case(case, env, store, experiment_id, config,
                                         on_iteration)
            except Exception as exc:  # one case's failure must not stop the others
                return SearchReport(case.id, 0, 0, 0, 0.0, None,
                                    error=f"{type(exc).__name__}: {exc}"[:500])

    return list(await asyncio.gather(*(one(case) for case in cases)))
