"""``promed train grpo``: SIG-GRPO on the doctor, from graph rollouts or logged traces.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> **SIG-GRPO** -> checkpoint ->
evaluation

``promed train grpo --model local:... --cases N --num-generations G --max-steps N --output DIR``
runs :func:`promed_agents.runs.grpo_run.run_grpo`: it trains on fresh consultations of the
model in training (recorded under the run's experiment); ``--from-traces EXP`` trains on
consultations already stored by earlier runs (off-policy). The run is an experiment
(``--experiment``, default ``grpo-DIRNAME``) whose per-step metrics are stored;
rerunning the same command after an interruption resumes from the newest checkpoint in
``DIR``. The result runs as a doctor with ``--doctor local:DIR``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import typer

from promed_agents.cli.config_options import config_command
from promed_agents.cli.options import (
    DbOption,
    RenamedFloat,
    console,
    err_console,
    open_store,
    renamed,
    reports_errors,
)
from promed_agents.cli.progress_bar import ConsoleReporter
from promed_agents.runs.grpo_run import GRPOCommandConfig, run_grpo

__all__ = ["GRPOCommandConfig", "grpo", "run_grpo"]

RenamedInt = Annotated[int | None, typer.Option(hidden=True)]


@reports_errors
@config_command(GRPOCommandConfig)
def grpo(
    settings: GRPOCommandConfig,
    db: DbOption = None,
    group_size: RenamedInt = None,
    steps: RenamedInt = None,
    alpha: RenamedFloat = None,
    sig_correct: RenamedFloat = None,
    gamma: RenamedFloat = None,
    ratio_cap: RenamedFloat = None,
) -> None:
    """GRPO on consultations (default SIG-GRPO: question tokens rewarded by their SIG,
    answers by correctness; --reward for the other designs), from fresh consultations of
    the model in training or from stored ones. A rerun resumes."""
    settings = replace(
        settings,
        num_generations=renamed("--group-size", group_size, "--num-generations",
                                settings.num_generations),
        max_steps=renamed("--steps", steps, "--max-steps", settings.max_steps),
        delta=renamed("--ratio-cap", ratio_cap, "--delta", settings.delta),
        sig_weight=renamed("--alpha", alpha, "--sig-weight", settings.sig_weight),
        sig_correct_weight=renamed("--sig-correct", sig_correct, "--sig-correct-weight",
                                   settings.sig_correct_weight),
        answer_weight=renamed("--gamma", gamma, "--answer-weight", settings.answer_weight))
    with open_store(db) as store:
        run_grpo(store, settings, ConsoleReporter(console, err_console))
