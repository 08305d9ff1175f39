"""``promed demo``'s main job: the whole data path, small, on the embedded model.

**case** -> **consultation graph** -> **trace in SQL** -> **Shapley/SIG** ->
**MCTS-SFT / GRPO** -> **evaluation** -> report

Each stage is the same function its own command runs: Shapley values for a few training
cases (``promed shapley``), the proactive and reactive baselines and the ``bank:random``
reference doctor on held-out cases (``promed eval``), a short SIG-guided search whose
candidate turns come from the policy and the question bank (``promed mcts --proposer
bank``) and SFT on its best paths (``promed train sft``), a short SIG-GRPO from that
checkpoint (``promed train grpo``), the trained doctor on the same held-out cases, then
the HTML report. Runs are named
``demo-<time>-...`` so that a demo database can hold several demos. Training needs a
``local:`` doctor; with another spec the demo stops after the baselines. A stage with
nothing to learn from (a search whose paths earned nothing) is reported and skipped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from promed_agents.errors import TrainingError


@dataclass(frozen=True)
class DemoPlan:
    doctor: str = "local:smollm2"
    train_cases: int = 16
    """Cases for the search and GRPO (imedqa-0 ...); the first 4 get Shapley values."""
    eval_cases: int = 10
    """Held-out cases for the evaluations (imedqa-20 ...)."""
    max_questions: int = 3
    permutations: int = 4
    iterations: int = 4
    proposer: str = "bank"
    proposer_ratio: float = 0.75
    """The search's correct bonus is 0: the embedded model answers at chance, so a right
    answer is luck and would outrank an informative path."""
    sft_steps: int = 6
    sft_batch_size: int = 2
    """Two sequences a step: a step of four costs twice as much on CPU."""
    sft_learning_rate: float = 1e-4
    grpo_steps: int = 4
    group_size: int = 2
    models: Path = Path("promed-demo-models")


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


def run_demo(store: Any, plan: DemoPlan, console: Console, progress_console: Console
             ) -> DemoResult:
    """Every stage in order; returns the evaluation runs and the training runs."""
    from promed_agents.eval_command import EvalSettings, run_evaluation

    stamp = f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    held_out = _ids(20, plan.eval_cases)

    def evaluate(doctor: str, name: str, modes: list[str]) -> dict[str, Any]:
        return run_evaluation(store, EvalSettings(
            doctor=doctor, experiment=f"{stamp}-{name}", cases=None, case_ids=held_out,
            split=None, modes=modes, seeds=1, patient="fact-select",
            max_questions=plan.max_questions, temperature=0.0, max_new_tokens=48,
            concurrency=plan.eval_cases, sig_scorer=plan.doctor, demonstration=True),
            console, progress_console)

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


def _shapley(store: Any, plan: DemoPlan, console: Console, progress_console: Console) -> None:
    from promed_agents.shapley_command import ShapleySettings, compute

    compute(store, ShapleySettings(
        cases=None, case_ids=_ids(0, min(plan.train_cases, 4)), split=None,
        scorer=plan.doctor,
        method="permutation", permutations=plan.permutations,
        min_permutations=plan.permutations, antithetic=False, temperature=2.0,
        target="text", seed=0), console, progress_console)


def _train(store: Any, plan: DemoPlan, stamp: str, console: Console,
           progress_console: Console) -> Path:
    """MCTS -> SFT -> GRPO; returns the folder of the last model trained."""
    from promed_agents.grpo_command import GrpoSettings, train_grpo_command
    from promed_agents.mcts_command import MctsSettings, search
    from promed_agents.train_command import SftSettings, train_sft_command

    folder = plan.models / stamp
    search(store, MctsSettings(
        cases=None, case_ids=_ids(0, plan.train_cases), split=None, doctor=plan.doctor,
        patient="fact-select", experiment=f"{stamp}-search", iterations=plan.iterations,
        width=8, exploration=2.2, decay=0.9, correct_bonus=0.0, temperature=1.0,
        max_new_tokens=48, max_questions=plan.max_questions, concurrency=plan.train_cases,
        weight_temperature=1.0, demonstration=True, proposer=plan.proposer,
        proposer_ratio=plan.proposer_ratio), console, progress_console)
    start = plan.doctor
    try:
        train_sft_command(store, SftSettings(
            source=f"{stamp}-search", output=folder / "sft", model=plan.doctor,
            dataset=None, min_reward=None, correct_only=False, epochs=1.0,
            max_steps=plan.sft_steps, learning_rate=plan.sft_learning_rate,
            batch_size=plan.sft_batch_size,
            max_length=2048,
            lora=False, seed=0, save_steps=plan.sft_steps), console, progress_console)
        start = f"local:{folder / 'sft'}"
    except TrainingError as error:
        console.print(f"SFT skipped: {escape(str(error))}")
    train_grpo_command(store, GrpoSettings(
        model=start, output=folder / "grpo", experiment=f"{stamp}-grpo", cases=None,
        case_ids=",".join(_ids(0, plan.train_cases)), split=None, from_traces=None,
        group_size=plan.group_size, cases_per_step=1, steps=plan.grpo_steps,
        learning_rate=1e-5, beta=0.04, epsilon=0.1, ratio_cap=None, loss_type="grpo",
        alpha=2.0, sig_correct=1.0, gamma=3.0, format_weight=1.0, temperature=0.7,
        max_new_tokens=48, max_questions=plan.max_questions, patient="fact-select",
        sig_scorer=plan.doctor, require_shapley=False, demonstration=True, lora=False,
        save_steps=plan.grpo_steps, seed=0), console, progress_console)
    return folder / "grpo"
