"""Stored Shapley values: per case, scorer and method, one row per fact.

case -> consultation graph -> trace in SQL -> **Shapley** / SIG -> MCTS-SFT / GRPO

:class:`ShapleyRecords` is part of :class:`~promed_agents.storage.TraceStore` (the one door
to the database). Saving a case's values replaces what was stored for the same case,
scorer and method, in one transaction. :class:`StoredWeights` is the evaluator's
:data:`~promed_agents.agents.evaluator.FactWeights` over stored values: cases with values get
their Shapley weights (so the evaluator's gain is SIG), others uniform weights.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from promed_agents.agents.evaluator import Evaluator, uniform_weights
from promed_agents.agents.judge import Judge
from promed_agents.case import Case
from promed_agents.errors import NotFoundError, ShapleyError
from promed_agents.redaction import without_password
from promed_agents.sig.fact_weights import WeightMethod, shapley_weights
from promed_agents.sig.shapley import ShapleyEstimate
from promed_agents.storage.models import CaseRow, ShapleyValueRow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


@dataclass(frozen=True)
class ShapleyRecord:
    """A case's stored Shapley values under one scorer and method."""

    case_id: str
    scorer_spec: str
    method: str
    values: list[float]
    weights: list[float]
    std_errors: list[float | None]
    temperature: float
    samples: int


class ShapleyRecords:
    """Shapley-value methods of the trace store (mixed into ``TraceStore``)."""

    def _session(self) -> Session:  # provided by TraceStore
        raise NotImplementedError

    def save_shapley(self, case_id: str, scorer_spec: str, estimate: ShapleyEstimate,
                     weights: Sequence[float], temperature: float) -> None:
        """Store ``estimate`` for ``case_id``, replacing earlier values for the same
        scorer and method; all facts or none. A password in the scorer's URL is masked
        (here and in every lookup by scorer)."""
        scorer_spec = without_password(scorer_spec)
        if not all(math.isfinite(v) for v in [*estimate.values, *weights]):
            raise ShapleyError(f"case {case_id!r}: Shapley values or weights that are not "
                               "finite are never stored (they would make SIG, rewards and "
                               "the loss NaN); estimate them again")
        if len(weights) != len(estimate.values):
            raise ValueError(f"{len(weights)} weights for {len(estimate.values)} values")
        errors = estimate.std_errors or [None] * len(estimate.values)
        with self._session() as session, session.begin():
            if session.get(CaseRow, case_id) is None:
                raise NotFoundError(f"case {case_id!r} is not in the store; import it first "
                                    f"with 'promed cases import'")
            session.execute(delete(ShapleyValueRow).where(
                ShapleyValueRow.case_id == case_id, ShapleyValueRow.scorer_spec == scorer_spec,
                ShapleyValueRow.method == estimate.method))
            session.add_all(ShapleyValueRow(
                case_id=case_id, scorer_spec=scorer_spec, method=estimate.method,
                fact_index=i, value=v, weight=w, temperature=temperature,
                samples=estimate.permutations or estimate.evaluations,
                std_error=None if e is None or e != e else e)
                for i, (v, w, e) in enumerate(zip(estimate.values, weights, errors,
                                                  strict=True)))

    def get_shapley(self, case_id: str, scorer_spec: str,
                    method: str | None = None) -> ShapleyRecord | None:
        """The stored values of ``case_id`` under ``scorer_spec`` (the most recently
        stored method unless ``method`` is given), or None."""
        scorer_spec = without_password(scorer_spec)
        with self._session() as session:
            query = select(ShapleyValueRow).where(ShapleyValueRow.case_id == case_id,
                                                  ShapleyValueRow.scorer_spec == scorer_spec)
            if method is not None:
                query = query.where(ShapleyValueRow.method == method)
            rows = session.scalars(query.order_by(ShapleyValueRow.created_at.desc(),
                                                  ShapleyValueRow.id.desc())).all()
        if not rows:
            return None
        chosen = [r for r in rows if r.method == rows[0].method]
        chosen.sort(key=lambda r: r.fact_index)
        return ShapleyRecord(case_id=case_id, scorer_spec=scorer_spec, method=chosen[0].method,
                             values=[r.value for r in chosen], weights=[r.weight for r in chosen],
                             std_errors=[r.std_error for r in chosen],
                             temperature=chosen[0].temperature, samples=chosen[0].samples)

    def shapley_case_ids(self, scorer_spec: str, method: str | None = None) -> set[str]:
        """Ids of the cases with stored values under ``scorer_spec`` (and ``method``)."""
        scorer_spec = without_password(scorer_spec)
        with self._session() as session:
            query = select(ShapleyValueRow.case_id).where(
                ShapleyValueRow.scorer_spec == scorer_spec).distinct()
            if method is not None:
                query = query.where(ShapleyValueRow.method == method)
            return set(session.scalars(query))

    def shapley_scorers(self) -> list[str]:
        """The scorer specs with stored values, sorted."""
        with self._session() as session:
            return sorted(session.scalars(select(ShapleyValueRow.scorer_spec).distinct()))


@dataclass
class StoredWeights:
    """Fact weights from stored Shapley values, uniform where a case has none.

    Weights are recomputed from the values with this ``temperature`` and ``method``
    (the reference uses 1.0 for MCTS and 2.0 for RL), and remembered per case.
    """

    store: ShapleyRecords
    scorer_spec: str
    temperature: float = 2.0
    method: WeightMethod = "softmax"

    def __post_init__(self) -> None:
        self._cache: dict[str, list[float] | None] = {}
        self._lock = threading.Lock()

    def has_values(self, case: Case) -> bool:
        return self._lookup(case) is not None

    def _lookup(self, case: Case) -> list[float] | None:
        with self._lock:
            if case.id not in self._cache:
                record = self.store.get_shapley(case.id, self.scorer_spec)
                self._cache[case.id] = None if record is None or \
                    len(record.values) != len(case.facts) else \
                    shapley_weights(record.values, self.temperature, self.method)
            return self._cache[case.id]

    def weighting(self, case: Case) -> str:
        """``shapley:SCORER`` where ``case`` has stored values, else ``uniform``."""
        return f"shapley:{self.scorer_spec}" if self.has_values(case) else "uniform"

    def __call__(self, case: Case) -> list[float]:
        return self._lookup(case) or uniform_weights(case)


@dataclass(frozen=True)
class SIGEvaluator:
    """An evaluator whose SIG weighs facts by stored Shapley values, and how many of the
    cases it was made for have them (the others' facts weigh the same)."""

    evaluator: Evaluator
    with_values: int
    cases: int


def sig_evaluator(store: ShapleyRecords, scorer: str, cases: Sequence[Case], *,
                  require_shapley: bool = False, temperature: float = 2.0,
                  judge: Judge | None = None) -> SIGEvaluator:
    """The consultation evaluator for ``cases``: SIG from the Shapley values stored for
    ``scorer`` (a model spec) where a case has them, uniform fact weights otherwise.

    Args:
        store: the trace store holding the values (``promed shapley`` computes them).
        scorer: whose values weigh the facts, e.g. ``local:smollm2``.
        cases: the cases the evaluator will score.
        require_shapley: raise :class:`ShapleyError` when a case has no stored values.
        temperature: softmax temperature of the weights (reference: 2 for RL, 1 for MCTS).
        judge: how open-ended cases' diagnoses are judged [default: the evaluator's,
            :data:`~promed_agents.agents.judge.DEFAULT_JUDGE`].
    """
    weights = StoredWeights(store, scorer, temperature=temperature)
    with_values = sum(weights.has_values(case) for case in cases)
    if require_shapley and with_values < len(cases):
        missing = [c.id for c in cases if not weights.has_values(c)]
        raise ShapleyError(
            f"--require-shapley: {len(missing)} of {len(cases)} cases (first: "
            f"{', '.join(missing[:3])}) have no stored Shapley values for scorer "
            f"{scorer!r}; compute them with 'promed shapley --scorer {scorer}', or "
            "leave out --require-shapley to weigh their facts uniformly")
    evaluator = Evaluator(weights=weights, name=f"sig:{scorer}") if with_values else \
        Evaluator()
    if judge is not None:
        evaluator = replace(evaluator, judge=judge)
    return SIGEvaluator(evaluator, with_values, len(cases))
