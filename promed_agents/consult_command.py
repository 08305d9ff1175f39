"""``promed consult``: run consultations on stored cases and record every episode.

case -> **consultation graph** -> **trace in SQL** -> Shapley/SIG -> training -> evaluation

The command behind the CLI entry (kept apart from :mod:`promed_agents.cli` so that each
stays one concept): pick cases from the store (importing the bundled sample into an empty
store), build the models from their specs, run the graph with bounded concurrency and a
progress bar, record each episode in its own transaction, and summarise. With
``--checkpoints``, running the same command again (same ``--experiment``) resumes it:
finished consultations are kept, interrupted ones go on from their last checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from promed_agents.case import Case
from promed_agents.cli_options import without_password
from promed_agents.errors import ConsultationError
from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.partial_view import PartialInfoPolicy
from promed_agents.progress_bar import progress_bar
from promed_agents.trace import ConsultationMode, EpisodeRecord, EpisodeStatus


@dataclass(frozen=True)
class ConsultSettings:
    cases: int | None
    case_ids: Sequence[str]
    split: str | None
    mode: ConsultationMode
    doctor: str
    patient: str
    max_questions: int
    concurrency: int
    experiment: str | None
    policy: PartialInfoPolicy
    temperature: float
    max_new_tokens: int
    checkpoints: str | None = None
    resume: bool = False
    sig_scorer: str | None = None
    """Whose stored Shapley values weigh the facts (default: the doctor's model)."""
    demonstration: bool = False


def patient_from_spec(spec: str) -> Any:
    from promed_agents.backends import resolve_chat_model
    from promed_agents.patient import FactSelectPatient, LLMPatient

    if spec == "fact-select":
        return FactSelectPatient()
    if spec.startswith("llm:"):
        return LLMPatient(model=resolve_chat_model(spec[len("llm:"):]))
    raise ConsultationError(f"--patient {spec!r}: use fact-select or llm:MODEL_SPEC")


def select_cases(store: Any, console: Console, count: int | None = None,
                 case_ids: Sequence[str] = (), split: str | None = None) -> list[Case]:
    """The cases a command names: by id, else the first ``count`` stored (of ``split``).
    An empty store first gets the bundled sample."""
    if case_ids:
        return [store.get_case(case_id) for case_id in case_ids]
    if store.count_cases() == 0:
        report = store.import_cases(load_cases(bundled_sample_path(), split="sample"))
        console.print(f"the store was empty: imported the bundled sample ({report.added} "
                      "iMedQA cases, CC BY 4.0)")
    cases = store.list_cases(split=split, limit=count)
    if not cases:
        raise ConsultationError(f"no stored cases match (split {split!r}); see "
                                "`promed cases list`")
    return cases


@contextlib.asynccontextmanager
async def checkpointer(where: str) -> AsyncIterator[Any]:
    """LangGraph's checkpointer for ``where``: a PostgreSQL URL (``postgresql://...``,
    with the ``postgres`` extra) or a SQLite file path."""
    from langgraph.checkpoint.serde.base import maybe_add_typed_methods

    from promed_agents.graphs.consultation import checkpoint_serializer

    serde = maybe_add_typed_methods(checkpoint_serializer())
    if where.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        conninfo = where.replace("postgresql+psycopg://", "postgresql://", 1)
        async with AsyncPostgresSaver.from_conn_string(conninfo) as saver:
            saver.serde = serde
            await saver.setup()
            yield saver
        return
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    async with AsyncSqliteSaver.from_conn_string(where) as saver:
        saver.serde = serde
        yield saver


def refuse_store_file(store: Any, where: str | None) -> None:
    """LangGraph's SQLite checkpoints may not share the SQLite store's file: the store
    would wait for the saver's write lock inside the event loop that must release it."""
    url = store.engine.url
    if not where or url.get_backend_name() != "sqlite" or not url.database or \
            where.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
        return
    if Path(where).expanduser().resolve() == Path(url.database).expanduser().resolve():
        raise ConsultationError(f"--checkpoints {where} is the store's own SQLite file; "
                                "give LangGraph's checkpoints a file of their own (or keep "
                                "both in PostgreSQL)")


def sig_evaluator(store: Any, scorer_spec: str, cases: Sequence[Case],
                  console: Console, require_shapley: bool = False) -> Any:
    """The evaluator: SIG from stored Shapley values of ``scorer_spec`` where the cases
    have them (uniform gain otherwise), with a line saying how many cases have them. With
    ``require_shapley``, a case without stored values is an error instead."""
    from promed_agents.evaluator import Evaluator
    from promed_agents.storage import StoredWeights

    weights = StoredWeights(store, scorer_spec)
    with_values = sum(weights.has_values(case) for case in cases)
    if require_shapley and with_values < len(cases):
        missing = [c.id for c in cases if not weights.has_values(c)]
        raise ConsultationError(
            f"--require-shapley: {len(missing)} of {len(cases)} cases (first: "
            f"{', '.join(missing[:3])}) have no stored Shapley values for scorer "
            f"{scorer_spec!r}; compute them with 'promed shapley --scorer {scorer_spec}', or "
            "leave out --require-shapley to weigh their facts uniformly")
    console.print(f"SIG from stored Shapley values ({escape(scorer_spec)}) for {with_values} "
                  f"of {len(cases)} cases; uniform weights for the rest")
    if not with_values:
        return Evaluator()
    return Evaluator(weights=weights, name=f"sig:{scorer_spec}")


def summary_table(episodes: Sequence[EpisodeRecord], seconds: float, title: str) -> Table:
    done = [e for e in episodes if e.status is not EpisodeStatus.FAILED]
    table = Table(title=title)
    for column in ("episodes", "done", "timeout", "failed", "accuracy", "questions",
                   "recall", "SIG", "format", "ep/s"):
        table.add_column(column, justify="right")

    def mean(values: list[float]) -> str:
        return f"{sum(values) / len(values):.3f}" if values else "-"

    table.add_row(
        str(len(episodes)),
        str(sum(e.status is EpisodeStatus.COMPLETED for e in episodes)),
        str(sum(e.status is EpisodeStatus.TIMEOUT for e in episodes)),
        str(sum(e.status is EpisodeStatus.FAILED for e in episodes)),
        mean([1.0 if e.correct else 0.0 for e in done]),
        mean([float(e.num_questions) for e in done]),
        mean([e.metadata.get("fact_recall") or 0.0 for e in done]),
        mean([e.metadata.get("information_gain") or 0.0 for e in done]),
        mean([e.metadata.get("format_score") or 0.0 for e in done]),
        f"{len(episodes) / seconds:.2f}" if seconds > 0 else "-")
    return table


def _resumable(store: Any, settings: ConsultSettings) -> bool:
    """Whether ``--experiment`` names a run that kept its checkpoints where
    ``--checkpoints`` says: then running the same command again resumes it."""
    from promed_agents.errors import NotFoundError

    if not (settings.experiment and settings.checkpoints):
        return False
    try:
        _, saved = store.experiment_config(settings.experiment)
    except NotFoundError:
        return False
    where = without_password(settings.checkpoints)
    if not saved.get("checkpoints"):
        raise ConsultationError(f"experiment {settings.experiment!r} exists and kept no "
                                "checkpoints, so it cannot be resumed; choose another "
                                "--experiment name")
    if saved.get("checkpoints") != where:
        raise ConsultationError(
            f"experiment {settings.experiment!r} exists and kept its checkpoints in "
            f"{saved.get('checkpoints')!r}, not {where!r}; give those --checkpoints to "
            "resume it, or another --experiment name")
    return True


def consult(store: Any, settings: ConsultSettings, console: Console,
            progress_console: Console) -> list[EpisodeRecord]:
    """Run the consultations ``settings`` describe, recording each episode in ``store``."""
    from promed_agents.doctor import doctor_sampling
    from promed_agents.graphs import ConsultationContext, arun_consultations
    from promed_agents.reference_doctors import resolve_doctor
    from promed_agents.storage.trace_recorder import TraceRecorder

    refuse_store_file(store, settings.checkpoints)
    resume = settings.resume or _resumable(store, settings)
    if resume:
        if not settings.experiment:
            raise ConsultationError("--resume needs --experiment NAME (the run to continue)")
        if not settings.checkpoints:
            raise ConsultationError("--resume needs --checkpoints PATH (where the run kept "
                                    "its LangGraph checkpoints)")
        experiment_id, saved = store.experiment_config(settings.experiment)
        cases = [store.get_case(case_id) for case_id in saved.get("case_ids", [])]
    resolve_doctor(settings.doctor)  # bad specs fail before the store changes
    patient = patient_from_spec(settings.patient)
    if not resume:
        cases = select_cases(store, console, settings.cases, settings.case_ids, settings.split)
    doctor = resolve_doctor(settings.doctor, cases)
    context = ConsultationContext(
        doctor=doctor, patient=patient, mode=settings.mode,
        evaluator=sig_evaluator(store, settings.sig_scorer or settings.doctor, cases, console),
        max_questions=settings.max_questions, demonstration=settings.demonstration,
        doctor_kwargs=doctor_sampling(doctor, max_tokens=settings.max_new_tokens,
                                      temperature=settings.temperature))
    name = settings.experiment or (f"consult-{settings.mode.value}-"
                                   f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-"
                                   f"{uuid.uuid4().hex[:4]}")
    config = {k: (v.value if hasattr(v, "value") else v) for k, v in settings.__dict__.items()}
    config["case_ids"] = [c.id for c in cases]
    config["evaluator"] = context.evaluator.name
    config["checkpoints"] = without_password(settings.checkpoints)
    if not resume:
        experiment_id = store.create_experiment(name, "consult", config)
    recorder = TraceRecorder(store, experiment_id)
    started = time.perf_counter()
    with progress_bar(progress_console) as progress:
        task = progress.add_task(f"consulting ({settings.doctor})", total=len(cases))

        def on_episode(episode: EpisodeRecord) -> None:
            recorder(episode)
            progress.advance(task)

        async def run() -> list[EpisodeRecord]:
            kwargs = dict(policy=settings.policy, concurrency=settings.concurrency,
                          experiment_id=experiment_id, on_episode=on_episode)
            if not settings.checkpoints:
                return await arun_consultations(cases, context, **kwargs)
            async with checkpointer(settings.checkpoints) as saver:
                return await arun_consultations(cases, context, checkpointer=saver, **kwargs)

        episodes = asyncio.run(run())
    elapsed = time.perf_counter() - started
    console.print(summary_table(episodes, elapsed, escape(
        f"experiment {name}: {settings.mode.value}, doctor {settings.doctor}, "
        f"patient {settings.patient}")))
    return episodes
