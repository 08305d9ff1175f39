"""SIG-augmented GRPO: the doctor trained on consultations with per-token SIG rewards.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> token rewards -> **SIG-GRPO**
-> checkpoint -> evaluation

:class:`DoctorGRPOTrainer` is TRL's ``GRPOTrainer`` with its multi-turn hook,
``rollout_func``: instead of sampling one completion per prompt, it asks an
:class:`~promed_agents.trainers.episode_sources.EpisodeSource` for whole consultations
(``num_generations`` per case: fresh graph rollouts, or logged traces) and stitches each
into one sequence whose environment tokens (patient replies, reminders) are masked out
through TRL's ``env_mask``. TRL pads them and computes the old, reference and sampling
logprobs; the one thing it cannot do, **per-token advantages** of shape (B, T), is done by
wrapping ``_generate_and_score_completions``:

1. each doctor turn's tokens get its reward (:mod:`~promed_agents.trainers.token_rewards`):
   a question ``sig_weight*SIG + sig_correct_weight*SIG*correct``, the final answer
   ``answer_weight*correct``, every turn ``format_weight*format_score``;
2. the advantage of a trained token is its reward minus the mean reward of all trained
   tokens of the case's group; no division by the standard deviation (the reference's
   rule; TRL's ``scale_rewards`` is not used);
   (``reward`` chooses another design on the same consultations,
   :mod:`~promed_agents.trainers.reward_designs`: DoctorAgent-RL's, outcome-only,
   ProMed's rollout-level ablation, each with standard group-normalised advantages,
   and an optional length penalty);
3. TRL's ``_compute_loss`` does the rest: the PPO-clipped ratio (``epsilon``, reference 0.1),
   the k3 KL to the reference model (``beta``, reference 0.04), and the aggregation of
   ``loss_type`` (default ``"grpo"``: mean over each sequence's trained tokens, then over
   sequences; TRL's other loss types work unchanged).

On-policy, the "old" logprobs are the current ones (TRL's rule); from logged traces they
are the recorded sampling logprobs (temperature 1), so off-policy updates are importance
weighted, clipped by ``epsilon``, and capped by TRL's ``delta`` when set. A served doctor
(a vLLM server, ``use_vllm=True`` with ``vllm_mode="server"``) is synced by TRL with the
weights in training before each step's rollouts, and TRL's importance-sampling correction
for the server's distance from the policy (``vllm_importance_sampling_*``) comes from the
server's logprobs; a served doctor without ``use_vllm`` is refused (nothing would sync
it, and its samples would pass for on-policy). The private API this relies on
(``_generate_and_score_completions``'s output, ``_compute_loss`` accepting (B, T)
advantages) is pinned with ``trl==1.16.0`` and checked by ``tests/test_grpo_trainer.py``.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from trl import GRPOConfig, GRPOTrainer

from promed_agents.agents.doctor import DOCTOR_TURN_TOKENS
from promed_agents.case import Case
from promed_agents.errors import TrainingError
from promed_agents.knob import knob_from
from promed_agents.trace import EpisodeRecord
from promed_agents.trainers.episode_sources import EpisodeSource
from promed_agents.trainers.grpo_batch import ScoredSequence, rollout_metrics, score_groups
from promed_agents.trainers.reference_hyperparameters import GRPOHyperparameters
from promed_agents.trainers.reward_designs import RewardChoice, RewardDesign
from promed_agents.trainers.token_rewards import RewardWeights
from promed_agents.trainers.training_config import DoctorTrainingConfig, cpu_training_defaults
from promed_agents.trainers.training_log import TrainingLog
from promed_agents.trainers.training_output import (
    checkpoint_step,
    last_checkpoint,
    quiet,
    refuse_finished,
    save_final_model,
    write_receipt,
)

if TYPE_CHECKING:
    from promed_agents.storage import TraceStore


LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")
"""The loss aggregations TRL's GRPO trainer computes."""


def check_loss_type(loss_type: str) -> None:
    """Refuse a loss type TRL does not know, before a model is loaded."""
    if loss_type not in LOSS_TYPES:
        raise TrainingError(f"--loss-type {loss_type!r} is not one TRL computes; give one "
                            f"of {', '.join(LOSS_TYPES)}")


@dataclass
class DoctorGRPOConfig(DoctorTrainingConfig, GRPOConfig):
    """TRL's ``GRPOConfig`` with the reference's defaults and the SIG reward weights."""

    learning_rate: float = knob_from(GRPOHyperparameters, "learning_rate")
    loss_type: str = knob_from(GRPOHyperparameters, "loss_type")
    epsilon: float = knob_from(GRPOHyperparameters, "epsilon")
    beta: float = knob_from(GRPOHyperparameters, "beta")
    temperature: float = knob_from(GRPOHyperparameters, "temperature")
    num_generations: int = knob_from(GRPOHyperparameters, "num_generations")
    sig_weight: float = knob_from(RewardWeights, "sig_weight")
    sig_correct_weight: float = knob_from(RewardWeights, "sig_correct_weight")
    answer_weight: float = knob_from(RewardWeights, "answer_weight")
    format_weight: float = knob_from(RewardWeights, "format_weight")
    test_cost: float = knob_from(RewardWeights, "test_cost")
    reward: str = field(default="promed", metadata={
        "help": "Reward design: promed (SIG per token), doctoragent (DoctorAgent-RL), "
                "outcome (correctness only) or rollout-level (ProMed's ablation); see "
                "promed_agents.trainers.reward_designs."})
    length_penalty: float = field(default=0.0, metadata={
        "help": "Med-U1's length penalty: the answer loses length_penalty x its tokens / "
                "max_new_tokens (0: off)."})
    max_new_tokens: int = field(default=DOCTOR_TURN_TOKENS, metadata={
        "help": "Tokens the doctor may write per turn (the length penalty's scale)."})
    policy_name: str = field(default="grpo-policy", metadata={
        "help": "Doctor spec recorded on rollouts of the policy in training (local:NAME)."})

    def __post_init__(self) -> None:
        check_loss_type(self.loss_type)
        cpu_training_defaults(self)
        super().__post_init__()

    @property
    def token_reward_weights(self) -> RewardWeights:
        return RewardWeights(sig_weight=self.sig_weight,
                             sig_correct_weight=self.sig_correct_weight,
                             answer_weight=self.answer_weight, format_weight=self.format_weight,
                             test_cost=self.test_cost)

    @property
    def reward_design(self) -> RewardDesign:
        return RewardChoice(self.reward, self.length_penalty, self.max_new_tokens,
                            self.token_reward_weights).design()


def _served(doctor: Any) -> bool:
    """Whether ``doctor`` is a model on a server (an OpenAI-compatible client such as the
    ``vllm:`` and ``openai:`` specs' ones): a copy of the policy that must be synced."""
    if doctor is None:
        return False
    from langchain_openai.chat_models.base import BaseChatOpenAI

    return isinstance(doctor, BaseChatOpenAI)


def _rows(rows: list[list[float]], width: int, device: torch.device) -> torch.Tensor:
    """``rows`` right-padded with 0 to ``width`` (TRL's padded completion length)."""
    out = torch.zeros(len(rows), width, dtype=torch.float32)
    for i, row in enumerate(rows):
        out[i, :len(row)] = torch.tensor(row[:width], dtype=torch.float32)
    return out.to(device)


class DoctorGRPOTrainer(GRPOTrainer):
    """GRPO on whole consultations from ``source`` with SIG-guided token advantages.

    ``train_dataset`` rows need a ``case_id`` (and a ``prompt``, which TRL shows in logs).
    The consultations reach TRL through its ``rollout_func`` (one stitched sequence per
    consultation, the environment's tokens masked by ``env_mask``); TRL pads them, syncs
    a served doctor's weights, computes the old, reference and served-sampling logprobs
    and the importance-sampling ratio. This class replaces only what TRL cannot do: the
    per-token advantages, and the recorded logprobs as the old ones for logged traces.
    """

    def __init__(self, model: Any, args: DoctorGRPOConfig, train_dataset: Any,
                 source: EpisodeSource, processing_class: Any = None,
                 callbacks: list[Any] | None = None, peft_config: Any = None) -> None:
        local = args.per_device_train_batch_size * (args.steps_per_generation or 1)
        if local % args.num_generations:
            raise TrainingError(
                f"each process's generation batch ({args.per_device_train_batch_size} x "
                f"{args.steps_per_generation} steps) must hold whole groups of "
                f"{args.num_generations} consultations; make per_device_train_batch_size a "
                "multiple of num_generations")
        if source.off_policy and args.use_vllm:
            raise TrainingError("use_vllm serves fresh rollouts; logged traces are trained "
                                "without it (leave use_vllm off with --from-traces)")
        if _served(getattr(source, "doctor", None)) and not args.use_vllm:
            raise TrainingError(
                "the rollouts' doctor is a served model that nothing keeps in sync with the "
                "weights in training, so its samples would count as on-policy while they "
                "come from the starting model: set use_vllm=True with vllm_mode='server' "
                "(TRL then syncs the server every step), or leave the doctor unset to "
                "sample from the model in training")
        if source.off_policy and args.temperature != 1.0:
            # recorded logprobs are at temperature 1, and TRL bakes the temperature into
            # the model's LM head at init: train with a copy at 1, the caller's unchanged
            args = copy.copy(args)
            args.temperature = 1.0
        self.source = source
        self.reward_design = args.reward_design
        self._case_ids: list[str] = []
        self._episodes: list[EpisodeRecord] = []
        self._scored: list[ScoredSequence] = []
        with warnings.catch_warnings():  # rollout_func is TRL's supported multi-turn hook
            warnings.filterwarnings("ignore", message=".*'rollout_func'.*experimental")
            super().__init__(model=model, reward_funcs=[self.consultation_reward], args=args,
                             train_dataset=train_dataset, processing_class=processing_class,
                             callbacks=callbacks, peft_config=peft_config,
                             rollout_func=self._rollout)

    def _rollout(self, prompts: list[Any], trainer: Any) -> dict[str, list[Any]]:
        """TRL's ``rollout_func``: the source's consultations of this batch's cases, as
        stitched sequences with their sampling logprobs and policy-token mask."""
        group = self.num_generations if self.model.training else self.num_generations_eval
        self._episodes = self.source.episodes(self._case_ids, self)
        self._scored = score_groups(self._episodes, group, self.reward_design,
                                    self._tokenizer.pad_token_id)
        return {"prompt_ids": [s.prompt_ids for s in self._scored],
                "completion_ids": [s.completion_ids for s in self._scored],
                "logprobs": [s.sampling_logprobs for s in self._scored],
                "env_mask": [s.loss_mask for s in self._scored]}

    def consultation_reward(self, *_args: Any, **_kwargs: Any) -> list[float]:
        """TRL's reward function, for its logs: each consultation's mean reward per
        trained token (the advantages TRL derives from it are replaced, per token)."""
        return [sum(r * m for r, m in zip(s.rewards, s.loss_mask, strict=True)) /
                max(sum(s.loss_mask), 1) for s in self._scored]

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]
                                        ) -> dict[str, torch.Tensor | Any]:
        mode = "train" if self.model.training else "eval"
        self._case_ids = [row["case_id"] for row in inputs]
        output = super()._generate_and_score_completions(inputs)
        width, device = output["completion_ids"].size(1), self.accelerator.device
        output["advantages"] = _rows([s.advantages for s in self._scored], width, device)
        if self.source.off_policy:  # the recorded sampling logprobs are the old policy's
            output["old_per_token_logps"] = _rows(
                [s.sampling_logprobs for s in self._scored], width, device)
        metrics = rollout_metrics(self._episodes, self._scored)
        loss_mask = output["completion_mask"] * output["tool_mask"]
        metrics["num_tokens_trained"] = float(loss_mask.sum().item())
        # every process ran its own consultations: log the mean over processes
        values = self.accelerator.gather(torch.tensor(
            [list(metrics.values())], device=device)).mean(dim=0)
        for name, value in zip(metrics, values.tolist(), strict=True):
            self._metrics[mode][name].append(value)
        return output


@dataclass(frozen=True)
class GRPOResult:
    output_dir: Path
    steps: int
    resumed_from: str | None
    checkpoint_id: int | None
    metrics: dict[str, Any]


def case_dataset(cases: Sequence[Case]) -> Any:
    """The trainer's rows: one per case (TRL repeats each ``num_generations`` times)."""
    from datasets import Dataset

    return Dataset.from_list([{"case_id": c.id, "prompt": c.question} for c in cases])


def train_grpo(model: str, cases: Sequence[Case], source: EpisodeSource,
               config: DoctorGRPOConfig, *, store: TraceStore | None = None,
               experiment_id: int | None = None, callbacks: Sequence[Any] = ()
               ) -> GRPOResult:
    """Train a local doctor with SIG-GRPO and save it to ``config.output_dir``.

    Args:
        model: the starting model's spec, ``local:smollm2`` or ``local:PATH``.
        cases: the cases rolled out (each step takes ``num_generations`` of one case).
        source: where the consultations come from (:class:`GraphRollouts` for fresh
            ones, :class:`LoggedEpisodes` for stored traces).
        config: TRL's GRPO settings with the SIG reward weights.
        store: registers the trained checkpoint and the per-step metrics when given.
        experiment_id: the run's experiment in ``store`` (its rollouts are recorded there).
        callbacks: transformers ``TrainerCallback`` objects (progress, logging).

    A rerun resumes from the newest ``checkpoint-N`` in ``config.output_dir``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from promed_agents.backends.local_weights import local_model_ref, model_folder

    model_ref = local_model_ref(model)

    output = Path(config.output_dir)
    refuse_finished(output)
    if not cases:
        raise TrainingError("no training cases: give --cases, --case-ids or --split (or "
                            "logged traces with finished consultations)")
    folder = model_folder(model_ref)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    policy = AutoModelForCausalLM.from_pretrained(folder)
    log = TrainingLog(output, store, experiment_id)
    trainer = DoctorGRPOTrainer(policy, config, case_dataset(cases), source,
                             processing_class=tokenizer, callbacks=[log, *callbacks],
                             peft_config=config.lora_config() if config.use_lora else None)
    if config.disable_tqdm:
        quiet(trainer)
    resume = last_checkpoint(output)
    if store is not None and experiment_id is not None and trainer.accelerator.is_main_process:
        # what a killed run recorded after its last checkpoint is redone: drop it first
        store.rewind_training_run(experiment_id, checkpoint_step(Path(resume)) if resume else 0)
    trainer.accelerator.wait_for_everyone()  # no process records a rollout before that
    try:
        trainer.train(resume_from_checkpoint=resume)
    finally:  # a source may hold the policy (a serving thread): let it go with the run
        getattr(source, "close", lambda: None)()
    save_final_model(trainer, tokenizer, output, merge_lora=config.use_lora)
    logged = [e for e in trainer.state.log_history if "loss" in e]
    metrics = {"steps": trainer.state.global_step, "cases": len(cases),
               "group_size": config.num_generations, "off_policy": source.off_policy,
               "learning_rate": config.learning_rate, "beta": config.beta,
               "epsilon": config.epsilon, "loss_type": config.loss_type,
               "lora": config.use_lora, "reward": config.reward_design.name,
               "last_log": logged[-1] if logged else {}}
    base = model
    checkpoint_id = None
    if not trainer.accelerator.is_main_process:  # one registration and receipt per run
        return GRPOResult(output, trainer.state.global_step, resume, None, metrics)
    if store is not None:
        checkpoint_id = store.register_checkpoint(str(output.resolve()), base,
                                                  trainer.state.global_step, metrics,
                                                  experiment_id=experiment_id)
    write_receipt(output, {"base_model": base, "experiment_id": experiment_id,
                           "checkpoint_id": checkpoint_id, "resumed_from": resume, **metrics})
    return GRPOResult(output, trainer.state.global_step, resume, checkpoint_id, metrics)
