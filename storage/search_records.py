"""Stored MCTS trees: one row per node, per experiment and case.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> **MCTS** -> SFT -> evaluation

:class:`SearchRecords` is part of :class:`~promed_agents.storage.TraceStore`. A search
iteration (its new nodes, the new statistics of the nodes on its path, and the episode of
the consultation it finished) is written in one transaction by :meth:`save_search_step`,
so an interrupted search is seen as it was after its last whole iteration, and resumes
from there (:meth:`load_search_tree`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import func, insert, select, update

from promed_agents.errors import TraceError
from promed_agents.search_tree import SearchNode
from promed_agents.storage.models import SearchNodeRow
from promed_agents.trace import EpisodeRecord

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


class SearchRecords:
    """MCTS tree methods of the trace store (mixed into ``TraceStore``)."""

    def _session(self) -> Session:  # provided by TraceStore
        raise NotImplementedError

    def _write_episode(self, session: Session, episode: EpisodeRecord) -> int:
        raise NotImplementedError  # provided by TraceStore

    def save_search_step(self, experiment_id: int, nodes: Sequence[SearchNode],
                         episodes: Sequence[tuple[SearchNode, EpisodeRecord]] = ()) -> None:
        """Store ``nodes`` (new ones inserted, parents first; stored ones get their new
        statistics) and ``episodes``, each linked to its terminal node, all in one
        transaction. Node ids are set only once it commits."""
        new_ids: dict[int, int] = {}
        with self._session() as session, session.begin():
            episode_ids = {id(node): self._write_episode(session, episode)
                           for node, episode in episodes}
            for node in nodes:
                episode_id = episode_ids.get(id(node), node.episode_id)
                if node.id is not None:
                    session.execute(update(SearchNodeRow).where(SearchNodeRow.id == node.id)
                                    .values(visits=node.visits, value_sum=node.value_sum,
                                            episode_id=episode_id))
                    continue
                parent_id = None
                if node.parent is not None:
                    parent_id = node.parent.id if node.parent.id is not None else \
                        new_ids.get(id(node.parent))
                    if parent_id is None:
                        raise TraceError("search nodes must be saved parents first: the "
                                         f"parent of a node of case {node.case_id} is unsaved")
                new_ids[id(node)] = session.execute(
                    insert(SearchNodeRow.__table__).returning(SearchNodeRow.__table__.c.id)
                    .values(experiment_id=experiment_id, case_id=node.case_id,
                            parent_id=parent_id, depth=node.depth, thread_id=node.thread_id,
                            checkpoint_id=node.checkpoint_id, turn_text=node.turn_text,
                            turn_kind=node.turn_kind, reward=node.reward, sig=node.sig,
                            disclosed_fact_ids=node.disclosed_fact_ids,
                            terminal=node.terminal, correct=node.correct,
                            visits=node.visits, value_sum=node.value_sum,
                            episode_id=episode_id)).scalar_one()
        for node in nodes:
            node.id = new_ids.get(id(node), node.id)
            node.episode_id = episode_ids.get(id(node), node.episode_id)

    def load_search_tree(self, experiment_id: int, case_id: str) -> SearchNode | None:
        """The stored tree of ``case_id`` in experiment ``experiment_id`` (its root, with
        children linked in the order they were found), or None."""
        with self._session() as session:
            rows = session.scalars(select(SearchNodeRow).where(
                SearchNodeRow.experiment_id == experiment_id,
                SearchNodeRow.case_id == case_id).order_by(SearchNodeRow.id)).all()
        nodes: dict[int, SearchNode] = {}
        root = None
        for row in rows:
            parent = nodes.get(row.parent_id) if row.parent_id is not None else None
            node = SearchNode(
                case_id=row.case_id, thread_id=row.thread_id, checkpoint_id=row.checkpoint_id,
                depth=row.depth, parent=parent, turn_text=row.turn_text,
                turn_kind=row.turn_kind, reward=row.reward, sig=row.sig,
                disclosed_fact_ids=list(row.disclosed_fact_ids), terminal=row.terminal,
                correct=row.correct, visits=row.visits, value_sum=row.value_sum,
                episode_id=row.episode_id, id=row.id)
            nodes[row.id] = node
            if parent is None:
                if root is not None:
                    raise TraceError(f"case {case_id} has two search roots in experiment "
                                     f"{experiment_id}; the store is inconsistent")
                root = node
            else:
                parent.children.append(node)
        return root

    def search_progress(self, experiment_id: int) -> dict[str, float]:
        """Per case searched in ``experiment_id``: the iterations done (root visits)."""
        with self._session() as session:
            rows = session.execute(select(SearchNodeRow.case_id, func.max(SearchNodeRow.visits))
                                   .where(SearchNodeRow.experiment_id == experiment_id,
                                          SearchNodeRow.parent_id.is_(None))
                                   .group_by(SearchNodeRow.case_id)).all()
        return {case_id: visits for case_id, visits in rows}
