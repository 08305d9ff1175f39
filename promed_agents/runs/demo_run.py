"""The demo run: the whole data path, small, on the embedded model (``promed demo``).

**case** -> **consultation graph** -> **trace in SQL** -> **Shapley/SIG** ->
**MCTS-SFT / GRPO** -> **evaluation** -> report

Each stage is the run function its own command runs (:mod:`promed_agents.runs`):
Shapley values for a few training cases (``promed shapley``), the proactive and reactive
baselines and the ``bank:random`` reference doctor on held-out cases (``promed eval``), a
short SIG-guided search whose candidate turns come from the question bank (``promed
mcts``'s default: no model call in an expansion) and SFT on its best paths, each ending
with a trained answer turn (``promed train sft``), a short SIG-GRPO from that checkpoint
(``promed train grpo``), and the trained doctor on the same held-out cases (the command
then writes the HTML report). The bundled sample's
first ``train_cases`` cases are trained on, the next ``eval_cases`` held out. Runs are named
``demo-<time>-...`` so that a demo database can hold several demos. Training needs a
``local:`` doctor; with another spec the demo stops after the baselines. A stage with
nothing to learn from (a search whose paths earned nothing) is reported and skipped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from promed_agents.errors import TrainingError
from promed_agents.knob import knob
from promed_agents.runs.evaluation_run import EvalCommandConfig, RunFigures, run_evaluation
from promed_agents.runs.grpo_run import GRPOCommandConfig, run_grpo
from promed_agents.runs.run_knobs import DEFAULT_DOCTOR
from promed_agents.runs.run_reporter import RunReporter, reporter_or_default
from promed_agents.runs.search_run import MCTSCommandConfig, run_search
from promed_agents.runs.sft_run import SFTCommandConfig, run_sft
from promed_agents.runs.shapley_run import ShapleyCommandConfig, run_shapley

if TYPE_CHECKING:
    from promed_agents.storage import TraceStore

__all__ = ["DemoConfig", "DemoResult", "run_demo"]


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
    runs: RunFigures
    """Per-case figures of each evaluation run, by run name."""
    training_runs: list[str]
    """Runs with logged training steps (their curves go in the report)."""


def _ids(start: int, count: int) -> list[str]:
    return [f"imedqa-{i}" for i in range(start, start + count)]


def run_demo(store: TraceStore, plan: DemoConfig, reporter: RunReporter | None = None
             ) -> DemoResult:
    """Every stage in order; returns the evaluation runs and the training runs.

    Args:
        store: holding the bundled sample (``imedqa-0`` ...); the runs are recorded there.
        plan: the doctor, the case counts and each stage's size.
        reporter: where every stage's notes and progress go [default: the logger]."""
    reporter = reporter_or_default(reporter)
    stamp = f"demo-{time.strftime('%Y%m%d-%H%M%S')}-seed{plan.seed}"
    held_out = _ids(plan.train_cases, plan.eval_cases)

    def scorer() -> str | None:  # the base doctor's Shapley values, where it has some
        return plan.doctor if plan.doctor in store.shapley_scorers() else None

    def evaluate(doctor: str, name: str, modes: list[str]) -> RunFigures:
        return run_evaluation(store, EvalCommandConfig(
            doctor=doctor, experiment=f"{stamp}-{name}", case_ids=held_out, modes=modes,
            max_questions=plan.max_questions, concurrency=plan.eval_cases,
            sig_scorer=scorer(), demonstration=True), reporter)

    local = plan.doctor.startswith("local:")
    if local:
        _shapley(store, plan, reporter)
    runs = evaluate(plan.doctor, "base", ["proactive", "reactive"])
    runs.update(evaluate("bank:random", "bank-random", ["proactive"]))
    if not local:
        reporter.note("training stages need a local: doctor; stopping after the baselines")
        return DemoResult(stamp, runs, [])
    trained = _train(store, plan, stamp, reporter)
    runs.update(evaluate(f"local:{trained}", "trained", ["proactive"]))
    return DemoResult(stamp, runs, [f"{stamp}-grpo"])


def _shapley(store: TraceStore, plan: DemoConfig, reporter: RunReporter) -> None:
    run_shapley(store, ShapleyCommandConfig(
        case_ids=_ids(0, min(plan.train_cases, 4)), scorer=plan.doctor,
        method="permutation", permutations=plan.permutations,
        min_permutations=plan.permutations), reporter)


def _train(store: TraceStore, plan: DemoConfig, stamp: str, reporter: RunReporter) -> Path:
    """MCTS -> SFT -> GRPO; returns the folder of the last model trained."""
    folder = plan.models / stamp
    run_search(store, MCTSCommandConfig(
        experiment=f"{stamp}-search", case_ids=_ids(0, plan.train_cases),
        doctor=plan.doctor, iterations=plan.iterations, max_questions=plan.max_questions,
        concurrency=plan.train_cases, demonstration=True, seed=plan.seed), reporter)
    start = plan.doctor
    try:
        run_sft(store, SFTCommandConfig(
            source=f"{stamp}-search", output=folder / "sft", model=plan.doctor,
            epochs=1.0, max_steps=plan.sft_steps, learning_rate=plan.sft_learning_rate,
            batch_size=plan.sft_batch_size, save_steps=plan.sft_steps, seed=plan.seed),
            reporter)
        start = f"local:{folder / 'sft'}"
    except TrainingError as error:
        reporter.note(f"SFT skipped: {error}")
    run_grpo(store, GRPOCommandConfig(
        model=start, output=folder / "grpo", experiment=f"{stamp}-grpo",
        case_ids=",".join(_ids(0, plan.train_cases)), num_generations=plan.group_size,
        max_steps=plan.grpo_steps, learning_rate=plan.grpo_learning_rate,
        max_questions=plan.max_questions, demonstration=True, save_steps=plan.grpo_steps,
        seed=plan.seed,
        sig_scorer=plan.doctor if plan.doctor in store.shapley_scorers() else None),
        reporter)
    return folder / "grpo"
