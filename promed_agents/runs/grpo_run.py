"""A GRPO run: SIG-GRPO on the doctor, from graph rollouts or logged traces, recorded.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> **SIG-GRPO** -> checkpoint ->
evaluation

:func:`run_grpo` trains on fresh consultations of the model in training (recorded under
the run's experiment), or with ``from_traces`` on consultations stored by earlier runs
(off-policy). The run is an experiment (default name ``grpo-DIRNAME``) whose per-step
metrics are stored; running it again after an interruption resumes from the newest
checkpoint in the output folder. The result runs as a doctor with ``local:OUTPUT``.
``promed train grpo`` runs it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promed_agents.agents.judge import resolve_judge
from promed_agents.agents.measurement import resolve_measurement
from promed_agents.agents.patient_spec import resolve_patient
from promed_agents.backends.local_weights import local_model_ref
from promed_agents.errors import NotFoundError, TraceError, TrainingError
from promed_agents.knob import knob, knob_from
from promed_agents.partial_view import PartialInfoPolicy
from promed_agents.runs.run_inputs import check_sig_scorer, evaluator_for, select_cases
from promed_agents.runs.run_knobs import (
    DEFAULT_DOCTOR,
    budget_range,
    case_id_list,
    cases_knob,
    demonstration_knob,
    judge_knob,
    max_new_tokens_knob,
    max_questions_knob,
    measurement_knob,
    patient_knob,
    policy_knob,
    split_knob,
)
from promed_agents.runs.run_lifecycle import recorded_run
from promed_agents.runs.run_reporter import RunReporter, reporter_or_default, training_callback
from promed_agents.trainers.reference_hyperparameters import GRPOHyperparameters
from promed_agents.trainers.reward_designs import RewardChoice
from promed_agents.trainers.token_rewards import RewardWeights

if TYPE_CHECKING:
    from promed_agents.storage import TraceStore
    from promed_agents.trainers.grpo_trainer import GRPOResult

__all__ = ["GRPOCommandConfig", "run_grpo"]

KIND = "grpo"


@dataclass(frozen=True)
class GRPOCommandConfig:
    """What a GRPO run trains (``promed train grpo``); each field is the option of the
    same name, and the defaults are the reference's (:data:`REFERENCE_GRPO`,
    :data:`REFERENCE_WEIGHTS`)."""

    output: Path = knob(help="Folder of the trained model.")
    model: str = knob(DEFAULT_DOCTOR, help="Starting model spec (local:...).")
    experiment: str | None = knob(
        None, help="Name of this run [default: grpo-OUTPUT_NAME]; rerun to resume.")
    cases: int | None = cases_knob()
    case_ids: str | None = knob(None, help="Comma-separated case ids.")
    split: str | None = split_knob()
    from_traces: str | None = knob(
        None, help="Train on stored consultations of these experiments (comma-separated) "
                   "instead of fresh rollouts.")
    num_generations: int = knob_from(GRPOHyperparameters, "num_generations", min=2)
    cases_per_step: int = knob(1, help="Cases per step.", min=1)
    max_steps: int = knob(30, help="Training steps.", min=1)
    learning_rate: float = knob_from(GRPOHyperparameters, "learning_rate", min=0.0)
    beta: float = knob_from(GRPOHyperparameters, "beta", min=0.0)
    epsilon: float = knob_from(GRPOHyperparameters, "epsilon", min=0.0)
    delta: float | None = knob(
        None, help="TRL's delta: cap of the importance ratio (useful with --from-traces).")
    loss_type: str = knob_from(GRPOHyperparameters, "loss_type")
    sig_weight: float = knob_from(RewardWeights, "sig_weight")
    sig_correct_weight: float = knob_from(RewardWeights, "sig_correct_weight")
    answer_weight: float = knob_from(RewardWeights, "answer_weight")
    format_weight: float = knob_from(RewardWeights, "format_weight")
    test_cost: float = knob_from(RewardWeights, "test_cost")
    reward: str = knob(
        "promed", help="Reward design: promed (SIG per token; the weights above), "
                       "doctoragent (DoctorAgent-RL), outcome (correctness only), "
                       "rollout-level (ProMed's ablation).")
    length_penalty: float = knob(
        0.0, help="The answer loses this x its tokens / --max-new-tokens (Med-U1; 0: off).",
        min=0.0)
    dynamic_budget: str | None = knob(
        None, help="Draw each consultation's doctor turns from LOW-HIGH (DoctorAgent-RL: "
                   "2-10); the doctor sees 'Turn t of T.' [default: --max-questions]")
    temperature: float = knob_from(GRPOHyperparameters, "temperature", min=0.01)
    max_new_tokens: int = max_new_tokens_knob()
    max_questions: int = max_questions_knob()
    patient: str = patient_knob()
    sig_scorer: str | None = knob(
        None, help="Whose stored Shapley values weigh facts [default: --model].")
    require_shapley: bool = knob(
        False, help="Refuse to start unless every case has stored Shapley values (else "
                    "those without weigh their facts uniformly).")
    demonstration: bool = demonstration_knob()
    policy: PartialInfoPolicy = policy_knob()
    judge: str = judge_knob()
    measurement: str = measurement_knob()
    lora: bool = knob(False, help="Train a LoRA adapter (merged on save).")
    save_steps: int = knob(10, help="Checkpoint every N steps.", min=1)
    seed: int = knob(0, help="Training seed.")

    @property
    def name(self) -> str:
        return self.experiment or f"grpo-{self.output.resolve().name}"


def _run(store: TraceStore, settings: GRPOCommandConfig, reporter: RunReporter
         ) -> tuple[int, list[Any]]:
    """The run's experiment (created, or resumed when it exists) and its cases."""
    check_sig_scorer(store, settings.sig_scorer)
    resolve_judge(settings.judge)
    resolve_measurement(settings.measurement)
    RewardChoice(settings.reward, settings.length_penalty, weights=RewardWeights(
        test_cost=settings.test_cost)).design()  # named before it runs
    if budget_range(settings.dynamic_budget) and settings.from_traces:
        raise TrainingError("--dynamic-budget sets the budget of fresh rollouts; stored "
                            "consultations (--from-traces) already had theirs")
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
            cases = select_cases(store, reporter, settings.cases,
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
    reporter.note(f"resuming GRPO run {settings.name}")
    return experiment_id, [store.get_case(case_id) for case_id in saved["case_ids"]]


def _trace_experiments(store: TraceStore, names: str) -> list[int]:
    return [store.experiment_id(name) for name in case_id_list(names, "--from-traces")]


def _source(store: TraceStore, settings: GRPOCommandConfig, experiment_id: int, cases: list[Any],
            reporter: RunReporter) -> Any:
    from promed_agents.trainers.episode_sources import GraphRollouts, LoggedEpisodes

    if settings.from_traces:
        return LoggedEpisodes(store, _trace_experiments(store, settings.from_traces),
                              require_shapley=settings.require_shapley)
    evaluator = evaluator_for(store, settings.sig_scorer, settings.model, cases, reporter,
                              require_shapley=settings.require_shapley, judge=settings.judge)
    return GraphRollouts({c.id: c for c in cases}, patient=resolve_patient(settings.patient),
                         measurement=resolve_measurement(settings.measurement),
                         evaluator=evaluator, max_questions=settings.max_questions,
                         budget_range=budget_range(settings.dynamic_budget),
                         max_new_tokens=settings.max_new_tokens,
                         demonstration=settings.demonstration, store=store,
                         partial_policy=settings.policy,
                         experiment_id=experiment_id)


def run_grpo(store: TraceStore, settings: GRPOCommandConfig,
             reporter: RunReporter | None = None) -> GRPOResult:
    """SIG-GRPO on the doctor, from fresh consultations of the graph or stored ones.

    Args:
        store: where the cases (or ``from_traces``' consultations) are read and the run,
            its rollouts and its per-step metrics recorded.
        settings: the starting model, the output folder, the cases, the reward design and
            TRL's GRPO settings.
        reporter: where notes and step progress go [default: the logger].

    A rerun with the same ``experiment`` resumes from the newest checkpoint in
    ``output``; a finished run is not trained again. Returns the trained model's folder,
    its steps and the last metrics."""
    from promed_agents.trainers.grpo_trainer import (
        DoctorGRPOConfig,
        GRPOResult,
        check_loss_type,
        train_grpo,
    )
    from promed_agents.trainers.training_output import check_output_folder, finished_receipt

    reporter = reporter_or_default(reporter)
    local_model_ref(settings.model)  # a bad spec fails before the run is created
    check_loss_type(settings.loss_type)
    check_output_folder(settings.output)
    experiment_id, cases = _run(store, settings, reporter)
    receipt = finished_receipt(settings.output)
    if receipt is not None and receipt.get("experiment_id") == experiment_id:
        reporter.note(f"GRPO run {settings.name} is already finished "
                      f"({receipt['steps']} steps): model in {settings.output}")
        return GRPOResult(settings.output, receipt["steps"], None,
                          receipt.get("checkpoint_id"), receipt)
    source = _source(store, settings, experiment_id, cases, reporter)
    size = settings.num_generations * settings.cases_per_step
    config = DoctorGRPOConfig(
        output_dir=str(settings.output), max_steps=settings.max_steps,
        learning_rate=settings.learning_rate, num_generations=settings.num_generations,
        per_device_train_batch_size=size, beta=settings.beta, epsilon=settings.epsilon,
        delta=settings.delta, loss_type=settings.loss_type,
        temperature=settings.temperature, sig_weight=settings.sig_weight,
        sig_correct_weight=settings.sig_correct_weight, answer_weight=settings.answer_weight,
        format_weight=settings.format_weight, test_cost=settings.test_cost,
        reward=settings.reward,
        length_penalty=settings.length_penalty, max_new_tokens=settings.max_new_tokens,
        use_lora=settings.lora, logging_steps=1,
        save_strategy="steps", save_steps=settings.save_steps, save_total_limit=1,
        report_to="none", seed=settings.seed, disable_tqdm=True,
        policy_name=f"grpo:{settings.name}")
    mode = "logged traces" if settings.from_traces else "graph rollouts"
    design = config.reward_design.name
    reporter.note(f"GRPO ({design} reward) on {len(cases)} case(s) from {mode}: "
                  f"{settings.max_steps} steps of {settings.cases_per_step} case(s) x "
                  f"{settings.num_generations} consultations")
    started = time.perf_counter()
    store.finish_experiment(experiment_id, "running")
    with recorded_run(store, experiment_id, settings.name,
                      "run the same command again to resume it from its last saved step"), \
            reporter.task(f"GRPO ({settings.model})", total=settings.max_steps) as progress:
        result = train_grpo(settings.model, cases, source, config, store=store,
                            experiment_id=experiment_id,
                            callbacks=[training_callback(progress)])
    last = result.metrics.get("last_log", {})
    reporter.note(f"trained {result.steps} steps in {time.perf_counter() - started:.0f} s"
                  + (f" (resumed from {result.resumed_from})" if result.resumed_from
                     else "")
                  + "; last step: " + ", ".join(
                      f"{k} {last[k]:.3f}" for k in ("episodes/sig", "episodes/accuracy",
                                                     "episodes/questions", "kl") if k in last))
    reporter.note(f"metrics: {result.output_dir / 'training_log.jsonl'} and run "
                  f"{settings.name} in the store\nmodel: {result.output_dir} (use it with "
                  f"--doctor local:{result.output_dir})")
    return result
