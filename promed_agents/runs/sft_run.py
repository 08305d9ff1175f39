"""An SFT run: the doctor fine-tuned on the best paths of a stored MCTS search.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> MCTS -> **SFT** -> evaluation

:func:`run_sft`: the best paths of a search (:mod:`promed_agents.trainers.sft_dataset`)
become a training dataset in the store (made once; a rerun reuses it) and a JSON Lines
file in the output folder; TRL's ``SFTTrainer`` then fine-tunes the doctor
(:mod:`promed_agents.trainers.sft_trainer`). A rerun after an interruption resumes from
the last checkpoint. The result runs as a doctor with ``local:OUTPUT``. ``promed train
sft`` runs it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promed_agents.backends.local_weights import local_model_ref
from promed_agents.errors import NotFoundError, TrainingError
from promed_agents.knob import knob
from promed_agents.runs.run_reporter import RunReporter, reporter_or_default, training_callback

if TYPE_CHECKING:
    from promed_agents.storage import TraceStore
    from promed_agents.trainers.sft_trainer import SFTResult

__all__ = ["SFTCommandConfig", "run_sft", "search_experiment"]


@dataclass(frozen=True)
class SFTCommandConfig:
    """What an SFT run trains (``promed train sft``); each field is the option of the
    same name."""

    source: str = knob(help="The MCTS search (experiment name).", flags=("--from",))
    output: Path = knob(help="Folder of the trained model.")
    model: str | None = knob(
        None, help="Base model spec (local:...) [default: the search's doctor].")
    dataset: str | None = knob(
        None, help="Name of the stored dataset [default: EXPERIMENT-sft].")
    min_reward: float | None = knob(
        None, help="Also train on every path with at least this reward [default: best "
                   "only].")
    paths_per_case: int = knob(
        1, help="The best N paths of each case that earned a reward.", min=1)
    correct_only: bool = knob(False, help="Only paths with the right answer.")
    informative_only: bool = knob(
        False, help="Train a question only when it acquired a fact (the final answer is "
                    "always trained, as the correct answer where the path's own was not).")
    epochs: float = knob(3.0, help="Training epochs.", min=0.0)
    max_steps: int = knob(-1, help="Stop after N steps (-1: by epochs).")
    learning_rate: float = knob(
        1e-4, help="Learning rate (full fine-tuning of the embedded 135M doctor learns the "
                   "search's paths at 1e-4 in a few dozen steps; 1e-5 barely moves it).",
        min=0.0)
    batch_size: int = knob(4, help="Sequences per step.", min=1)
    max_length: int = knob(2048, help="Longest sequence (tokens).", min=16)
    lora: bool = knob(False, help="Train a LoRA adapter (merged on save).")
    seed: int = knob(0, help="Training seed.")
    save_steps: int = knob(
        10, help="Checkpoint every N steps (a checkpoint holds the optimizer state, about "
                 "12 bytes a weight).", min=1)


def search_experiment(store: TraceStore, name: str) -> tuple[int, dict[str, Any]]:
    """``(id, config)`` of the MCTS search called ``name``."""
    experiment_id, config = store.experiment_config(name)
    if config.get("kind") != "mcts":
        raise TrainingError(f"experiment {name!r} is not an MCTS search; give the "
                            "--experiment name of a `promed mcts` run")
    return experiment_id, config


def dataset_samples(store: TraceStore, settings: SFTCommandConfig, experiment_id: int,
                    reporter: RunReporter, model_spec: str) -> tuple[int, list[Any]]:
    """``(dataset id, samples)``: the stored dataset named for this export, made from
    the search on first use."""
    from promed_agents.trainers.sft_dataset import (
        ExportConfig,
        policy_answer_ids,
        search_samples,
    )

    name = settings.dataset or f"{settings.source}-sft"
    try:
        dataset_id, samples = store.load_training_dataset(name)
        reporter.note(f"training dataset {name}: {len(samples)} sample(s) (stored)")
        return dataset_id, samples
    except NotFoundError:
        pass
    export = ExportConfig(min_reward=settings.min_reward, paths_per_case=settings.paths_per_case,
                          correct_only=settings.correct_only,
                          informative_only=settings.informative_only)
    samples, counts = search_samples(store, experiment_id, export,
                                     policy_answer_ids(model_spec))
    if not samples:
        raise TrainingError(f"search {settings.source!r} has no path that earned a reward "
                            "(no question acquired a fact, no answer was right): nothing to "
                            "train on; search more cases or iterations first")
    dataset_id = store.save_training_dataset(
        name, "sft", samples, experiment_id=experiment_id,
        config={"min_reward": settings.min_reward, "paths_per_case": settings.paths_per_case,
                "correct_only": settings.correct_only,
                "informative_only": settings.informative_only, **counts})
    reporter.note(f"training dataset {name}: {counts['samples']} sample(s) from "
                  f"{counts['leaves']} path(s) of {counts['cases']} case(s)")
    return dataset_id, samples


def run_sft(store: TraceStore, settings: SFTCommandConfig,
            reporter: RunReporter | None = None) -> SFTResult:
    """Fine-tune the doctor on the best paths of an MCTS search.

    Args:
        store: where the search is read and the dataset and checkpoint recorded.
        settings: the search (``source``), the output folder, the path filters and the
            training settings.
        reporter: where notes and step progress go [default: the logger].

    The dataset is made once and stored (a rerun reuses it); a rerun after an
    interruption resumes from the last checkpoint in ``output``, and a finished run is
    not trained again. Returns the trained model's folder, its steps and losses."""
    from promed_agents.trainers.sft_dataset import export_samples
    from promed_agents.trainers.sft_trainer import DoctorSFTConfig, SFTResult, train_sft
    from promed_agents.trainers.training_output import check_output_folder, finished_receipt

    reporter = reporter_or_default(reporter)
    experiment_id, config = search_experiment(store, settings.source)
    model_spec = settings.model or config.get("doctor", "")
    local_model_ref(model_spec)  # a bad spec fails before the dataset is made
    check_output_folder(settings.output)
    dataset_id, samples = dataset_samples(store, settings, experiment_id, reporter,
                                          model_spec)
    receipt = finished_receipt(settings.output)
    if receipt is not None and receipt.get("dataset_id") == dataset_id:
        reporter.note(f"SFT on {settings.source} is already finished "
                      f"({receipt['steps']} steps): model in {settings.output}")
        return SFTResult(settings.output, receipt["steps"], receipt.get("losses", []), None,
                         receipt.get("checkpoint_id"))
    settings.output.mkdir(parents=True, exist_ok=True)
    data_file = export_samples(samples, settings.output / "sft_data.jsonl")
    config = DoctorSFTConfig(
        output_dir=str(settings.output), num_train_epochs=settings.epochs,
        max_steps=settings.max_steps, learning_rate=settings.learning_rate,
        per_device_train_batch_size=settings.batch_size, max_length=settings.max_length,
        logging_steps=1, save_strategy="steps", save_steps=settings.save_steps,
        save_total_limit=1, report_to="none",
        use_lora=settings.lora, seed=settings.seed, disable_tqdm=True)
    started = time.perf_counter()
    with reporter.task(f"SFT ({model_spec})") as progress:
        result = train_sft(model_spec, samples, config, store=store,
                           dataset_id=dataset_id, experiment_id=experiment_id,
                           callbacks=[training_callback(progress)])
    losses = result.losses
    reporter.note(f"trained {result.steps} steps in {time.perf_counter() - started:.0f} s"
                  + (f" (resumed from {result.resumed_from})" if result.resumed_from
                     else "")
                  + (f"; loss {losses[0]:.3f} -> {losses[-1]:.3f}" if losses else ""))
    reporter.note(f"data: {data_file}\nmodel: {result.output_dir} "
                  f"(use it with --doctor local:{result.output_dir})")
    return result
