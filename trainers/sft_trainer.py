"""Supervised fine-tuning of the doctor on SFT data exported from searches.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> MCTS -> SFT data -> **SFT** ->
checkpoint -> evaluation

TRL's ``SFTTrainer`` on pre-tokenised samples (``input_ids`` and ``assistant_masks``), so
the loss is taken on the doctor's well-formed turns only, with the exact token ids of the
traces. :class:`DoctorSFTConfig` is TRL's ``SFTConfig`` plus LoRA settings (peft; the
adapter is merged into the saved model). The output folder is a plain transformers model
directory, usable as a doctor with ``local:DIR``; TRL's ``checkpoint-N`` folders inside it
make a rerun resume (step counter, optimizer and scheduler states) instead of starting
over. The final model is registered in the store with its metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trl import SFTConfig

from promed_agents.errors import TrainingError
from promed_agents.storage.training_records import TrainingSample
from promed_agents.trainers.training_config import DoctorTrainingConfig, cpu_training_defaults
from promed_agents.trainers.training_output import (
    last_checkpoint,
    quiet,
    refuse_finished,
    save_final_model,
    write_receipt,
)

if TYPE_CHECKING:
    from promed_agents.storage import TraceStore


@dataclass
class DoctorSFTConfig(DoctorTrainingConfig, SFTConfig):
    """TRL's ``SFTConfig`` with LoRA options. Defaults suit a small doctor on CPU."""

    def __post_init__(self) -> None:
        cpu_training_defaults(self)
        super().__post_init__()


@dataclass(frozen=True)
class SFTResult:
    output_dir: Path
    steps: int
    losses: list[float]
    resumed_from: str | None
    checkpoint_id: int | None


def doctor_sft_trainer(model: str, samples: Sequence[TrainingSample],
                       config: DoctorSFTConfig, callbacks: Sequence[Any] = ()
                       ) -> tuple[Any, Any]:
    """TRL's ``SFTTrainer`` (and its tokenizer) for the local model spec ``model`` on
    ``samples``: pre-tokenised ``input_ids`` whose ``assistant_masks`` say what is learnt."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    from promed_agents.backends.local_weights import local_model_ref, model_folder

    if not samples:
        raise TrainingError("no training samples: the dataset is empty (did the search "
                            "store any finished consultations with token ids?)")
    if not any(sum(s.assistant_masks) for s in samples):
        raise TrainingError("the samples have no trained tokens (no well-formed doctor "
                            "turns); nothing to learn from")
    folder = model_folder(local_model_ref(model))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    policy = AutoModelForCausalLM.from_pretrained(folder)
    dataset = Dataset.from_list([{"input_ids": s.input_ids, "assistant_masks": s.assistant_masks}
                                 for s in samples])
    trainer = SFTTrainer(model=policy, args=config, train_dataset=dataset,
                         processing_class=tokenizer,
                         peft_config=config.lora_config() if config.use_lora else None,
                         callbacks=list(callbacks))
    return trainer, tokenizer


def train_sft(model: str, samples: Sequence[TrainingSample], config: DoctorSFTConfig, *,
              store: TraceStore | None = None, dataset_id: int | None = None,
              experiment_id: int | None = None, callbacks: Sequence[Any] = ()) -> SFTResult:
    """Fine-tune a local doctor on ``samples`` and save it to ``config.output_dir``.

    Args:
        model: the starting model's spec, ``local:smollm2`` or ``local:PATH``.
        samples: pre-tokenised samples (:func:`~promed_agents.trainers.search_samples`).
        config: TRL's SFT settings with LoRA options.
        store: registers the trained checkpoint when given.
        dataset_id: the stored dataset the samples came from (recorded with it).
        experiment_id: the search they came from.
        callbacks: transformers ``TrainerCallback`` objects (progress, logging).

    A rerun resumes from the newest ``checkpoint-N`` in ``config.output_dir``."""
    output = Path(config.output_dir)
    refuse_finished(output)
    trainer, tokenizer = doctor_sft_trainer(model, samples, config, callbacks)
    trained = sum(sum(s.assistant_masks) for s in samples)
    if config.disable_tqdm:
        quiet(trainer)
    resume = last_checkpoint(output)
    trainer.train(resume_from_checkpoint=resume)
    save_final_model(trainer, tokenizer, output, merge_lora=config.use_lora)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    metrics = {"steps": trainer.state.global_step, "losses": losses, "samples": len(samples),
               "trained_tokens": trained, "lora": config.use_lora,
               "learning_rate": config.learning_rate, "epochs": config.num_train_epochs}
    checkpoint_id = None
    if store is not None:
        checkpoint_id = store.register_checkpoint(
            str(output.resolve()), model,
            trainer.state.global_step, metrics, experiment_id=experiment_id,
            dataset_id=dataset_id)
    receipt = {"base_model": model, "dataset_id": dataset_id,
               "checkpoint_id": checkpoint_id, "resumed_from": resume, **metrics}
    write_receipt(output, receipt)
    return SFTResult(output, trainer.state.global_step, losses, resume, checkpoint_id)
