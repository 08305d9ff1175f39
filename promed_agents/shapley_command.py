"""``promed shapley``: estimate, store and show the Shapley values of cases' facts.

case -> consultation graph -> trace in SQL -> **Shapley** / SIG -> MCTS-SFT / GRPO

The commands behind the CLI entries (kept apart from :mod:`promed_agents.cli`): pick cases
as ``promed consult`` does, run :func:`promed_agents.trainers.shapley_job.compute_shapley`
with a progress bar (cases already stored for the scorer and method are skipped, so a
rerun resumes), and print a case's facts with value, weight and standard error.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from promed_agents.consult_command import select_cases
from promed_agents.errors import NotFoundError
from promed_agents.progress_bar import progress_bar


@dataclass(frozen=True)
class ShapleySettings:
    cases: int | None
    case_ids: Sequence[str]
    split: str | None
    scorer: str
    method: str
    permutations: int
    min_permutations: int
    antithetic: bool
    temperature: float
    target: str
    seed: int


def compute(store: Any, settings: ShapleySettings, console: Console,
            progress_console: Console) -> Any:
    from promed_agents.answer_scorer import resolve_scorer
    from promed_agents.shapley import PermutationSettings
    from promed_agents.trainers.shapley_job import ShapleyConfig, compute_shapley

    cases = select_cases(store, console, settings.cases, settings.case_ids, settings.split)
    scorer = resolve_scorer(settings.scorer, settings.target)  # type: ignore[arg-type]
    config = ShapleyConfig(
        method=settings.method,  # type: ignore[arg-type]
        permutations=PermutationSettings(
            max_permutations=settings.permutations,
            min_permutations=min(settings.min_permutations, settings.permutations),
            antithetic=settings.antithetic, seed=settings.seed),
        temperature=settings.temperature)
    started = time.perf_counter()
    with progress_bar(progress_console) as progress:
        task = progress.add_task(f"Shapley values ({settings.scorer})", total=len(cases))
        report = compute_shapley(store, cases, scorer, config,
                                 on_case=lambda case, estimate: progress.advance(task))
    console.print(f"stored Shapley values for {len(report.computed)} cases "
                  f"({len(report.skipped)} already stored, skipped) in "
                  f"{time.perf_counter() - started:.1f} s; scorer {escape(scorer.spec)}")
    return report


def show(store: Any, case_id: str, scorer: str, method: str | None, console: Console) -> None:
    case = store.get_case(case_id)
    record = store.get_shapley(case_id, scorer, method)
    if record is None:
        raise NotFoundError(f"no Shapley values for case {case_id!r} under scorer {scorer!r}"
                            f"{f' and method {method!r}' if method else ''}; compute them "
                            f"with 'promed shapley --case-ids {case_id} --scorer "
                            f"{scorer}'")
    table = Table(title=escape(f"{case_id}: Shapley values ({record.method}, "
                               f"{record.scorer_spec}, softmax T={record.temperature:g}, "
                               f"{record.samples} samples)"))
    for column in ("#", "fact", "value", "weight", "std. error"):
        table.add_column(column, justify="left" if column == "fact" else "right")
    for i, fact in enumerate(case.facts):
        error = record.std_errors[i]
        table.add_row(str(i), escape(fact), f"{record.values[i]:+.4f}",
                      f"{record.weights[i]:.3f}", "-" if error is None else f"{error:.4f}")
    console.print(table)
