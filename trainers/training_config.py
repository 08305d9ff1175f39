"""Settings shared by the doctor trainers' configs (SFT and SIG-GRPO): LoRA, activation
checkpointing, CPU training.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> **MCTS-SFT / GRPO** -> evaluation

:class:`DoctorTrainingConfig` is a dataclass mixin placed before TRL's config class
(``class DoctorSFTConfig(DoctorTrainingConfig, SFTConfig)``), so its defaults replace
TRL's; :meth:`DoctorTrainingConfig.lora_config` builds the peft ``LoraConfig``.
:func:`cpu_training_defaults` is called by the configs' ``__post_init__`` before TRL's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class DoctorTrainingConfig:
    """LoRA (reference settings as defaults) and activation checkpointing off."""

    activation_checkpointing: bool | None = field(default=False, metadata={
        "help": "Recompute activations in the backward pass (TRL's default is on; a small "
                "doctor has the memory, so it is off here and training is faster)."})
    gradient_checkpointing: bool | None = field(default=None, metadata={
        "help": "Deprecated alias of activation_checkpointing (transformers 5)."})
    use_lora: bool = field(default=False, metadata={
        "help": "Train a LoRA adapter (merged into the saved model) instead of all weights."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank (reference: 8)."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (reference: 32)."})
    lora_dropout: float = field(default=0.1, metadata={"help": "LoRA dropout (reference: 0.1)."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "v_proj"],
        metadata={"help": "Modules LoRA adapts (reference: the q and v projections)."})

    def lora_config(self) -> Any:
        from peft import LoraConfig

        return LoraConfig(r=self.lora_r, lora_alpha=self.lora_alpha,
                          lora_dropout=self.lora_dropout,
                          target_modules=list(self.lora_target_modules), task_type="CAUSAL_LM")


def cpu_training_defaults(config: Any) -> None:
    """Without a GPU, train on the CPU in float32: TRL's default bf16 would either stop
    ("doesn't support bf16/gpu") or, with ``use_cpu``, run in emulated bf16 on CPUs
    without native bf16 (measured 264 s for an SFT step that takes 11 s in float32)."""
    import torch

    if not torch.cuda.is_available():
        config.use_cpu = True
        if config.bf16 is None:
            config.bf16 = False
