"""A trainer's output folder: resume points, the final model, the receipt.

case -> ... -> **MCTS-SFT / GRPO output folder** -> ``--doctor local:DIR`` -> evaluation

Both doctor trainers write the same layout: TRL's ``checkpoint-N`` folders while training
(a rerun resumes from the newest whole one: step counter, optimizer and scheduler), then the final
model as a plain transformers folder (a LoRA adapter merged in) and, last, the receipt
file :data:`RECEIPT`, whose presence marks the folder finished (a new run refuses it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from promed_agents.atomic_file import atomic_writer
from promed_agents.errors import TrainingError

RECEIPT = "promed_training.json"
"""Written last into a finished output folder: what was trained, from what, to which loss."""


def check_output_folder(output: Path) -> None:
    """Refuse an ``--output`` that cannot be the output folder: an existing file (or a
    link, a device), or a path under one; before anything is trained or stored."""
    for place in [output, *output.parents]:
        if place.is_symlink() and not place.is_dir():
            raise TrainingError(f"--output {output}: {place} is a link to a file; give a "
                                "folder (new, or one this command wrote)")
        if place.exists():
            if not place.is_dir():
                raise TrainingError(f"--output {output}: {place} is a file, not a folder; "
                                    "give a folder (new, or one this command wrote)")
            return


def refuse_finished(output: Path) -> None:
    if (output / RECEIPT).exists():
        raise TrainingError(f"{output} already holds a trained model ({RECEIPT}); choose "
                            "another --output, or delete the folder to train again")


TRAINER_STATE = "trainer_state.json"
"""Written last into a ``checkpoint-N`` folder by transformers' Trainer."""


def checkpoint_step(checkpoint: Path) -> int | None:
    """The optimizer step of a whole ``checkpoint-N`` folder, or None for one that is not
    whole (a process killed while saving it leaves no readable trainer state)."""
    try:
        return int(json.loads((checkpoint / TRAINER_STATE).read_text("utf-8"))["global_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def last_checkpoint(folder: Path) -> str | None:
    """The newest whole ``checkpoint-N`` folder inside ``folder`` (to resume from), or
    None. A half-written one is passed over (the Trainer overwrites it when it gets there)."""
    steps = [(int(p.name.split("-")[-1]), p) for p in folder.glob("checkpoint-*")
             if p.name.split("-")[-1].isdigit() and checkpoint_step(p) is not None]
    return str(max(steps)[1]) if steps else None


def save_final_model(trainer: Any, tokenizer: Any, output: Path, merge_lora: bool) -> None:
    """The trained model as a plain transformers folder (usable as ``local:DIR``).
    ``trainer.save_model`` gathers sharded weights (DeepSpeed ZeRO-3, FSDP) and writes on
    the main process only; a LoRA adapter is merged in first (on the main process)."""
    if not merge_lora:
        trainer.save_model(str(output))
        return
    if trainer.accelerator.is_main_process:
        model = trainer.accelerator.unwrap_model(trainer.model)
        model.merge_and_unload().save_pretrained(output)
        tokenizer.save_pretrained(output)
    trainer.accelerator.wait_for_everyone()


def quiet(trainer: Any) -> None:
    """Drop transformers' printing of every log dict (shown when tqdm is off): the CLI
    shows a progress bar, and the metrics are in the training log and the store."""
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)


def finished_receipt(output: Path) -> dict[str, Any] | None:
    """The receipt of a finished output folder (what a rerun of the same command reports
    instead of training again), or None while the folder is not finished."""
    path = output / RECEIPT
    return json.loads(path.read_text("utf-8")) if path.exists() else None


def write_receipt(output: Path, receipt: dict[str, Any]) -> None:
    with atomic_writer(output / RECEIPT) as handle:  # a killed run leaves none, not half
        json.dump(receipt, handle, indent=1)
