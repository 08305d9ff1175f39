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
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from promed_agents.cli.config_options import config_command, knob
from promed_agents.cli.options import (
    DEFAULT_DOCTOR,
    DbOption,
    RenamedFloat,
    case_ids_knob,
    cases_knob,
    console,
    err_console,
    open_store,
    renamed,
    reports_errors,
    select_cases,
    shown,
    split_knob,
)
from promed_agents.cli.progress_bar import progress_bar
from promed_agents.errors import NotFoundError
from promed_agents.sig.kernel_shapley import KernelConfig
from promed_agents.sig.shapley import PermutationConfig

if TYPE_CHECKING:
    from promed_agents.storage import TraceStore


@dataclass(frozen=True)
class ShapleyCommandConfig:
    """What ``promed shapley`` runs; each field is the option of the same name."""

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


def compute(store: TraceStore, settings: ShapleyCommandConfig, console: Console,
            progress_console: Console) -> Any:
    from promed_agents.sig.scorer_spec import resolve_scorer
    from promed_agents.trainers.shapley_job import ShapleyConfig, compute_shapley

    scorer = resolve_scorer(settings.scorer, settings.target)  # type: ignore[arg-type]
    cases = select_cases(store, console, settings.cases, settings.case_ids, settings.split)
    config = ShapleyConfig(
        method=settings.method,  # type: ignore[arg-type]
        kernel=KernelConfig(max_evaluations=settings.max_evaluations, seed=settings.seed),
        permutations=PermutationConfig(
            max_permutations=settings.permutations,
            min_permutations=min(settings.min_permutations, settings.permutations),
            antithetic=settings.antithetic, seed=settings.seed),
        temperature=settings.weight_temperature)
    started = time.perf_counter()
    with progress_bar(progress_console) as progress:
        task = progress.add_task(f"Shapley values ({settings.scorer})", total=len(cases))
        report = compute_shapley(store, cases, scorer, config,
                                 on_case=lambda case, estimate: progress.advance(task))
    console.print(f"stored Shapley values for {len(report.computed)} cases "
                  f"({len(report.skipped)} already stored, skipped) in "
                  f"{time.perf_counter() - started:.1f} s; scorer {shown(scorer.spec)}")
    return report


def show(store: TraceStore, case_id: str, scorer: str, method: str | None,
         console: Console) -> None:
    case = store.get_case(case_id)
    record = store.get_shapley(case_id, scorer, method)
    if record is None:
        raise NotFoundError(f"no Shapley values for case {case_id!r} under scorer {scorer!r}"
                            f"{f' and method {method!r}' if method else ''}; compute them "
                            f"with 'promed shapley --case-ids {case_id} --scorer "
                            f"{scorer}'")
    table = Table(title=shown(f"{case_id}: Shapley values ({record.method}, "
                               f"{record.scorer_spec}, softmax T={record.temperature:g}, "
                               f"{record.samples} samples)", one_line=True))
    for column in ("#", "fact", "value", "weight", "std. error"):
        table.add_column(column, justify="left" if column == "fact" else "right")
    for i, fact in enumerate(case.facts):
        error = record.std_errors[i]
        table.add_row(str(i), shown(fact), f"{record.values[i]:+.4f}",
                      f"{record.weights[i]:.3f}", "-" if error is None else f"{error:.4f}")
    console.print(table)


# -- the CLI entries ---------------------------------------------------------------------

shapley_app = typer.Typer(help="Shapley values of case facts (the weights behind SIG).")


@shapley_app.callback(invoke_without_command=True)
@reports_errors
@config_command(ShapleyCommandConfig)
def shapley_compute(settings: ShapleyCommandConfig, ctx: typer.Context, db: DbOption = None,
                    temperature: RenamedFloat = None) -> None:
    """Estimate and store fact Shapley values (cases already stored are skipped);
    `promed shapley show CASE` prints them."""
    if ctx.invoked_subcommand is not None:
        return
    if settings.method not in ("kernel", "exact", "permutation", "auto"):
        raise typer.BadParameter(f"{settings.method!r}: use kernel, exact, permutation or "
                                 "auto", param_hint="--method")
    if settings.target not in ("text", "letter-text"):
        raise typer.BadParameter(f"{settings.target!r}: use text or letter-text",
                                 param_hint="--target")
    settings = replace(settings, weight_temperature=renamed(
        "--temperature", temperature, "--weight-temperature", settings.weight_temperature))
    with open_store(db) as store:
        compute(store, settings, console, err_console)


@shapley_app.command("show")
@reports_errors
def shapley_show(
    case_id: Annotated[str, typer.Argument(help="Case id.")],
    scorer: Annotated[str, typer.Option(help="Scorer model spec.")] = DEFAULT_DOCTOR,
    method: Annotated[str | None, typer.Option(help="kernel, exact, permutation, ... "
                                               "[default: the latest stored]")] = None,
    db: DbOption = None,
) -> None:
    """Print a case's facts with Shapley value, weight and standard error."""
    with open_store(db, create=False) as store:
        show(store, case_id, scorer, method, console)
