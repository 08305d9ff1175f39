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

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trl import SFTConfig

from promed_agents.errors import TrainingError
from promed_agents.storage.training_records import TrainingSample

RECEIPT = "promed_training.json"
"""Written last into a finished output folder: what was trained, from what, to which loss."""


@dataclass
class DoctorSFTConfig(SFTConfig):
    """TRL's ``SFTConfig`` with LoRA options. Defaults suit a small doctor on CPU."""

    gradient_checkpointing: bool = field(default=False, metadata={
        "help": "Recompute activations in the backward pass (TRL's default is on; a small "
                "doctor has the memory, so it is off here and training is faster)."})
    use_lora: bool = field(default=False, metadata={
        "help": "Train a LoRA adapter (merged into the saved model) instead of all weights."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank (reference: 8)."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (reference: 32)."})
    lora_dropout: float = field(default=0.1, metadata={"help": "LoRA dropout (reference: 0.1)."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "v_proj"],
        metadata={"help": "Modules LoRA adapts (reference: the q and v projections)."})

    def __post_init__(self) -> None:
        import torch

        # Without a GPU, train on the CPU in float32: TRL's default bf16 would either stop
        # ("doesn't support bf16/gpu") or, with use_cpu, run in emulated bf16 on CPUs
        # without native bf16 (measured 264 s for a step that takes 11 s in float32).
        if not torch.cuda.is_available():
            self.use_cpu = True
            if self.bf16 is None:
                self.bf16 = False
        super().__post_init__()

    def lora_config(self) -> Any:
        from peft import LoraConfig

        return LoraConfig(r=self.lora_r, lora_alpha=self.lora_alpha,
                          lora_dropout=self.lora_dropout,
                          target_modules=list(self.lora_target_modules), task_type="CAUSAL_LM")


@dataclass(frozen=True)
class SFTResult:
    output_dir: Path
    steps: int
    losses: list[float]
    resumed_from: str | None
    checkpoint_id: int | None


def _last_checkpoint(folder: Path) -> str | None:
    steps = [(int(p.name.split("-")[-1]), p) for p in folder.glob("checkpoint-*")
             if p.name.split("-")[-1].isdigit()]
    return str(max(steps)[1]) if steps else None


def train_sft(model_ref: str, samples: Sequence[TrainingSample], config: DoctorSFTConfig, *,
              store: Any = None, base_model_spec: str | None = None,
              dataset_id: int | None = None, experiment_id: int | None = None,
              callbacks: Sequence[Any] = ()) -> SFTResult:
    """Fine-tune the local model ``model_ref`` (an embedded name or a folder) on
    ``samples``; save it to ``config.output_dir`` and register it in ``store``.
    ``callbacks`` are transformers ``TrainerCallback`` objects (progress, logging)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    from promed_agents.backends.local_weights import model_folder

    output = Path(config.output_dir)
    if (output / RECEIPT).exists():
        raise TrainingError(f"{output} already holds a trained model ({RECEIPT}); choose "
                            "another --output, or delete the folder to train again")
    if not samples:
        raise TrainingError("no training samples: the dataset is empty (did the search "
                            "store any finished consultations with token ids?)")
    trained = sum(sum(s.assistant_masks) for s in samples)
    if trained == 0:
        raise TrainingError("the samples have no trained tokens (no well-formed doctor "
                            "turns); nothing to learn from")
    folder = model_folder(model_ref)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(folder)
    dataset = Dataset.from_list([{"input_ids": s.input_ids, "assistant_masks": s.assistant_masks}
                                 for s in samples])
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset,
                         processing_class=tokenizer,
                         peft_config=config.lora_config() if config.use_lora else None,
                         callbacks=list(callbacks))
    resume = _last_checkpoint(output)
    trainer.train(resume_from_checkpoint=resume)
    final = trainer.model.merge_and_unload() if config.use_lora else trainer.model
    final.save_pretrained(output)
    tokenizer.save_pretrained(output)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    metrics = {"steps": trainer.state.global_step, "losses": losses, "samples": len(samples),
               "trained_tokens": trained, "lora": config.use_lora,
               "learning_rate": config.learning_rate, "epochs": config.num_train_epochs}
    checkpoint_id = None
    if store is not None:
        checkpoint_id = store.register_checkpoint(
            str(output.resolve()), base_model_spec or f"local:{model_ref}",
            trainer.state.global_step, metrics, experiment_id=experiment_id,
            dataset_id=dataset_id)
    receipt = {"base_model": base_model_spec or f"local:{model_ref}", "dataset_id": dataset_id,
               "checkpoint_id": checkpoint_id, "resumed_from": resume, **metrics}
    (output / RECEIPT).write_text(json.dumps(receipt, indent=1), encoding="utf-8")
    return SFTResult(output, trainer.state.global_step, losses, resume, checkpoint_id)
