"""``promed demo``'s main job: the whole data path, small, on the embedded model.

**case** -> **consultation graph** -> **trace in SQL** -> **Shapley/SIG** ->
**MCTS-SFT / GRPO** -> **evaluation** -> report

Each stage is the same function its own command runs: Shapley values for a few training
cases (``promed shapley``), the proactive and reactive baselines and the ``bank:random``
reference doctor on held-out cases (``promed eval``), a short SIG-guided search whose
candidate turns come from the question bank (``promed mcts``'s default: no model call in
an expansion) and SFT on its best paths, each ending with a trained answer turn
(``promed train sft``), a short SIG-GRPO from that checkpoint (``promed train grpo``), the
trained doctor on the same held-out cases, then the HTML report. The bundled sample's
first ``train_cases`` cases are trained on, the next ``eval_cases`` held out. Runs are named
``demo-<time>-...`` so that a demo database can hold several demos. Training needs a
``local:`` doctor; with another spec the demo stops after the baselines. A stage with
nothing to learn from (a search whose paths earned nothing) is reported and skipped.
"""


from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from promed_agents.cli.cases import import_file, show_case
from promed_agents.cli.config_options import config_command, knob
from promed_agents.cli.evaluate import EvalCommandConfig, results_table, run_evaluation
from promed_agents.cli.grpo import GRPOCommandConfig, train_grpo_command
from promed_agents.cli.mcts import MCTSCommandConfig, search
from promed_agents.cli.options import (
    DEFAULT_DOCTOR,
    DEMO_DB,
    DbOption,
    console,
    err_console,
    open_store,
    reports_errors,
    shown,
)
from promed_agents.cli.shapley import ShapleyCommandConfig, compute
from promed_agents.cli.train import SFTCommandConfig, train_sft_command
from promed_agents.errors import TrainingError
from promed_agents.evaluation import paired_difference, relative_gain
from promed_agents.loader import SAMPLE_SPLIT, CaseFormat, bundled_sample_path
from promed_agents.partial_view import PartialInfoPolicy
from promed_agents.redaction import without_password

if TYPE_CHECKING:
    from promed_agents.storage import TraceStore


@dataclass(frozen=True)
class DemoConfig:
    """What ``promed demo`` runs; the fields with help text are its options."""

    doctor: str = knob(DEFAULT_DOCTOR, help="Doctor model spec; 'none' skips consulting.")
    train_cases: int = knob(20, help="Cases searched and trained on (the first 4 get "
                                     "Shapley values).", min=1)
    eval_cases: int = knob(30, help="Held-out cases evaluated (the ones after the training "
                                    "cases).", min=1, flags=("--cases",))
    max_questions: int = knob(3, help="Question budget.", min=0)
    permutations: int = 4
    iterations: int = 8
    sft_steps: int = knob(16, help="SFT steps.", min=1)
    sft_batch_size: int = 2
    """Two sequences a step: a step of four costs twice as much on CPU."""
    sft_learning_rate: float = 1e-4
    grpo_steps: int = knob(4, help="SIG-GRPO steps.", min=1)
    grpo_learning_rate: float = 1e-5
    group_size: int = 2
    seed: int = knob(0, help="Seeds the search's draws, SFT and GRPO.")
    models: Path = knob(Path("promed-demo-models"), help="Where the trained models go.")


@dataclass(frozen=True)
class DemoResult:
    name: str
    """The demo's runs are called NAME-base-proactive, NAME-grpo, ..."""
    runs: dict[str, dict[str, dict[str, float]]]
    """Per-case figures of each evaluation run, by run name."""
    training_runs: list[str]
    """Runs with logged training steps (their curves go in the report)."""


def _ids(start: int, count: int) -> list[str]:
    return [f"imedqa-{i}" for i in range(start, start + count)]


def run_demo(store: TraceStore, plan: DemoConfig, console: Console, progress_console: Console
             ) -> DemoResult:
    """Every stage in order; returns the evaluation runs and the training runs."""

    stamp = f"demo-{time.strftime('%Y%m%d-%H%M%S')}-seed{plan.seed}"
    held_out = _ids(plan.train_cases, plan.eval_cases)

    def scorer() -> str | None:  # the base doctor's Shapley values, where it has some
        return plan.doctor if plan.doctor in store.shapley_scorers() else None

    def evaluate(doctor: str, name: str, modes: list[str]) -> dict[str, Any]:
        return run_evaluation(store, EvalCommandConfig(
            doctor=doctor, experiment=f"{stamp}-{name}", case_ids=held_out, modes=modes,
            max_questions=plan.max_questions, concurrency=plan.eval_cases,
            sig_scorer=scorer(), demonstration=True), console, progress_console)

    local = plan.doctor.startswith("local:")
    if local:
        _shapley(store, plan, console, progress_console)
    runs = evaluate(plan.doctor, "base", ["proactive", "reactive"])
    runs.update(evaluate("bank:random", "bank-random", ["proactive"]))
    if not local:
        console.print("training stages need a local: doctor; stopping after the baselines")
        return DemoResult(stamp, runs, [])
    trained = _train(store, plan, stamp, console, progress_console)
    runs.update(evaluate(f"local:{trained}", "trained", ["proactive"]))
    return DemoResult(stamp, runs, [f"{stamp}-grpo"])


def _shapley(store: TraceStore, plan: DemoConfig, console: Console,
             progress_console: Console) -> None:

    compute(store, ShapleyCommandConfig(
        case_ids=_ids(0, min(plan.train_cases, 4)), scorer=plan.doctor,
        method="permutation", permutations=plan.permutations,
        min_permutations=plan.permutations), console, progress_console)


def _train(store: TraceStore, plan: DemoConfig, stamp: str, console: Console,
           progress_console: Console) -> Path:
    """MCTS -> SFT -> GRPO; returns the folder of the last model trained."""

    folder = plan.models / stamp
    search(store, MCTSCommandConfig(
        experiment=f"{stamp}-search", case_ids=_ids(0, plan.train_cases),
        doctor=plan.doctor, iterations=plan.iterations, max_questions=plan.max_questions,
        concurrency=plan.train_cases, demonstration=True, seed=plan.seed), console,
        progress_console)
    start = plan.doctor
    try:
        train_sft_command(store, SFTCommandConfig(
            source=f"{stamp}-search", output=folder / "sft", model=plan.doctor,
            epochs=1.0, max_steps=plan.sft_steps, learning_rate=plan.sft_learning_rate,
            batch_size=plan.sft_batch_size, save_steps=plan.sft_steps, seed=plan.seed),
            console,
            progress_console)
        start = f"local:{folder / 'sft'}"
    except TrainingError as error:
        console.print(f"SFT skipped: {shown(str(error))}")
    train_grpo_command(store, GRPOCommandConfig(
        model=start, output=folder / "grpo", experiment=f"{stamp}-grpo",
        case_ids=",".join(_ids(0, plan.train_cases)), num_generations=plan.group_size,
        max_steps=plan.grpo_steps, learning_rate=plan.grpo_learning_rate,
        max_questions=plan.max_questions, demonstration=True, save_steps=plan.grpo_steps,
        seed=plan.seed,
        sig_scorer=plan.doctor if plan.doctor in store.shapley_scorers() else None),
        console, progress_console)
    return folder / "grpo"


# -- the CLI entry -----------------------------------------------------------------------

CHANCE_NOTE = (
    "Accuracy is near chance: SmolLM2-135M barely uses case information (option-likelihood "
    "accuracy 0.300 [0.180, 0.420] with all facts, 0.240 [0.120, 0.360] with none, "
    "difference +0.060 [-0.020, +0.140], on the 50 bundled cases, measured by "
    "`python benchmarks/option_likelihood.py`; BENCHMARKS.md), so the demo shows asking "
    "(answerable share, facts acquired, SIG); accuracy gains need a stronger doctor and "
    "scorer (docs/scaling_out.md).")

@reports_errors
@config_command(DemoConfig)
def demo(
    plan: DemoConfig,
    report_file: Annotated[Path, typer.Option(
        "--report", help="Where the HTML report goes.")] = Path("promed-demo-report.html"),
    db: DbOption = None,
) -> None:
    """The whole pipeline, small, on the embedded model: import the bundled sample,
    Shapley values, proactive and reactive baselines, MCTS then SFT, SIG-GRPO, evaluation
    of the trained doctor, and an HTML report.

    Uses its own database, promed-demo.db, unless --db or PROMED_DB says otherwise."""
    db = db or DEMO_DB
    sample = bundled_sample_path()
    bundled = sum(1 for line in sample.read_text(encoding="utf-8").splitlines() if line.strip())
    doctor, train_cases, cases = plan.doctor, plan.train_cases, plan.eval_cases
    if train_cases + cases > bundled:
        raise typer.BadParameter(
            f"{train_cases} training and {cases} held-out cases need {train_cases + cases} "
            f"cases; the bundled sample has {bundled}: lower --train-cases or --cases",
            param_hint="--cases")
    if doctor != "none":  # refused before the demo's store is made
        from promed_agents.agents.reference_doctors import resolve_doctor
        from promed_agents.atomic_file import check_output_path

        resolve_doctor(doctor)
        check_output_path(report_file)
    added, unchanged = import_file(sample, CaseFormat.AUTO, SAMPLE_SPLIT, None, db)
    console.print(f"bundled sample: {added} case(s) added, {unchanged} already stored "
                  "(iMedQA from MediQ, CC BY 4.0)")
    with open_store(db) as store:
        groups = store.case_groups()
        first = store.list_cases(source="imedqa", split=SAMPLE_SPLIT, limit=1)
    table = Table(title=f"cases in {shown(str(without_password(db)))}")
    for column in ("source", "split", "language", "cases", "facts", "facts/case"):
        table.add_column(column)
    for g in groups:
        table.add_row(shown(g.source), shown(g.split or "-"), shown(g.language), str(g.cases),
                      str(g.facts),
                      f"{g.facts / g.cases:.1f}" if g.cases else "-")
    console.print(table)
    if first:
        show_case(first[0], PartialInfoPolicy.HALF_FACTS)
    if doctor == "none":
        return
    from promed_agents.atomic_file import atomic_writer
    from promed_agents.report import build_report
    from promed_agents.storage import StoredWeights

    started = time.perf_counter()
    with open_store(db) as store:
        result = run_demo(store, plan, console, err_console)
        with atomic_writer(report_file) as out:
            out.write(build_report(store, [*result.runs, *result.training_runs],
                                   weights_for=lambda spec: StoredWeights(store, spec)))
    runs, prefix = result.runs, f"{result.name}-"
    table = results_table({n.removeprefix(prefix): f for n, f in runs.items()}, shown(
        f"{result.name}: held-out cases, 95% bootstrap CI "
        f"({time.perf_counter() - started:.0f} s)"), runs.weighting())
    if doctor == DEFAULT_DOCTOR:
        table.caption = CHANCE_NOTE
    console.print(table)
    gain = relative_gain(runs[f"{prefix}base-reactive"], runs[f"{prefix}base-proactive"])
    console.print("relative accuracy gain of proactive over reactive (base): " + (
        "undefined (reactive accuracy 0)" if gain is None else escape(gain.text("+.1%"))))
    trained = runs.get(f"{prefix}trained-proactive")
    for other in ("base-proactive", "bank-random-proactive"):
        if trained is not None and f"{prefix}{other}" in runs:
            d = paired_difference(runs[f"{prefix}{other}"], trained)["sig"]
            console.print(f"SIG / episode, trained minus {other} (paired by case): "
                          f"{escape(d.text('+.3f'))}")
    console.print(f"report: {shown(str(report_file.resolve()))}")
