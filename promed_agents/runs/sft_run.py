"""An SFT run: the doctor fine-tuned on stored consultations.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> MCTS -> **SFT** -> evaluation

:func:`run_sft`: the best paths of MCTS searches, and the consultations of any other runs
(consult, eval, GRPO, import) that pass the filters, each filter's count said
(:mod:`promed_agents.trainers.sft_dataset`), become a training dataset in the store
(made once; a rerun reuses it) and a JSON Lines file in the output folder; TRL's
``SFTTrainer`` then fine-tunes the doctor (:mod:`promed_agents.trainers.sft_trainer`). A
rerun after an interruption resumes from the last checkpoint. The result runs as a doctor
with ``local:OUTPUT``. ``promed train sft`` runs it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promed_agents.backends.local_weights import local_model_ref
from promed_agents.errors import NotFoundError, TrainingError
from promed_agents.knob import knob
from promed_agents.runs.run_knobs import case_id_list
from promed_agents.runs.run_reporter import RunReporter, reporter_or_default, training_callback

if TYPE_CHECKING:
    from promed_agents.storage import TraceStore
    from promed_agents.trainers.sft_trainer import SFTResult

__all__ = ["SFTCommandConfig", "run_sft", "sources"]


@dataclass(frozen=True)
class SFTCommandConfig:
    """What an SFT run trains (``promed train sft``); each field is the option of the
    same name."""

    source: str = knob(
        help="Experiments to train on, comma-separated: MCTS searches (their best paths) "
             "and consult, eval, GRPO or import runs (their consultations, filtered).",
        flags=("--from",))
    output: Path = knob(help="Folder of the trained model.")
    model: str | None = knob(
        None, help="The model to train (local:...); another model's consultations are "
                   "rendered in its tokens [default: the experiments' doctor].")
    dataset: str | None = knob(
        None, help="Name of the stored dataset [default: EXPERIMENTS-sft].")
    min_reward: float | None = knob(
        None, help="Searches: also train on every path with at least this reward "
                   "[default: best only].")
    paths_per_case: int = knob(
        1, help="Searches: the best N paths of each case that earned a reward.", min=1)
    correct_only: bool = knob(False, help="Only consultations with the right answer.")
    min_sig: float | None = knob(
        None, help="Logged runs: only consultations with at least this SIG.")
    min_facts: int | None = knob(
        None, help="Logged runs: only consultations that acquired at least N facts.",
        min=0)
    clean_only: bool = knob(
        False, help="Logged runs: only consultations with no repeated question and no "
                    "invalid turn.")
    max_asked: int | None = knob(
        None, help="Logged runs: only consultations that asked at most N questions.",
        min=0)
    best_per_case: int | None = knob(
        None, help="Logged runs: then only each case's best N (highest SIG, then right "
                   "answers).", min=1)
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


SEARCH = "mcts"


def sources(store: TraceStore, names: str) -> list[tuple[str, int, str, dict[str, Any]]]:
    """``(name, id, kind, config)`` of each experiment ``--from`` names."""
    found = []
    for name in case_id_list(names, "--from"):
        experiment_id, config = store.experiment_config(name)
        found.append((name, experiment_id, store.experiment(name).kind, config))
    return found


def _doctor(found: list[tuple[str, int, str, dict[str, Any]]]) -> str:
    """The model the experiments ran (a search's or a run's doctor, a GRPO run's model);
    one, or ``--model`` is needed."""
    doctors = {config.get("model") if kind == "grpo" else config.get("doctor")
               for _, _, kind, config in found}
    if None in doctors:
        raise TrainingError("the experiments do not say which model ran them (an import "
                            "run's dialogues were recorded elsewhere); give the model to "
                            "train with --model local:...")
    if len(doctors) != 1:
        raise TrainingError(f"the experiments ran {len(doctors)} different doctors; give "
                            "the base model with --model local:...")
    doctor = str(doctors.pop())
    if not doctor.startswith("local:"):
        raise TrainingError(f"the experiments' doctor {doctor} is not a local model to "
                            "fine-tune; give the model to train with --model local:... "
                            "(its consultations are rendered in that model's tokens)")
    return doctor


def dataset_samples(store: TraceStore, settings: SFTCommandConfig,
                    found: list[tuple[str, int, str, dict[str, Any]]], reporter: RunReporter,
                    model_spec: str) -> tuple[int, list[Any]]:
    """``(dataset id, samples)``: the stored dataset named for this export, made from
    the experiments on first use (searches' best paths, logged runs' filtered
    consultations)."""
    from promed_agents.trainers.sft_dataset import (
        EpisodeFilter,
        ExportConfig,
        logged_samples,
        search_samples,
    )

    name = settings.dataset or f"{settings.source}-sft"
    keep = EpisodeFilter(correct_only=settings.correct_only, min_sig=settings.min_sig,
                         min_facts=settings.min_facts, clean_only=settings.clean_only,
                         max_asked=settings.max_asked, best_per_case=settings.best_per_case)
    made_with = {"sources": [source for source, *_ in found], "model": model_spec,
                 "min_reward": settings.min_reward, "paths_per_case": settings.paths_per_case,
                 "informative_only": settings.informative_only, **asdict(keep)}
    try:
        stored = store.training_dataset_config(name)
    except NotFoundError:
        pass
    else:  # a dataset holds one model's tokens under one selection: reused only for them
        other = sorted(k for k, v in made_with.items() if k in stored and stored[k] != v)
        if other:
            raise TrainingError(
                f"training dataset {name} was made with other settings ("
                + ", ".join(f"{k} {stored[k]!r}, not {made_with[k]!r}" for k in other)
                + "); give --dataset NAME to make a new one")
        dataset_id, samples = store.load_training_dataset(name)
        reporter.note(f"training dataset {name}: {len(samples)} sample(s) (stored)")
        return dataset_id, samples
    from promed_agents.backends.chat_tokens import ChatTokens

    student = ChatTokens.for_model(model_spec)
    export = ExportConfig(min_reward=settings.min_reward, paths_per_case=settings.paths_per_case,
                          correct_only=settings.correct_only,
                          informative_only=settings.informative_only)
    samples: list[Any] = []
    for source, experiment_id, kind, _ in found:
        if kind == SEARCH:
            made, counts = search_samples(store, experiment_id, export, student)
            reporter.note(f"{source} (search): {counts['samples']} sample(s) from "
                          f"{counts['leaves']} path(s) of {counts['cases']} case(s)")
        else:
            made, counts = logged_samples(store, [experiment_id], keep, student,
                                          settings.informative_only)
            reporter.note(f"{source} ({kind}): " + ", ".join(
                f"{key.replace('_', ' ')} {value}" for key, value in counts.items()))
        samples += made
    if not samples:
        raise TrainingError(f"{settings.source!r} gives nothing to train on: no search has a "
                            "path that earned a reward, no consultation passed the "
                            "filters; search or consult more, or loosen the filters")
    dataset_id = store.save_training_dataset(
        name, "sft", samples, experiment_id=found[0][1],
        config={**made_with, "samples": len(samples)})
    reporter.note(f"training dataset {name}: {len(samples)} sample(s)")
    return dataset_id, samples


def run_sft(store: TraceStore, settings: SFTCommandConfig,
            reporter: RunReporter | None = None) -> SFTResult:
    """Fine-tune the doctor on stored consultations: the best paths of MCTS searches and
    the filtered consultations of any other runs (another doctor's: distillation).

    Args:
        store: where the experiments are read and the dataset and checkpoint recorded.
        settings: the experiments (``source``), the output folder, the filters and the
            training settings.
        reporter: where notes and step progress go [default: the logger].

    The dataset is made once and stored (a rerun reuses it); a rerun after an
    interruption resumes from the last checkpoint in ``output``, and a finished run is
    not trained again. Returns the trained model's folder, its steps and losses."""
    from promed_agents.trainers.sft_dataset import export_samples
    from promed_agents.trainers.sft_trainer import DoctorSFTConfig, SFTResult, train_sft
    from promed_agents.trainers.training_output import check_output_folder, finished_receipt

    reporter = reporter_or_default(reporter)
    found = sources(store, settings.source)
    experiment_id = found[0][1]
    model_spec = settings.model or _doctor(found)
    local_model_ref(model_spec)  # a bad spec fails before the dataset is made
    check_output_folder(settings.output)
    dataset_id, samples = dataset_samples(store, settings, found, reporter, model_spec)
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
