"""A Shapley run: the Shapley values of cases' facts under a scorer, stored per case.

case -> consultation graph -> trace in SQL -> **Shapley** / SIG -> MCTS-SFT / GRPO

:func:`run_shapley` picks cases as every run does and runs
:func:`promed_agents.trainers.shapley_job.compute_shapley`: cases already stored for the
scorer and method are skipped, so a rerun resumes. ``promed shapley`` runs it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from promed_agents.knob import knob
from promed_agents.redaction import without_password
from promed_agents.runs.run_inputs import select_cases
from promed_agents.runs.run_knobs import DEFAULT_DOCTOR, case_ids_knob, cases_knob, split_knob
from promed_agents.runs.run_reporter import RunReporter, reporter_or_default
from promed_agents.runs.shared_job import lease_knob, shared_knob, work_through, worker_name
from promed_agents.sig.kernel_shapley import KernelConfig
from promed_agents.sig.shapley import PermutationConfig

if TYPE_CHECKING:
    from promed_agents.case import Case
    from promed_agents.sig.answer_scorer import AnswerScorer
    from promed_agents.storage import TraceStore
    from promed_agents.trainers.shapley_job import ShapleyConfig, ShapleyReport

__all__ = ["ShapleyCommandConfig", "run_shapley"]


@dataclass(frozen=True)
class ShapleyCommandConfig:
    """What a Shapley run computes (``promed shapley``); each field is the option of the
    same name."""

    cases: int | None = cases_knob()
    case_ids: Sequence[str] = case_ids_knob()
    split: str | None = split_knob()
    scorer: str = knob(DEFAULT_DOCTOR, help="Scorer model spec (local:...).")
    method: str = knob(
        "kernel", help="kernel (stratified paired KernelSHAP, the fastest for a given "
                       "error), exact, permutation (the reference's), or auto (exact up to "
                       "10 facts, then kernel).")
    max_evaluations: int | None = knob(
        KernelConfig.max_evaluations, min=2,
        help="kernel: at most N coalitions per case (the first 2 x facts + 2 always; "
             "2^facts gives exact values) [default: 64, or enough for two pairs of each "
             "coalition size: 2 x facts + 2 + 4 x (facts // 2 - 1)].")
    permutations: int = knob(PermutationConfig.max_permutations,
                             help="At most M permutations.", min=1)
    min_permutations: int = knob(PermutationConfig.min_permutations,
                                 help="At least this many.", min=1)
    antithetic: bool = knob(False, help="Pair permutations with reverses.")
    weight_temperature: float = knob(
        2.0, help="Softmax temperature of the stored weights (`promed mcts "
                  "--weight-temperature` reads them at its own; doctors' sampling "
                  "temperatures are another knob).", min=1e-6)
    target: str = knob("text", help="Scored answer: text or letter-text.")
    seed: int = knob(0, help="Sampling seed (kernel and permutation).")
    shared: bool = shared_knob()
    lease: float = lease_knob()



def run_shapley(store: TraceStore, settings: ShapleyCommandConfig,
                reporter: RunReporter | None = None) -> ShapleyReport:
    """Estimate and store the Shapley values of the chosen cases' facts.

    Args:
        store: where the cases are read and the values stored.
        settings: the cases, the scorer, the estimator and its budget.
        reporter: where notes and progress go [default: the logger].

    Returns the job's report: the cases computed and those skipped (already stored).
    With ``shared``, workers given the same settings share the cases out through the
    store's work queue (:mod:`promed_agents.runs.shared_job`); each reports its own."""
    from promed_agents.sig.scorer_spec import resolve_scorer
    from promed_agents.trainers.shapley_job import ShapleyConfig, compute_shapley

    reporter = reporter_or_default(reporter)
    scorer = resolve_scorer(settings.scorer, settings.target)  # type: ignore[arg-type]
    cases = select_cases(store, reporter, settings.cases, settings.case_ids, settings.split)
    config = ShapleyConfig(
        method=settings.method,  # type: ignore[arg-type]
        kernel=KernelConfig(max_evaluations=settings.max_evaluations, seed=settings.seed),
        permutations=PermutationConfig(
            max_permutations=settings.permutations,
            min_permutations=min(settings.min_permutations, settings.permutations),
            antithetic=settings.antithetic, seed=settings.seed),
        temperature=settings.weight_temperature)
    started = time.perf_counter()
    with reporter.task(f"Shapley values ({settings.scorer})", total=len(cases)) as progress:
        if settings.shared:
            report = _shared(store, settings, cases, scorer, config, progress.advance)
        else:
            report = compute_shapley(store, cases, scorer, config,
                                     on_case=lambda case, estimate: progress.advance())
    reporter.note(f"stored Shapley values for {len(report.computed)} cases "
                  f"({len(report.skipped)} already stored, skipped) in "
                  f"{time.perf_counter() - started:.1f} s; scorer "
                  f"{without_password(scorer.spec)}")
    return report


def _shared(store: TraceStore, settings: ShapleyCommandConfig, cases: list[Case],
            scorer: AnswerScorer, config: ShapleyConfig, advance: Callable[[], None]
            ) -> ShapleyReport:
    """This worker's share of the cases, claimed one at a time from the store's queue."""
    from promed_agents.trainers.shapley_job import ShapleyReport, compute_shapley

    report, by_id, worker = ShapleyReport(), {c.id: c for c in cases}, worker_name()
    job = f"shapley:{without_password(scorer.spec)}:{settings.method}:{settings.target}"

    def run_cases(claimed: list[str]) -> None:
        for case_id in claimed:  # a case stored meanwhile (by a rerun) is skipped
            done = compute_shapley(store, [by_id[case_id]], scorer, config)
            report.computed += done.computed
            report.skipped += done.skipped
            store.finish_work(job, case_id, worker)
            advance()

    work_through(store, job, list(by_id), run_cases, lease_s=settings.lease)
    return report
