"""``promed train grpo``: SIG-GRPO on the doctor, from graph rollouts or logged traces.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> **SIG-GRPO** -> checkpoint ->
evaluation

``promed train grpo --model local:... --cases N --group-size G --steps N --output DIR``
trains on fresh consultations of the model in training (recorded under the run's
experiment); ``--from-traces EXP`` trains on consultations already stored by earlier runs
(off-policy). The run is an experiment (``--experiment``, default ``grpo-DIRNAME``) whose
per-step metrics are stored; rerunning the same command after an interruption resumes from
the newest checkpoint in ``DIR``. The result runs as a doctor with ``--doctor local:DIR``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from promed_agents.cli_options import (
    CaseIdsOption,
    CasesOption,
    DbOption,
    DemonstrationOption,
    SplitOption,
    case_id_list,
    console,
    err_console,
    open_store,
    reports_errors,
)
from promed_agents.errors import NotFoundError, TraceError, TrainingError
from promed_agents.progress_bar import progress_bar

KIND = "grpo"


@dataclass(frozen=True)
class GrpoSettings:
    model: str
    output: Path
    experiment: str | None
    cases: int | None
    case_ids: str | None
    split: str | None
    from_traces: str | None
    group_size: int
    cases_per_step: int
    steps: int
    learning_rate: float
    beta: float
    epsilon: float
    ratio_cap: float | None
    loss_type: str
    alpha: float
    sig_correct: float
    gamma: float
    format_weight: float
    temperature: float
    max_new_tokens: int
    max_questions: int
    patient: str
    sig_scorer: str | None
    require_shapley: bool
    demonstration: bool
    lora: bool
    save_steps: int
    seed: int

    @property
    def name(self) -> str:
        return self.experiment or f"grpo-{self.output.resolve().name}"


def _run(store: Any, settings: GrpoSettings, console: Console) -> tuple[int, list[Any]]:
    """The run's experiment (created, or resumed when it exists) and its cases."""
    from promed_agents.consult_command import select_cases

    try:
        experiment_id, saved = store.experiment_config(settings.name)
    except NotFoundError:
        if settings.from_traces:
            from promed_agents.trainers.episode_sources import LoggedEpisodes

            logged = LoggedEpisodes(store, _trace_experiments(store, settings.from_traces),
                                    require_shapley=settings.require_shapley)
            wanted = set(case_id_list(settings.case_ids)) or set(logged.case_ids)
            cases = [store.get_case(c) for c in logged.case_ids if c in wanted]
            cases = cases[: settings.cases] if settings.cases else cases
        else:
            cases = select_cases(store, console, settings.cases,
                                 case_id_list(settings.case_ids), settings.split)
        config = {**asdict(settings), "output": str(settings.output.resolve()), "kind": KIND,
                  "case_ids": [c.id for c in cases]}
        try:
            return store.create_experiment(settings.name, KIND, config), cases
        except TraceError:  # another process of the same launch created it first
            experiment_id, saved = store.experiment_config(settings.name)
    if saved.get("kind") != KIND:
        raise TrainingError(f"experiment {settings.name!r} exists and is not a GRPO run; "
                            "choose another --experiment name")
    if Path(saved["output"]).resolve() != settings.output.resolve():
        raise TrainingError(f"experiment {settings.name!r} trains into {saved['output']}; "
                            "give that --output to resume it, or another --experiment name")
    console.print(f"resuming GRPO run {escape(settings.name)}")
    return experiment_id, [store.get_case(case_id) for case_id in saved["case_ids"]]


def _trace_experiments(store: Any, names: str) -> list[int]:
    return [store.experiment_id(name) for name in case_id_list(names)]


def _source(store: Any, settings: GrpoSettings, experiment_id: int, cases: list[Any],
            console: Console) -> Any:
    from promed_agents.consult_command import patient_from_spec, sig_evaluator
    from promed_agents.trainers.episode_sources import GraphRollouts, LoggedEpisodes

    if settings.from_traces:
        return LoggedEpisodes(store, _trace_experiments(store, settings.from_traces),
                              require_shapley=settings.require_shapley)
    evaluator = sig_evaluator(store, settings.sig_scorer or settings.model, cases, console,
                              require_shapley=settings.require_shapley)
    return GraphRollouts({c.id: c for c in cases}, patient=patient_from_spec(settings.patient),
                         evaluator=evaluator, max_questions=settings.max_questions,
                         max_turn_tokens=settings.max_new_tokens,
                         demonstration=settings.demonstration, store=store,
                         experiment_id=experiment_id)


def train_grpo_command(store: Any, settings: GrpoSettings, console: Console,
                       progress_console: Console) -> Any:
    from promed_agents.train_command import local_ref, progress_callback
    from promed_agents.trainers.grpo_trainer import GRPOResult, SigGRPOConfig, train_grpo
    from promed_agents.trainers.training_output import finished_receipt

    ref = local_ref(settings.model)
    experiment_id, cases = _run(store, settings, console)
    receipt = finished_receipt(settings.output)
    if receipt is not None and receipt.get("experiment_id") == experiment_id:
        console.print(f"GRPO run {escape(settings.name)} is already finished "
                      f"({receipt['steps']} steps): model in {escape(str(settings.output))}")
        return GRPOResult(settings.output, receipt["steps"], None,
                          receipt.get("checkpoint_id"), receipt)
    source = _source(store, settings, experiment_id, cases, console)
    size = settings.group_size * settings.cases_per_step
    config = SigGRPOConfig(
        output_dir=str(settings.output), max_steps=settings.steps,
        learning_rate=settings.learning_rate, num_generations=settings.group_size,
        per_device_train_batch_size=size, beta=settings.beta, epsilon=settings.epsilon,
        delta=settings.ratio_cap, loss_type=settings.loss_type,
        temperature=settings.temperature, sig_weight=settings.alpha,
        sig_correct_weight=settings.sig_correct, answer_weight=settings.gamma,
        format_weight=settings.format_weight, use_lora=settings.lora, logging_steps=1,
        save_strategy="steps", save_steps=settings.save_steps, save_total_limit=1,
        report_to="none", seed=settings.seed, disable_tqdm=True,
        policy_name=f"grpo:{settings.name}")
    mode = "logged traces" if settings.from_traces else "graph rollouts"
    console.print(f"SIG-GRPO on {len(cases)} case(s) from {mode}: {settings.steps} steps of "
                  f"{settings.cases_per_step} case(s) x {settings.group_size} consultations")
    started = time.perf_counter()
    with progress_bar(progress_console) as progress:
        task = progress.add_task(f"GRPO ({settings.model})", total=settings.steps)
        result = train_grpo(ref, cases, source, config, store=store,
                            experiment_id=experiment_id, base_model_spec=settings.model,
                            callbacks=[progress_callback(progress, task)])
    last = result.metrics.get("last_log", {})
    console.print(f"trained {result.steps} steps in {time.perf_counter() - started:.0f} s"
                  + (f" (resumed from {escape(result.resumed_from)})" if result.resumed_from
                     else "")
                  + "; last step: " + ", ".join(
                      f"{k} {last[k]:.3f}" for k in ("episodes/sig", "episodes/accuracy",
                                                     "episodes/questions", "kl") if k in last))
    console.print(f"metrics: {escape(str(result.output_dir / 'training_log.jsonl'))} and run "
                  f"{escape(settings.name)} in the store\nmodel: "
                  f"{escape(str(result.output_dir))} (use it with --doctor "
                  f"local:{escape(str(result.output_dir))})")
    return result


@reports_errors
def grpo(
    output: Annotated[Path, typer.Option(help="Folder of the trained model.")],
    model: Annotated[str, typer.Option(help="Starting model spec (local:...).")] =
    "local:smollm2",
    experiment: Annotated[str | None, typer.Option(
        help="Name of this run [default: grpo-OUTPUT_NAME]; rerun to resume.")] = None,
    cases: CasesOption = None,
    case_ids: CaseIdsOption = None,
    split: SplitOption = None,
    from_traces: Annotated[str | None, typer.Option(
        help="Train on stored consultations of these experiments (comma-separated) "
             "instead of fresh rollouts.")] = None,
    group_size: Annotated[int, typer.Option(min=2, help="Consultations per case (G).")] = 8,
    cases_per_step: Annotated[int, typer.Option(min=1, help="Cases per step.")] = 1,
    steps: Annotated[int, typer.Option(min=1, help="Training steps.")] = 30,
    learning_rate: Annotated[float, typer.Option(min=0.0, help="Learning rate.")] = 5e-6,
    beta: Annotated[float, typer.Option(min=0.0, help="k3 KL weight (0: no reference).")] =
    0.04,
    epsilon: Annotated[float, typer.Option(min=0.0, help="PPO clipping.")] = 0.1,
    ratio_cap: Annotated[float | None, typer.Option(
        help="Cap of the importance ratio (TRL's delta; useful with --from-traces).")] = None,
    loss_type: Annotated[str, typer.Option(help="TRL loss type (grpo, dapo, dr_grpo, ...).")]
    = "grpo",
    alpha: Annotated[float, typer.Option(help="Question tokens: weight of SIG.")] = 2.0,
    sig_correct: Annotated[float, typer.Option(help="Question tokens: SIG x correct.")] = 1.0,
    gamma: Annotated[float, typer.Option(help="Answer tokens: weight of correct.")] = 3.0,
    format_weight: Annotated[float, typer.Option(help="Every turn: format score.")] = 1.0,
    temperature: Annotated[float, typer.Option(min=0.01, help="Rollout sampling.")] = 0.7,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Tokens per doctor turn.")] = 48,
    max_questions: Annotated[int, typer.Option(min=0, help="Question budget.")] = 10,
    patient: Annotated[str, typer.Option(help="fact-select or llm:MODEL_SPEC.")] =
    "fact-select",
    sig_scorer: Annotated[str | None, typer.Option(
        help="Whose stored Shapley values weigh facts [default: --model].")] = None,
    require_shapley: Annotated[bool, typer.Option(
        help="Refuse to start unless every case has stored Shapley values (else those "
             "without weigh their facts uniformly).")] = False,
    demonstration: DemonstrationOption = False,
    lora: Annotated[bool, typer.Option(help="Train a LoRA adapter (merged on save).")] =
    False,
    save_steps: Annotated[int, typer.Option(min=1, help="Checkpoint every N steps.")] = 10,
    seed: Annotated[int, typer.Option(help="Training seed.")] = 0,
    db: DbOption = None,
) -> None:
    """SIG-GRPO: question tokens rewarded by their SIG, answers by correctness; from
    fresh consultations of the model in training or from stored ones. A rerun resumes."""
    settings = GrpoSettings(
        model=model, output=output, experiment=experiment, cases=cases, case_ids=case_ids,
        split=split, from_traces=from_traces, group_size=group_size,
        cases_per_step=cases_per_step, steps=steps, learning_rate=learning_rate, beta=beta,
        epsilon=epsilon, ratio_cap=ratio_cap, loss_type=loss_type, alpha=alpha,
        sig_correct=sig_correct, gamma=gamma, format_weight=format_weight,
        temperature=temperature, max_new_tokens=max_new_tokens, max_questions=max_questions,
        patient=patient, sig_scorer=sig_scorer, require_shapley=require_shapley,
        demonstration=demonstration, lora=lora,
        save_steps=save_steps, seed=seed)
    with open_store(db) as store:
        train_grpo_command(store, settings, console, err_console)
